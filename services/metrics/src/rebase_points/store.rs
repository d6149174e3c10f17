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
    let row = sqlx::query_as!(
        RebaseRow,
        "INSERT INTO rebase_point (metric_uid, id, period, reason) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING RETURNING id, period, reason, create_time",
        metric.uid,
        r.id,
        r.period,
        r.reason,
    )
    .fetch_optional(&mut *conn)
    .await?;
    let name = metric.name();
    if let Some(row) = row {
        return Ok(row.to_proto(&name));
    }
    // Which key collided: the id, or another point at the same period.
    let other = sqlx::query_scalar!(
        "SELECT id FROM rebase_point WHERE metric_uid = $1 AND period = $2 AND id <> $3",
        metric.uid,
        r.period,
        r.id,
    )
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
    let after = page.parsed_key::<NaiveDate>(0)?;
    let rows = sqlx::query_as!(
        RebaseRow,
        "SELECT id, period, reason, create_time FROM rebase_point
         WHERE metric_uid = $1 AND ($2::date IS NULL OR period > $2)
         ORDER BY period LIMIT $3",
        metric.uid,
        after,
        page.limit(),
    )
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
    let rows = sqlx::query!(
        "SELECT metric_uid, id, period, reason, create_time FROM rebase_point
         WHERE metric_uid = ANY($1) ORDER BY metric_uid, period",
        &uids,
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out: HashMap<i64, Vec<pb::RebasePoint>> = HashMap::new();
    for r in rows {
        let Some(m) = metrics.iter().find(|m| m.uid == r.metric_uid) else {
            continue;
        };
        out.entry(r.metric_uid).or_default().push(
            RebaseRow {
                id: r.id,
                period: r.period,
                reason: r.reason,
                create_time: r.create_time,
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
    let done = sqlx::query!(
        "DELETE FROM rebase_point WHERE metric_uid = $1 AND id = $2",
        metric.uid,
        id,
    )
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definitions::ValueType;
    use crate::testing::{day, metric, site, transaction};

    fn point(id: &str, period: &str) -> NewRebasePoint {
        NewRebasePoint {
            id: id.to_owned(),
            period: day(period),
            reason: format!("change {id}"),
        }
    }

    fn ids(points: &[pb::RebasePoint]) -> Vec<&str> {
        points
            .iter()
            .map(|p| p.name.rsplit('/').next().unwrap_or_default())
            .collect()
    }

    fn already_exists(r: Result<pb::RebasePoint, Error>) -> String {
        match r {
            Err(Error::AlreadyExists { name }) => name,
            other => panic!("expected AlreadyExists, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_collision_names_the_point_it_is_with() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let m = metric(&mut conn, site("BAS"), "los", ValueType::Mean).await?;
        let made = insert(&mut conn, &m, &point("a", "2026-01-01")).await?;
        assert_eq!(made.name, "sites/BAS/metrics/los/rebasePoints/a");
        assert_eq!(made.reason, "change a");
        // The same id at another period, then another id at the same period.
        let taken = insert(&mut conn, &m, &point("a", "2026-05-01")).await;
        assert_eq!(already_exists(taken), made.name);
        let same_period = insert(&mut conn, &m, &point("b", "2026-01-01")).await;
        assert_eq!(already_exists(same_period), made.name);
        let (listed, _) = list(&mut conn, &m, &Page::parse(10, "", "p")?).await?;
        assert_eq!(listed, vec![made]);
        Ok(())
    }

    #[tokio::test]
    async fn pages_follow_the_period_and_resume_after_the_last() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let m = metric(&mut conn, site("BAS"), "los", ValueType::Mean).await?;
        for (id, period) in [
            ("c", "2026-03-01"),
            ("a", "2026-01-01"),
            ("b", "2026-02-01"),
        ] {
            insert(&mut conn, &m, &point(id, period)).await?;
        }
        let (first, next) = list(&mut conn, &m, &Page::parse(2, "", "p")?).await?;
        assert_eq!(ids(&first), ["a", "b"]);
        let (second, end) = list(&mut conn, &m, &Page::parse(2, &next, "p")?).await?;
        assert_eq!(ids(&second), ["c"]);
        assert!(end.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn every_point_of_the_metrics_asked_for_by_metric_in_period_order() -> anyhow::Result<()>
    {
        let mut conn = transaction().await?;
        let bas = metric(&mut conn, site("BAS"), "los", ValueType::Mean).await?;
        let sou = metric(&mut conn, site("SOU"), "los", ValueType::Mean).await?;
        let none = metric(&mut conn, site("BRM"), "los", ValueType::Mean).await?;
        let unasked = metric(&mut conn, site("BRM"), "tat", ValueType::Mean).await?;
        insert(&mut conn, &bas, &point("late", "2026-06-01")).await?;
        insert(&mut conn, &bas, &point("early", "2026-01-01")).await?;
        insert(&mut conn, &sou, &point("only", "2026-03-01")).await?;
        insert(&mut conn, &unasked, &point("x", "2026-03-01")).await?;
        let got = of_metrics(&mut conn, &[&bas, &sou, &none]).await?;
        assert_eq!(got.len(), 2);
        assert_eq!(ids(&got[&bas.uid]), ["early", "late"]);
        assert_eq!(
            got[&sou.uid][0].name,
            "sites/SOU/metrics/los/rebasePoints/only"
        );
        Ok(())
    }

    #[tokio::test]
    async fn delete_removes_only_the_named_metrics_point() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let bas = metric(&mut conn, site("BAS"), "los", ValueType::Mean).await?;
        let sou = metric(&mut conn, site("SOU"), "los", ValueType::Mean).await?;
        insert(&mut conn, &bas, &point("a", "2026-01-01")).await?;
        insert(&mut conn, &sou, &point("a", "2026-01-01")).await?;
        assert!(delete(&mut conn, &bas, "a").await?);
        assert!(!delete(&mut conn, &bas, "a").await?);
        let got = of_metrics(&mut conn, &[&bas, &sou]).await?;
        assert_eq!(got.keys().copied().collect::<Vec<_>>(), [sou.uid]);
        Ok(())
    }
}
