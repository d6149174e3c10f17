//! Retention of the audit trail. `gateway.audit_event` is partitioned by month (UTC), each
//! partition named `audit_event_YYYY_MM`, plus a default partition for stragglers. One
//! maintenance run ([`maintain`]), as the schema's owner:
//!
//! 1. creates the partitions of this month and the next [`AHEAD`] months that are missing,
//!    moving into each any rows of its month the default partition caught;
//! 2. drops the partitions whose whole month is older than the retention period, and deletes
//!    such rows from the default partition in bounded batches.
//!
//! Runs may overlap (a CronJob and `qi up`, or two jobs): a run takes a PostgreSQL advisory
//! lock and, when another run holds it, does nothing. DDL waits at most [`LOCK_TIMEOUT`] for
//! its lock, so the audit writer's inserts never queue long behind it; a run that times out
//! fails and the next run does the work.

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Datelike as _, NaiveDate, TimeZone as _, Utc};
use sqlx::PgPool;

/// Months created ahead of the current one.
pub const AHEAD: u32 = 3;
/// How long one DDL statement waits for its lock on the audit table.
const LOCK_TIMEOUT: Duration = Duration::from_secs(5);
/// Rows one delete from the default partition removes at most.
const DELETE_BATCH: i64 = 10_000;
/// The advisory lock a maintenance run holds (a constant, easy to find in `pg_locks`).
pub const LOCK_KEY: i64 = 0x5149_4155_4449_5400; // "QIAUDIT\0"

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Partitions created.
    pub created: Vec<String>,
    /// Partitions dropped (their whole month past retention).
    pub dropped: Vec<String>,
    /// Rows moved from the default partition into a new month's partition.
    pub moved: u64,
    /// Rows past retention deleted from the default partition.
    pub deleted: u64,
}

/// One maintenance run at `now`, keeping `retention_days` (0 keeps everything). `pool` is
/// the owner's, with `search_path` on the gateway schema. `Ok(None)`: another run held the
/// lock, so this one did nothing.
pub async fn maintain(
    pool: &PgPool,
    retention_days: u32,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<Report>> {
    #[expect(
        clippy::disallowed_methods,
        reason = "maintenance runs outside any call, on one session holding its advisory lock"
    )]
    let mut conn = pool.acquire().await?;
    let locked = sqlx::query_scalar!(r#"SELECT pg_try_advisory_lock($1) AS "locked!""#, LOCK_KEY)
        .fetch_one(&mut *conn)
        .await?;
    if !locked {
        return Ok(None);
    }
    let result = run(&mut conn, retention_days, now).await;
    // Released with the session too, should this fail (the connection is then dropped).
    let _ = sqlx::raw_sql("RESET lock_timeout; SELECT pg_advisory_unlock_all()")
        .execute(&mut *conn)
        .await;
    result.map(Some)
}

async fn run(
    conn: &mut sqlx::PgConnection,
    retention_days: u32,
    now: DateTime<Utc>,
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    sqlx::query_scalar!(
        "SELECT set_config('lock_timeout', $1, false)",
        LOCK_TIMEOUT.as_millis().to_string(),
    )
    .fetch_one(&mut *conn)
    .await?;
    let this_month = month_of(now);
    for ahead in 0..=AHEAD {
        let month = add_months(this_month, ahead);
        if let Some(moved) = create_partition(conn, month).await? {
            report.created.push(partition_name(month));
            report.moved += moved;
        }
    }
    if retention_days == 0 {
        return Ok(report);
    }
    let cutoff = now - chrono::Duration::days(i64::from(retention_days));
    let partitions = sqlx::query_scalar!(
        r#"SELECT c.relname::text AS "name!" FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'gateway.audit_event'::regclass ORDER BY 1"#,
    )
    .fetch_all(&mut *conn)
    .await?;
    for name in partitions {
        let Some(month) = month_of_name(&name) else {
            continue; // the default partition
        };
        if start_of(add_months(month, 1)) <= cutoff {
            // Dynamic: a partition is named by its month, and a table name cannot be a parameter.
            sqlx::QueryBuilder::new("DROP TABLE gateway.")
                .push(&name)
                .build()
                .execute(&mut *conn)
                .await
                .with_context(|| format!("dropping {name}"))?;
            tracing::info!(partition = name, "audit partition past retention dropped");
            report.dropped.push(name);
        }
    }
    loop {
        let deleted = sqlx::query!(
            "DELETE FROM gateway.audit_event_default WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM gateway.audit_event_default WHERE time < $1 LIMIT $2))",
            cutoff,
            DELETE_BATCH,
        )
        .execute(&mut *conn)
        .await?
        .rows_affected();
        report.deleted += deleted;
        if deleted < DELETE_BATCH.unsigned_abs() {
            break;
        }
    }
    Ok(report)
}

