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
