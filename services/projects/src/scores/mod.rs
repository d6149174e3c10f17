//! IHI progress scores (`{project}/progressScores/{number}`): 0.5 to 5.0 in steps of 0.5.
//! Teams set the score by hand and it goes stale, so every score is kept in order; the
//! latest is copied onto the project.

use chrono::NaiveDate;
use qi_platform::calendar::not_future;
use qi_platform::convert::{date, optional_text, required_date, timestamp};
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

#[derive(sqlx::FromRow)]
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

const COLUMNS: &str = "number, score, assessed_date, note, recorded_by, create_time";

pub(crate) async fn record(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::RecordProgressScoreRequest,
) -> Result<pb::RecordProgressScoreResponse, Error> {
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
            .and_then(|d| not_future("progress_score.assessed_date", d))
            .map(Some),
    );
    let note = v.check(optional_text("progress_score.note", note, 1000));
    v.finish()?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let project = projects::resolve(&mut tx, &ctx, "parent", &req.parent, true).await?;
    if let Some(saved) = idempotency::claim(&mut tx, &ctx, &req.request_id, &req).await? {
        return Ok(saved);
    }
    project.require_open()?;
    // The project's row is locked: numbers follow one another without gaps.
    let row: ScoreRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO progress_score (project_uid, number, score, assessed_date, note, recorded_by)
         SELECT $1, coalesce(max(number), 0) + 1, $2, $3, $4, $5
         FROM progress_score WHERE project_uid = $1
         RETURNING {COLUMNS}"
    )))
    .bind(project.uid)
    .bind(score)
    .bind(assessed)
    .bind(&note)
    .bind(&ctx.subject)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("UPDATE project SET progress_score = $2 WHERE uid = $1")
        .bind(project.uid)
        .bind(score)
        .execute(&mut *tx)
        .await?;
    let resp = pb::RecordProgressScoreResponse {
        progress_score: Some(to_proto(&project.name(), row)),
    };
    idempotency::record(&mut tx, &ctx, &req.request_id, &resp).await?;
    tx.commit().await?;
    Ok(resp)
}

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
    let rows: Vec<ScoreRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM progress_score WHERE project_uid = $1 AND number < $2
         ORDER BY number DESC LIMIT $3"
    )))
    .bind(project.uid)
    .bind(before)
    .bind(page.limit())
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next_page_token) = page.finish(rows, |r| vec![r.number.to_string()]);
    let name = project.name();
    Ok(pb::ListProgressScoresResponse {
        progress_scores: rows.into_iter().map(|r| to_proto(&name, r)).collect(),
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
