//! The audit trail: every access decision, allow or deny, stored in the gateway's schema.
//!
//! Recording never waits on the database: events go into a bounded queue that a writer task
//! drains in batches (one binary `COPY` each). A failed batch is retried;
//! at shutdown the queue is drained and flushed after the server has finished its calls, so
//! a graceful stop loses nothing. Only if the queue overflows (the database down for long
//! under load) are events dropped, each drop logged and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use qi_platform::Error;
use qi_platform::convert::instant;
use qi_platform::paging::Page;
use qi_proto::gateway as pb;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

/// How many events wait for the writer at most.
const QUEUE: usize = 100_000;
/// Events per insert.
const BATCH: usize = 1_000;
/// How long the writer gathers a batch.
const GATHER: Duration = Duration::from_millis(100);

/// An access decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// When it was made.
    pub time: DateTime<Utc>,
    /// The token's subject, or empty.
    pub subject: String,
    /// The gRPC method path.
    pub method: String,
    /// The site the request named.
    pub site: Option<String>,
    /// The resource or parent the request named.
    pub resource: Option<String>,
    /// Allowed?
    pub allowed: bool,
    /// The code of a refusal (`Ok` when allowed).
    pub code: String,
    /// Why.
    pub reason: String,
    /// The W3C trace id.
    pub trace_id: String,
}

/// The recording half, cloned into every call.
#[derive(Debug, Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<AuditEvent>,
    dropped: Arc<AtomicU64>,
}

impl AuditLog {
    /// Queues an event without waiting.
    pub fn record(&self, event: AuditEvent) {
        if self.queue.try_send(event).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::error!(
                dropped_total = n,
                "audit queue full or closed: an audit event was dropped"
            );
        }
    }

    /// Events dropped since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The writing half: stops and flushes on [`AuditWriter::shutdown`].
#[derive(Debug)]
pub struct AuditWriter {
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

impl AuditWriter {
    /// Writes every queued event, then stops. Call after the server has drained.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.done.await {
            tracing::error!(error = %e, "the audit writer failed while flushing");
        }
    }
}

/// Starts the writer over `pool` (search_path `gateway`).
pub fn start(pool: PgPool) -> (AuditLog, AuditWriter) {
    let (queue, mut rx) = mpsc::channel(QUEUE);
    let (stop, mut stopping) = oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        loop {
            let first = tokio::select! {
                e = rx.recv() => match e { Some(e) => e, None => break },
                _ = &mut stopping => break,
            };
            let mut batch = vec![first];
            let until = tokio::time::Instant::now() + GATHER;
            while batch.len() < BATCH {
                match tokio::time::timeout_at(until, rx.recv()).await {
                    Ok(Some(e)) => batch.push(e),
                    Ok(None) | Err(_) => break,
                }
            }
            write_with_retry(&pool, &batch).await;
        }
        // Shutdown: whatever is queued goes in before the process exits.
        rx.close();
        let mut rest = Vec::new();
        while let Ok(e) = rx.try_recv() {
            rest.push(e);
        }
        for chunk in rest.chunks(BATCH) {
            write_with_retry(&pool, chunk).await;
        }
        tracing::info!(flushed = rest.len(), "audit trail flushed");
    });
    let log = AuditLog {
        queue,
        dropped: Arc::new(AtomicU64::new(0)),
    };
    observe(&log);
    (log, AuditWriter { stop, done })
}

