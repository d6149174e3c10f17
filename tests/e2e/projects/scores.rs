//! IHI progress scores: on the scale only, every one kept, the latest the project's own.

use qi_e2e::projects::{get_project, new_progress_score, record_progress_score};
use qi_e2e::{TestSuite, fields};
use qi_proto::projects as pb;

use super::{bas_editor, running_project};

#[tokio::test]
async fn a_progress_score_off_the_ihi_scale_is_refused() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    let lead = bas_editor(&suite);
    for bad in [0.0, 5.5, 2.3] {
        let err = lead
            .projects()
            .record_progress_score(new_progress_score(&p.name, bad))
            .await
            .unwrap_err();
        assert_eq!(fields(&err), ["progress_score.score"], "{bad}");
    }
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn every_progress_score_is_kept_newest_first_and_the_latest_is_the_projects() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    let lead = bas_editor(&suite);
    for s in [1.5, 2.0, 3.5] {
        record_progress_score(&lead, &p.name, s).await.unwrap();
    }
    let req = pb::ListProgressScoresRequest {
        parent: p.name.clone(),
        ..Default::default()
    };
    let history = lead
        .projects()
        .list_progress_scores(req)
        .await
        .unwrap()
        .into_inner()
        .progress_scores;
    let scores: Vec<(String, f64)> = history.iter().map(|h| (h.name.clone(), h.score)).collect();
    assert_eq!(
        scores,
        [
            (format!("{}/progressScores/3", p.name), 3.5),
            (format!("{}/progressScores/2", p.name), 2.0),
            (format!("{}/progressScores/1", p.name), 1.5)
        ]
    );
    assert_eq!(history[0].recorded_by, "bas-editor");
    assert_eq!(
        get_project(&lead, &p.name).await.unwrap().progress_score,
        3.5
    );
    suite.stop().await.unwrap();
}
