//! IHI progress scores (`{project}/progressScores/{number}`): 0.5 to 5.0 in steps of 0.5.
//! Teams set the score by hand and it goes stale, so every score is kept in order; the
//! latest is copied onto the project.

mod store;

use qi_platform::calendar::not_future;
use qi_platform::changes::Kind;
use qi_platform::convert::{optional_text, required_date};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, Violations, idempotency};
use qi_proto::projects as pb;

use crate::ProjectsApi;
use crate::projects;

const COLLECTION: &str = "progressScores";

/// Checks a progress score: 0.5 to 5.0 in steps of 0.5.
pub(crate) fn check_score(field: &str, score: f64) -> Result<f64, Error> {
    let halves = score * 2.0;
    if score.is_finite() && (0.5..=5.0).contains(&score) && halves == halves.round() {
        Ok(score)
    } else {
        Err(Error::invalid(
            field,
            format!("{score} is not an IHI progress score: 0.5 to 5.0 in steps of 0.5"),
        ))
    }
}

/// Records a score for an open project; the latest is copied onto the project.
pub(crate) async fn record(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::RecordProgressScoreRequest,
) -> Result<pb::RecordProgressScoreResponse, Error> {
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let project = projects::resolve(&mut tx, &ctx, "parent", &req.parent, true).await?;
    let mut v = Violations::new();
    v.check(idempotency::validate_request_id(&req.request_id));
    let Some(score) = req.progress_score.as_ref() else {
        return Err(v.missing("progress_score"));
    };
    let pb::ProgressScore {
        name: _,
        score,
        assessed_date,
        note,
        recorded_by: _,
        create_time: _,
    } = score;
    let score = v.check(check_score("progress_score.score", *score));
    let assessed = v.check(
        required_date("progress_score.assessed_date", assessed_date.as_ref())
            .and_then(|d| not_future("progress_score.assessed_date", d)),
    );
    let note = v.check(optional_text("progress_score.note", note, 1000));
    v.finish()?;
    idempotency::once(tx, &ctx, &req.request_id, &req, async |tx| {
        project.require_open()?;
        let score = store::insert(tx, &project, score, assessed, &note, &ctx.subject).await?;
        let sites = crate::feed::project_sites(&project);
        crate::feed::record(tx, COLLECTION, &score.name, Kind::Created, sites, &score).await?;
        // It keeps its latest score.
        crate::feed::record_project(tx, &project).await?;
        Ok(pb::RecordProgressScoreResponse {
            progress_score: Some(score),
        })
    })
    .await
}

/// Lists a project's scores, latest first.
pub(crate) async fn list(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::ListProgressScoresRequest,
) -> Result<pb::ListProgressScoresResponse, Error> {
    let pb::ListProgressScoresRequest {
        parent,
        page_size,
        page_token,
    } = req;
    let page = Page::parse(page_size, &page_token, &parent)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let project = projects::resolve(&mut conn, &ctx, "parent", &parent, false).await?;
    let before: i32 = page
        .after_key(0)
        .and_then(|k| k.parse().ok())
        .unwrap_or(i32::MAX);
    let (progress_scores, next_page_token) =
        store::list(&mut conn, &project, before, &page).await?;
    Ok(pb::ListProgressScoresResponse {
        progress_scores,
        next_page_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_run_from_half_to_five_in_halves() {
        for ok in [0.5, 1.0, 2.5, 5.0] {
            assert!(check_score("s", ok).is_ok(), "{ok}");
        }
        for bad in [0.0, 0.25, 5.5, 3.3, f64::NAN, -1.0] {
            assert!(check_score("s", bad).is_err(), "{bad}");
        }
    }
}
