//! Idempotent retries (AIP-155): a create carrying a `request_id` is recorded, in the same
//! transaction as the write, in the service's own `idempotency` table keyed by
//! (caller, method, request id). A repeat returns the first response; a repeat with a
//! different request body is refused. Concurrent repeats serialize on the primary key: the
//! second waits for the first transaction and then replays its response.
//!
//! Each service's first migration creates its `idempotency` table, the same in every schema
//! (these queries are checked against training's: see `sqlx.toml`); rows
//! older than [`RETENTION`] are purged by [`purge_periodically`], which every service runs
//! while it serves (`QI_IDEMPOTENCY_PURGE_INTERVAL_MS`).

use prost::Message;
use sqlx::{PgConnection, Postgres, Transaction};

use crate::access::AccessContext;
use crate::error::Error;

/// How long a request id is remembered.
pub const RETENTION: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Checks a request id (optional; when given, 1 to 64 letters, digits, `-` or `_`).
pub fn validate_request_id(request_id: &str) -> Result<(), Error> {
    let ok = request_id.len() <= 64
        && request_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "request_id",
            "use up to 64 letters, digits, `-` or `_` (a UUID is best)",
        ))
    }
}

/// A retryable write, once per request id: in `tx`, the call's transaction (begun by
/// [`crate::db::begin`], after whatever checks must pass even on a retry, such as reading
/// the parent the caller may write), claims `request_id` for `request`; a retry gets the
/// first call's saved response without `write` running again. Otherwise `write` runs, its
/// response is saved for retries, and `tx` commits. A failed `write` rolls the claim back
/// with everything else, so the retry writes afresh.
pub async fn once<Req: Message, Resp: Message + Default>(
    mut tx: Transaction<'static, Postgres>,
    ctx: &AccessContext,
    request_id: &str,
    request: &Req,
    write: impl AsyncFnOnce(&mut PgConnection) -> Result<Resp, Error>,
) -> Result<Resp, Error> {
    if let Some(saved) = claim(&mut tx, ctx, request_id, request).await? {
        return Ok(saved);
    }
    let resp = write(&mut tx).await?;
    record(&mut tx, ctx, request_id, &resp).await?;
    tx.commit().await?;
    Ok(resp)
}

/// Inside the write's transaction: claims the request id, or returns the response saved by
/// the first call with it. Does nothing (returns `None`) when `request_id` is empty.
async fn claim<Req: Message, Resp: Message + Default>(
    tx: &mut PgConnection,
    ctx: &AccessContext,
    request_id: &str,
    request: &Req,
) -> Result<Option<Resp>, Error> {
    if request_id.is_empty() {
        return Ok(None);
    }
    let body = request.encode_to_vec();
    let inserted = sqlx::query!(
        "INSERT INTO idempotency (caller, method, request_id, request) VALUES ($1, $2, $3, $4)
         ON CONFLICT (caller, method, request_id) DO NOTHING",
        ctx.subject,
        ctx.method,
        request_id,
        body,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(None);
    }
    let saved = sqlx::query!(
        "SELECT request, response FROM idempotency
         WHERE caller = $1 AND method = $2 AND request_id = $3",
        ctx.subject,
        ctx.method,
        request_id,
    )
    .fetch_one(&mut *tx)
    .await?;
    if saved.request != body {
        return Err(Error::invalid(
            "request_id",
            "was already used for a different request",
        ));
    }
    let response = saved.response.ok_or_else(|| Error::Aborted {
        message: "the first call with this request_id has not finished; retry".into(),
    })?;
    Resp::decode(response.as_slice())
        .map(Some)
        .map_err(|e| Error::Internal(e.into()))
}

