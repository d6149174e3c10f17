//! The `progress_score` table, and the latest score the project keeps a copy of.

use chrono::NaiveDate;
use qi_platform::Error;
use qi_platform::convert::{date, timestamp};
use qi_platform::paging::Page;
use qi_proto::projects as pb;
use sqlx::PgConnection;

use super::COLLECTION;
use crate::projects::ProjectRef;

struct ScoreRow {
    number: i32,
    score: f64,
    assessed_date: NaiveDate,
    note: String,
    recorded_by: String,
    create_time: chrono::DateTime<chrono::Utc>,
}

fn to_proto(project: &str, r: ScoreRow) -> pb::ProgressScore {
    pb::ProgressScore {
        name: format!("{project}/{COLLECTION}/{}", r.number),
        score: r.score,
        assessed_date: Some(date(r.assessed_date)),
        note: r.note,
        recorded_by: r.recorded_by,
        create_time: Some(timestamp(r.create_time)),
    }
}

/// `query_as!` into [`ScoreRow`] of `$head`, the score's columns, then `$tail`: the columns
/// are written once, and every statement is still checked at build time.
macro_rules! score_rows {
    ($head:literal, $tail:literal, $($arg:expr),* $(,)?) => {
        sqlx::query_as!(
            ScoreRow,
            $head + "number, score, assessed_date, note, recorded_by, create_time" + $tail,
            $($arg),*
        )
    };
}

/// Records a project's next score, numbered after its last (the caller holds the project's
/// row lock, so numbers follow one another without gaps), and copies it onto the project.
pub(super) async fn insert(
    conn: &mut PgConnection,
    project: &ProjectRef,
    score: f64,
    assessed: NaiveDate,
    note: &str,
    recorded_by: &str,
) -> Result<pb::ProgressScore, Error> {
    let row = score_rows!(
        "INSERT INTO progress_score (project_uid, number, score, assessed_date, note, recorded_by)
         SELECT $1, coalesce(max(number), 0) + 1, $2, $3, $4, $5
         FROM progress_score WHERE project_uid = $1
         RETURNING ",
        "",
        project.uid,
        score,
        assessed,
        note,
        recorded_by,
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query!(
        "UPDATE project SET progress_score = $2 WHERE uid = $1",
        project.uid,
        score,
    )
    .execute(&mut *conn)
    .await?;
    Ok(to_proto(&project.name(), row))
}

/// One page of a project's scores, latest first, numbered below `before`.
pub(super) async fn list(
    conn: &mut PgConnection,
    project: &ProjectRef,
    before: i32,
    page: &Page,
) -> Result<(Vec<pb::ProgressScore>, String), Error> {
    let rows = score_rows!(
        "SELECT ",
        " FROM progress_score WHERE project_uid = $1 AND number < $2
         ORDER BY number DESC LIMIT $3",
        project.uid,
        before,
        page.limit(),
    )
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| vec![r.number.to_string()]);
    let name = project.name();
    Ok((rows.into_iter().map(|r| to_proto(&name, r)).collect(), next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{day, everything, pages, project, stored, transaction};

    #[tokio::test]
    async fn scores_number_per_project_and_the_latest_recorded_is_the_projects()
    -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let p = project(&mut conn, "BAS", "p1").await?;
        let other = project(&mut conn, "SOU", "p2").await?;
        assert_eq!(stored(&mut conn, &p).await?.progress_score, 0.0);
        let first = insert(&mut conn, &p, 1.5, day("2026-02-01"), "Planning", "alice").await?;
        assert_eq!(first.name, "sites/BAS/projects/p1/progressScores/1");
        assert_eq!(first.score, 1.5);
        assert_eq!(
            first.assessed_date,
            Some(qi_platform::convert::date(day("2026-02-01")))
        );
        assert_eq!(
            (first.note.as_str(), first.recorded_by.as_str()),
            ("Planning", "alice")
        );
        assert!(first.create_time.is_some());
        assert_eq!(stored(&mut conn, &p).await?.progress_score, 1.5);
        let theirs = insert(&mut conn, &other, 4.0, day("2026-02-02"), "", "bob").await?;
        assert_eq!(theirs.name, "sites/SOU/projects/p2/progressScores/1");
        let second = insert(&mut conn, &p, 3.0, day("2026-03-01"), "", "bob").await?;
        assert_eq!(second.name, "sites/BAS/projects/p1/progressScores/2");
        // The latest recorded is the project's, even when assessed earlier (a late entry).
        let third = insert(&mut conn, &p, 2.5, day("2026-01-15"), "Late", "alice").await?;
        assert_eq!(third.name, "sites/BAS/projects/p1/progressScores/3");
        assert_eq!(stored(&mut conn, &p).await?.progress_score, 2.5);
        assert_eq!(stored(&mut conn, &other).await?.progress_score, 4.0);
        let (mine, next) = list(&mut conn, &p, i32::MAX, &everything()?).await?;
        assert_eq!(mine, [third, second, first]);
        assert!(next.is_empty());
        assert_eq!(
            list(&mut conn, &other, i32::MAX, &everything()?).await?.0,
            [theirs]
        );
        Ok(())
    }

    #[tokio::test]
    async fn scores_list_latest_first_page_by_page_and_only_the_projects() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let p = project(&mut conn, "BAS", "p1").await?;
        let other = project(&mut conn, "BAS", "p2").await?;
        for (i, score) in [0.5, 1.0, 2.0, 2.0, 3.5].into_iter().enumerate() {
            insert(
                &mut conn,
                &p,
                score,
                day("2026-01-01"),
                &format!("n{i}"),
                "a",
            )
            .await?;
            insert(&mut conn, &other, 5.0, day("2026-01-01"), "", "a").await?;
        }
        // The handler's reading of a page token: the number the next page is below.
        let paged = pages(2, async |page| {
            let before = page
                .after_key(0)
                .map_or(i32::MAX, |k| k.parse().expect("a number"));
            list(&mut conn, &p, before, &page).await
        })
        .await?;
        let got: Vec<Vec<(String, f64)>> = paged
            .into_iter()
            .map(|page| {
                page.into_iter()
                    .map(|s| {
                        (
                            s.name.replace("sites/BAS/projects/p1/progressScores/", ""),
                            s.score,
                        )
                    })
                    .collect()
            })
            .collect();
        let s = |n: &str, score: f64| (n.to_owned(), score);
        assert_eq!(
            got,
            [
                vec![s("5", 3.5), s("4", 2.0)],
                vec![s("3", 2.0), s("2", 1.0)],
                vec![s("1", 0.5)],
            ]
        );
        Ok(())
    }
}