/// Creates `month`'s partition if it is missing; returns the rows moved into it from the
/// default partition, or `None` when it existed. Built beside the table and attached, in
/// one transaction: attaching takes a weaker lock on the audit table than
/// `CREATE TABLE … PARTITION OF`, so inserts go on meanwhile.
async fn create_partition(
    conn: &mut sqlx::PgConnection,
    month: NaiveDate,
) -> anyhow::Result<Option<u64>> {
    let name = partition_name(month);
    let exists = sqlx::query_scalar!(
        r#"SELECT to_regclass($1) IS NOT NULL AS "exists!""#,
        format!("gateway.{name}"),
    )
    .fetch_one(&mut *conn)
    .await?;
    if exists {
        return Ok(None);
    }
    let (from, to) = (start_of(month), start_of(add_months(month, 1)));
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    // Dynamic, the three statements below: the partition is named by its month, and neither
    // a table name nor a DDL bound (FOR VALUES) can be a parameter.
    sqlx::QueryBuilder::new("CREATE TABLE gateway.")
        .push(&name)
        .push(" (LIKE gateway.audit_event INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        .build()
        .execute(&mut *tx)
        .await?;
    let moved = sqlx::QueryBuilder::new(
        "WITH moved AS (DELETE FROM gateway.audit_event_default WHERE time >= ",
    )
    .push_bind(from)
    .push(" AND time < ")
    .push_bind(to)
    .push(" RETURNING *) INSERT INTO gateway.")
    .push(&name)
    .push(" SELECT * FROM moved")
    .build()
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::QueryBuilder::new("ALTER TABLE gateway.audit_event ATTACH PARTITION gateway.")
        .push(&name)
        .push(" FOR VALUES FROM ('")
        .push(from.to_rfc3339())
        .push("') TO ('")
        .push(to.to_rfc3339())
        .push("')")
        .build()
        .execute(&mut *tx)
        .await
        .with_context(|| format!("attaching {name}"))?;
    tx.commit().await?;
    tracing::info!(partition = name, moved, "audit partition created");
    Ok(Some(moved))
}

/// `audit_event_2026_12`.
fn partition_name(month: NaiveDate) -> String {
    format!("audit_event_{:04}_{:02}", month.year(), month.month())
}

/// The month a partition's name stands for, or `None` for any other name.
fn month_of_name(name: &str) -> Option<NaiveDate> {
    let rest = name.strip_prefix("audit_event_")?;
    let (year, month) = rest.split_once('_')?;
    if year.len() != 4 || month.len() != 2 {
        return None;
    }
    NaiveDate::from_ymd_opt(year.parse().ok()?, month.parse().ok()?, 1)
}

fn month_of(t: DateTime<Utc>) -> NaiveDate {
    NaiveDate::from_ymd_opt(t.year(), t.month(), 1).unwrap_or(NaiveDate::MIN)
}

fn add_months(month: NaiveDate, n: u32) -> NaiveDate {
    month
        .checked_add_months(chrono::Months::new(n))
        .unwrap_or(NaiveDate::MAX)
}

fn start_of(month: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&month.and_time(chrono::NaiveTime::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip_and_others_are_ignored() {
        let dec = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        assert_eq!(partition_name(dec), "audit_event_2026_12");
        assert_eq!(month_of_name("audit_event_2026_12"), Some(dec));
        assert_eq!(
            add_months(dec, 1),
            NaiveDate::from_ymd_opt(2027, 1, 1).unwrap()
        );
        for other in [
            "audit_event_default",
            "audit_event_2026_13",
            "audit_event_26_12",
        ] {
            assert_eq!(month_of_name(other), None, "{other}");
        }
    }
}