/// Reports the queue, read at each metrics export: `qi.gateway.audit.queued` (events
/// waiting for the writer) and `qi.gateway.audit.dropped` (lost since start: any is an
/// alert, as the trail must hold every decision).
fn observe(log: &AuditLog) {
    let meter = opentelemetry::global::meter("qi");
    // Weak: reading the depth must not keep the queue open after the gateway stops.
    let queue = log.queue.downgrade();
    meter
        .i64_observable_up_down_counter("qi.gateway.audit.queued")
        .with_unit("{event}")
        .with_description("Audit events waiting to be written")
        .with_callback(move |o| {
            if let Some(q) = queue.upgrade() {
                let waiting = q.max_capacity() - q.capacity();
                o.observe(i64::try_from(waiting).unwrap_or(i64::MAX), &[]);
            }
        })
        .build();
    let dropped = log.dropped.clone();
    meter
        .u64_observable_counter("qi.gateway.audit.dropped")
        .with_unit("{event}")
        .with_description("Audit events lost because the queue was full")
        .with_callback(move |o| o.observe(dropped.load(Ordering::Relaxed), &[]))
        .build();
}

async fn write_with_retry(pool: &PgPool, batch: &[AuditEvent]) {
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=8 {
        match write(pool, batch).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(attempt, error = %e, events = batch.len(), "writing audit events failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    tracing::error!(
        events = batch.len(),
        "audit events could not be written and were dropped"
    );
}

/// Writes a batch with one binary `COPY`: PostgreSQL's cheapest way in, with no text to
/// escape or timestamps to format on our side. A COPY is one statement, so a failed batch
/// leaves nothing behind and is retried whole.
async fn write(pool: &PgPool, batch: &[AuditEvent]) -> Result<(), sqlx::Error> {
    let rows = copy_rows(batch);
    let mut conn = pool.acquire().await?;
    let mut copy = conn
        .copy_in_raw(
            "COPY audit_event (time, subject, method, site, resource, decision, code, reason, trace_id)
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    copy.send(rows).await?;
    copy.finish().await?;
    Ok(())
}

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The batch in `COPY … (FORMAT binary)`: a signature, then per row the field count and
/// each field as a length and its bytes (-1 for NULL), then -1.
fn copy_rows(batch: &[AuditEvent]) -> Vec<u8> {
    let mut out = Vec::with_capacity(19 + batch.len() * 200);
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes()); // flags
    out.extend_from_slice(&0i32.to_be_bytes()); // header extension
    for e in batch {
        out.extend_from_slice(&9i16.to_be_bytes());
        out.extend_from_slice(&8i32.to_be_bytes());
        let micros = e.time.timestamp_micros() - PG_EPOCH_MICROS;
        out.extend_from_slice(&micros.to_be_bytes());
        for field in [
            Some(e.subject.as_str()),
            Some(e.method.as_str()),
            e.site.as_deref(),
            e.resource.as_deref(),
            Some(if e.allowed { "allow" } else { "deny" }),
            Some(e.code.as_str()),
            Some(e.reason.as_str()),
            Some(e.trace_id.as_str()),
        ] {
            match field {
                Some(v) => text_field(&mut out, v),
                None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

/// One text field. PostgreSQL text cannot hold NUL: one in a request's name (caller
/// controlled) must not fail the whole batch, everyone's events, on every retry.
fn text_field(out: &mut Vec<u8>, value: &str) {
    let cleaned;
    let value = if value.contains('\0') {
        cleaned = value.replace('\0', "\u{fffd}");
        cleaned.as_str()
    } else {
        value
    };
    // Fields are clipped names and messages, far below 2 GiB.
    let len = i32::try_from(value.len()).unwrap_or(i32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&value.as_bytes()[..usize::try_from(len).unwrap_or(0)]);
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    time: DateTime<Utc>,
    subject: String,
    method: String,
    site: Option<String>,
    resource: Option<String>,
    decision: String,
    code: String,
    reason: String,
    trace_id: String,
}

fn time(field: &str, t: Option<prost_types::Timestamp>) -> Result<Option<DateTime<Utc>>, Error> {
    t.map(|t| {
        instant(&t)
            .ok_or_else(|| Error::invalid(field, "is not a valid time between 1900 and 2999"))
    })
    .transpose()
}

/// `ListAuditEvents`: newest first, filtered.
pub async fn list(
    pool: &PgPool,
    req: pb::ListAuditEventsRequest,
) -> Result<pb::ListAuditEventsResponse, Error> {
    let params = format!(
        "{}|{}|{}|{:?}|{:?}",
        req.subject, req.site, req.decision, req.start_time, req.end_time
    );
    let pb::ListAuditEventsRequest {
        parent,
        subject,
        site,
        decision,
        start_time,
        end_time,
        page_size,
        page_token,
    } = req;
    if parent != "trust" {
        return Err(Error::invalid(
            "parent",
            "the audit trail is trust-wide: use `trust`",
        ));
    }
    let decision = match pb::AuditDecision::try_from(decision) {
        Ok(pb::AuditDecision::Unspecified) => None,
        Ok(pb::AuditDecision::Allow) => Some("allow"),
        Ok(pb::AuditDecision::Deny) => Some("deny"),
        Err(_) => return Err(Error::invalid("decision", "choose ALLOW or DENY")),
    };
    let from = time("start_time", start_time)?;
    let before = time("end_time", end_time)?;
    let page = Page::parse(page_size, &page_token, &params)?;
    let after: Option<i64> = page
        .after_key(0)
        .map(str::parse)
        .transpose()
        .map_err(|_| Error::invalid("page_token", "not a token this list returned"))?;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, time, subject, method, site, resource, decision, code, reason, trace_id
         FROM audit_event
         WHERE ($1 = '' OR subject = $1) AND ($2 = '' OR site = $2)
           AND ($3::text IS NULL OR decision = $3)
           AND ($4::timestamptz IS NULL OR time >= $4) AND ($5::timestamptz IS NULL OR time < $5)
           AND ($6::bigint IS NULL OR id < $6)
         ORDER BY id DESC LIMIT $7",
    )
    .bind(subject)
    .bind(site)
    .bind(decision)
    .bind(from)
    .bind(before)
    .bind(after)
    .bind(page.limit())
    .fetch_all(pool)
    .await?;
    let (rows, next_page_token) = page.finish(rows, |r| vec![r.id.to_string()]);
    Ok(pb::ListAuditEventsResponse {
        audit_events: rows
            .into_iter()
            .map(|r| pb::AuditEvent {
                name: format!("trust/auditEvents/{}", r.id),
                time: Some(qi_platform::convert::timestamp(r.time)),
                subject: r.subject,
                method: r.method,
                site: r.site.unwrap_or_default(),
                resource: r.resource.unwrap_or_default(),
                decision: if r.decision == "allow" {
                    pb::AuditDecision::Allow
                } else {
                    pb::AuditDecision::Deny
                } as i32,
                code: r.code,
                reason: r.reason,
                trace_id: r.trace_id,
            })
            .collect(),
        next_page_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_rows_are_postgres_binary_with_nul_replaced() {
        let event = AuditEvent {
            time: DateTime::from_timestamp(946_684_801, 0).unwrap(),
            subject: "a\0b".into(),
            method: "m".into(),
            site: None,
            resource: Some("r".into()),
            allowed: false,
            code: "c".into(),
            reason: "".into(),
            trace_id: "t".into(),
        };
        let rows = copy_rows(&[event]);
        let mut want = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
        want.extend_from_slice(&[0, 9, 0, 0, 0, 8]);
        want.extend_from_slice(&1_000_000i64.to_be_bytes());
        want.extend_from_slice(&[0, 0, 0, 5, b'a', 0xef, 0xbf, 0xbd, b'b']);
        want.extend_from_slice(&[0, 0, 0, 1, b'm']);
        want.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        want.extend_from_slice(&[0, 0, 0, 1, b'r']);
        want.extend_from_slice(&[0, 0, 0, 4, b'd', b'e', b'n', b'y']);
        want.extend_from_slice(&[0, 0, 0, 1, b'c']);
        want.extend_from_slice(&[0, 0, 0, 0]);
        want.extend_from_slice(&[0, 0, 0, 1, b't']);
        want.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(rows, want);
    }
}
