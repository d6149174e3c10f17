//! The audit trail: every access decision, allow or deny, stored in the gateway's schema.
//!
//! Recording never waits on the database: events go into a bounded queue that a writer task
//! drains in batches (one `INSERT … SELECT FROM UNNEST` each). A failed batch is retried;
//! at shutdown the queue is drained and flushed after the server has finished its calls, so
//! a graceful stop loses nothing. Only if the queue overflows (the database down for long
//! under load) are events dropped, each drop logged and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use qi_platform::Error;
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
    (
        AuditLog {
            queue,
            dropped: Arc::new(AtomicU64::new(0)),
        },
        AuditWriter { stop, done },
    )
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

/// Writes a batch with one `COPY`: PostgreSQL's cheapest way in, and no per-column arrays
/// to build on our side. A COPY is one statement, so a failed batch leaves nothing behind
/// and is retried whole.
async fn write(pool: &PgPool, batch: &[AuditEvent]) -> Result<(), sqlx::Error> {
    let text = copy_text(batch);
    let mut conn = pool.acquire().await?;
    let mut copy = conn
        .copy_in_raw(
            "COPY audit_event (time, subject, method, site, resource, decision, code, reason, trace_id)
             FROM STDIN",
        )
        .await?;
    copy.send(text.as_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

/// The batch as rows of `COPY … FROM STDIN` text.
fn copy_text(batch: &[AuditEvent]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(batch.len() * 160);
    for e in batch {
        let _ = write!(out, "{}\t", e.time.format("%Y-%m-%d %H:%M:%S%.6f+00"));
        for field in [
            Some(e.subject.as_str()),
            Some(e.method.as_str()),
            e.site.as_deref(),
            e.resource.as_deref(),
            Some(if e.allowed { "allow" } else { "deny" }),
            Some(e.code.as_str()),
            Some(e.reason.as_str()),
        ] {
            match field {
                Some(v) => escape_into(&mut out, v),
                None => out.push_str("\\N"),
            }
            out.push('\t');
        }
        escape_into(&mut out, &e.trace_id);
        out.push('\n');
    }
    out
}

/// Appends `value` escaped for COPY's text format (a subject or reason is caller-controlled:
/// a tab or newline in it must stay data).
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            // PostgreSQL text cannot hold NUL: one in a request's name must not sink the
            // whole batch (everyone's events) on every retry.
            '\0' => out.push(char::REPLACEMENT_CHARACTER),
            c => out.push(c),
        }
    }
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
        u32::try_from(t.nanos)
            .ok()
            .and_then(|n| DateTime::from_timestamp(t.seconds, n))
            .ok_or_else(|| Error::invalid(field, "is not a valid time"))
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
    fn copy_rows_keep_caller_text_as_data() {
        let event = AuditEvent {
            time: DateTime::from_timestamp(1_764_000_000, 123_456_000).unwrap(),
            subject: "a\tb\nc\\d\re\0f".into(),
            method: "/qi.training.v1.TrainingService/GetCourse".into(),
            site: None,
            resource: Some("sites/BAS/x".into()),
            allowed: false,
            code: "PermissionDenied".into(),
            reason: "no".into(),
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
        };
        let text = copy_text(&[event.clone(), event]);
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows.len(), 2);
        let fields: Vec<&str> = rows[0].split('\t').collect();
        assert_eq!(
            fields,
            [
                "2025-11-24 16:00:00.123456+00",
                "a\\tb\\nc\\\\d\\re\u{fffd}f",
                "/qi.training.v1.TrainingService/GetCourse",
                "\\N",
                "sites/BAS/x",
                "deny",
                "PermissionDenied",
                "no",
                "0af7651916cd43dd8448eb211c80319c",
            ]
        );
    }
}
