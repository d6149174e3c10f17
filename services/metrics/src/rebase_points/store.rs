//! The `rebase_point` table: insert (naming the point a collision is with), the paged
//! list, every point of some metrics, delete.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use qi_platform::Error;
use qi_platform::convert::{date, timestamp};
use qi_platform::paging::Page;
use qi_proto::metrics as pb;
use sqlx::PgConnection;

use super::{NewRebasePoint, REBASE_POINTS};
use crate::definitions::Metric;

#[derive(sqlx::FromRow)]
struct RebaseRow {
    id: String,
    period: NaiveDate,
    reason: String,
    create_time: DateTime<Utc>,
}

impl RebaseRow {
    fn to_proto(&self, metric_name: &str) -> pb::RebasePoint {
        pb::RebasePoint {
            name: format!("{metric_name}/{REBASE_POINTS}/{}", self.id),
            period: Some(date(self.period)),
            reason: self.reason.clone(),
            create_time: Some(timestamp(self.create_time)),
        }
    }
}

/// Inserts a rebase point; `AlreadyExists` if the id is taken or another point has the
/// same period.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    metric: &Metric,
    r: &NewRebasePoint,
) -> Result<pb::RebasePoint, Error> {
    let row: Option<RebaseRow> = sqlx::query_as(
        "INSERT INTO rebase_point (metric_uid, id, period, reason) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING RETURNING id, period, reason, create_time",
    )
    .bind(metric.uid)
    .bind(&r.id)
    .bind(r.period)
    .bind(&r.reason)
    .fetch_optional(&mut *conn)
    .await?;
    let name = metric.name();
    if let Some(row) = row {
        return Ok(row.to_proto(&name));
    }
    // Which key collided: the id, or another point at the same period.
    let other: Option<String> = sqlx::query_scalar(
        "SELECT id FROM rebase_point WHERE metric_uid = $1 AND period = $2 AND id <> $3",
    )
    .bind(metric.uid)
    .bind(r.period)
    .bind(&r.id)
    .fetch_optional(&mut *conn)
    .await?;
    Err(Error::AlreadyExists {
        name: format!(
            "{name}/{REBASE_POINTS}/{}",
            other.as_deref().unwrap_or(&r.id)
        ),
    })
}

/// One page of a metric's rebase points in period order.
pub(crate) async fn list(
    conn: &mut PgConnection,
    metric: &Metric,
    page: &Page,
) -> Result<(Vec<pb::RebasePoint>, String), Error> {
    let after = page
        .after_key(0)
        .map(str::parse::<NaiveDate>)
        .transpose()
        .map_err(|_| Error::invalid("page_token", "not a token this list returned"))?;
    let rows: Vec<RebaseRow> = sqlx::query_as(
        "SELECT id, period, reason, create_time FROM rebase_point
         WHERE metric_uid = $1 AND ($2::date IS NULL OR period > $2)
         ORDER BY period LIMIT $3",
    )
    .bind(metric.uid)
    .bind(after)
    .bind(page.limit())
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| vec![r.period.to_string()]);
    let name = metric.name();
    Ok((rows.iter().map(|r| r.to_proto(&name)).collect(), next))
}

/// Every rebase point of these metrics, by metric, in period order (for charts).
pub(crate) async fn of_metrics(
    conn: &mut PgConnection,
    metrics: &[&Metric],
) -> Result<HashMap<i64, Vec<pb::RebasePoint>>, Error> {
    let uids: Vec<i64> = metrics.iter().map(|m| m.uid).collect();
    let rows: Vec<(i64, String, NaiveDate, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT metric_uid, id, period, reason, create_time FROM rebase_point
         WHERE metric_uid = ANY($1) ORDER BY metric_uid, period",
    )
    .bind(&uids)
    .fetch_all(&mut *conn)
    .await?;
    let mut out: HashMap<i64, Vec<pb::RebasePoint>> = HashMap::new();
    for (uid, id, period, reason, create_time) in rows {
        let Some(m) = metrics.iter().find(|m| m.uid == uid) else {
            continue;
        };
        out.entry(uid).or_default().push(
            RebaseRow {
                id,
                period,
                reason,
                create_time,
            }
            .to_proto(&m.name()),
        );
    }
    Ok(out)
}

/// Deletes one of a metric's rebase points; whether one was deleted.
pub(crate) async fn delete(
    conn: &mut PgConnection,
    metric: &Metric,
    id: &str,
) -> Result<bool, Error> {
    let done = sqlx::query("DELETE FROM rebase_point WHERE metric_uid = $1 AND id = $2")
        .bind(metric.uid)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() > 0)
}