/// Inside the same transaction, after the write: saves the response for replays.
async fn record<Resp: Message>(
    tx: &mut PgConnection,
    ctx: &AccessContext,
    request_id: &str,
    response: &Resp,
) -> Result<(), Error> {
    if request_id.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "UPDATE idempotency SET response = $4
         WHERE caller = $1 AND method = $2 AND request_id = $3",
        ctx.subject,
        ctx.method,
        request_id,
        response.encode_to_vec(),
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Rows one purge statement deletes at most: each statement stays short, so it never holds
/// many row locks or a long transaction while the service writes.
const PURGE_BATCH: i64 = 1_000;

/// Deletes request ids older than [`RETENTION`], [`PURGE_BATCH`] rows a statement, until
/// none is left; returns how many. Rows another purge (a replica's) has locked are skipped,
/// not waited for, so replicas purging at once neither block nor fail each other.
pub async fn purge_expired(pool: &sqlx::PgPool) -> Result<u64, Error> {
    let mut purged = 0;
    loop {
        let done = sqlx::query!(
            "DELETE FROM idempotency WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM idempotency
                 WHERE create_time < now() - make_interval(secs => $1)
                 LIMIT $2 FOR UPDATE SKIP LOCKED))",
            RETENTION.as_secs_f64(),
            PURGE_BATCH,
        )
        .execute(pool)
        .await?
        .rows_affected();
        purged += done;
        if done < PURGE_BATCH.unsigned_abs() {
            return Ok(purged);
        }
    }
}

/// Purges expired request ids every `interval`, for as long as the service runs (the caller
/// aborts the task at shutdown). A failed purge (the database away) is logged and tried
/// again at the next tick.
pub async fn purge_periodically(pool: sqlx::PgPool, interval: std::time::Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match purge_expired(&pool).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "expired request ids purged"),
            Err(e) => {
                tracing::warn!(error = ?e, "purging expired request ids failed; retrying later")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{EmployeeClaim, SiteScope};
    use crate::pg::{Durability, PrivateCluster};

    fn ctx() -> AccessContext {
        AccessContext {
            subject: "nurse".into(),
            roles: vec!["editor".into()],
            sites: SiteScope::TrustWide,
            method: "/qi.metrics.v1.MetricsService/CreateMetric".into(),
            employee: None,
            employee_claim: EmployeeClaim::default(),
            token_expiry: None,
        }
    }

    /// [`once`] on its own throwaway cluster (the test kit depends on this crate), with the
    /// `idempotency` table every service's first migration creates.
    #[tokio::test]
    async fn once_replays_a_retry_refuses_a_different_request_and_forgets_a_failed_write() {
        let dir = tempfile::Builder::new()
            .prefix("qi-idempotency-")
            .tempdir_in("/tmp")
            .unwrap();
        let data = dir.path().join("pg");
        let cluster = tokio::task::spawn_blocking(move || {
            PrivateCluster::start(&data, Durability::Throwaway)
        })
        .await
        .unwrap()
        .unwrap();
        let url = cluster.create_database("once").await.unwrap();
        let pool = crate::db::connect_owner(&url, "public").await.unwrap();
        sqlx::raw_sql(
            "CREATE TABLE idempotency (
                 caller text NOT NULL, method text NOT NULL, request_id text NOT NULL,
                 request bytea NOT NULL, response bytea,
                 create_time timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (caller, method, request_id))",
        )
        .execute(&pool)
        .await
        .unwrap();
        let ctx = ctx();
        let mut runs = 0;
        let mut call = async |request: &str, response: &str, fail: bool| {
            let tx = crate::db::begin(&pool).await?;
            once(tx, &ctx, "r1", &request.to_owned(), async |_| {
                runs += 1;
                if fail {
                    return Err(Error::Aborted {
                        message: "the write failed".into(),
                    });
                }
                Ok(response.to_owned())
            })
            .await
        };

        assert!(matches!(
            call("a", "first", true).await,
            Err(Error::Aborted { .. })
        ));
        assert_eq!(call("a", "first", false).await.unwrap(), "first");
        assert_eq!(call("a", "second", false).await.unwrap(), "first");
        let refused = call("b", "other", false).await.unwrap_err();
        assert!(
            matches!(&refused, Error::InvalidArgument { .. }),
            "{refused:?}"
        );
        // The failed write ran, its retry ran, and neither repeat did.
        assert_eq!(runs, 2);
        pool.close().await;
        drop(cluster);
    }
}
