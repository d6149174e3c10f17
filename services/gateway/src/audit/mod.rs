//! The audit trail: every access decision, allow or deny, stored in the gateway's schema.
//!
//! Recording never waits on the database: events go into a bounded queue
//! (`QI_AUDIT_QUEUE`, 50,000 events by default, about 20 MiB at most) that a writer task drains in batches (one binary `COPY` each). A
//! failed batch is retried, with backoff, for as long as the gateway runs: nothing is
//! dropped. While the writer cannot write, the gateway reports NOT_SERVING to its readiness
//! probe ([`AuditLog::healthy`]); once the queue is full it fails closed, answering new calls
//! UNAVAILABLE ([`AuditLog::accepting`]) until the queue drains.
//!
//! Refusals made before authentication (no token or a bad one, an unknown method) cost no
//! row each: identical ones (same client address, method, code and reason) are counted,
//! and each [`WINDOW`] one event carries the count. A flood of garbage tokens from one
//! address writes a row a minute, not a row a call.
//!
//! At shutdown the queue is flushed after the server has finished its calls, for at most
//! [`FLUSH`]; whatever the database does not take by then (it is down, or hangs) is written
//! to the log as one structured record per event, holding every field, under the target
//! `qi::audit`, for the platform's log pipeline to keep. Only a SIGKILL loses events, and
//! then at most the queue and one batch.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

mod list;
mod store;

pub(crate) use list::list;

/// How long identical refusals before authentication are counted into one event.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Kinds of refusal counted at once; more are written early, so memory stays bounded.
const REFUSAL_KINDS: usize = 10_000;

/// How long the shutdown flush may take before the rest goes to the log.
pub const FLUSH: Duration = Duration::from_secs(3);
/// How long one write may take before it counts as failed (a database that accepts
/// connections but does not answer).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
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
    /// The caller's address (see `client::address`), when known.
    pub client_address: Option<String>,
    /// Identical decisions this event stands for (refusals before authentication are
    /// aggregated per client address and window); 1 otherwise.
    pub count: u32,
}

/// The recording half, cloned into every call.
#[derive(Debug, Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<AuditEvent>,
    /// Whether the last write succeeded (readiness).
    healthy: Arc<AtomicBool>,
    /// Events that went to the log instead of the table.
    logged: Arc<AtomicU64>,
    /// Refusals before authentication being counted, by kind.
    refusals: Arc<Mutex<HashMap<RefusalKind, AuditEvent>>>,
}

/// What makes two refusals before authentication the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RefusalKind {
    client_address: Option<String>,
    method: String,
    code: String,
    reason: String,
}

impl AuditLog {
    /// Queues an event without waiting. When the queue is full (or closed, at shutdown) the
    /// event goes to the log instead, so no decision is left unrecorded; `false` then.
    pub fn record(&self, event: AuditEvent) -> bool {
        match self.queue.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(e) | mpsc::error::TrySendError::Closed(e)) => {
                self.logged.fetch_add(1, Ordering::Relaxed);
                log_unwritten(&e);
                false
            }
        }
    }

    /// Records a refusal made before authentication: counted with identical ones from the
    /// same client address, and written (the first one, with the count) at the end of the
    /// [`WINDOW`].
    pub fn record_unauthenticated(&self, event: AuditEvent) {
        let kind = RefusalKind {
            client_address: event.client_address.clone(),
            method: event.method.clone(),
            code: event.code.clone(),
            reason: event.reason.clone(),
        };
        let full = {
            let mut refusals = self.refusals.lock().unwrap_or_else(PoisonError::into_inner);
            let len = refusals.len();
            match refusals.entry(kind) {
                Entry::Occupied(mut counted) => {
                    let e = counted.get_mut();
                    e.count = e.count.saturating_add(event.count);
                }
                Entry::Vacant(new) => {
                    new.insert(event);
                }
            }
            len + 1 >= REFUSAL_KINDS
        };
        if full {
            self.flush_refusals();
        }
    }

    /// Queues the counted refusals, each as one event.
    fn flush_refusals(&self) {
        let counted =
            std::mem::take(&mut *self.refusals.lock().unwrap_or_else(PoisonError::into_inner));
        for event in counted.into_values() {
            self.record(event);
        }
    }

    /// Whether a new call can be audited: the queue has room. When it has not, the gateway
    /// refuses calls (fail closed) until it has.
    pub fn accepting(&self) -> bool {
        self.queue.capacity() > 0
    }

    /// Whether the writer's last attempt reached the database (the readiness signal).
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed) && self.accepting()
    }

    /// Events written to the log instead of the table since start.
    pub fn logged(&self) -> u64 {
        self.logged.load(Ordering::Relaxed)
    }
}

/// One event the table did not take, as a structured log record holding all its fields.
fn log_unwritten(e: &AuditEvent) {
    tracing::warn!(
        target: "qi::audit",
        time = %e.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        subject = e.subject,
        method = e.method,
        site = e.site.as_deref().unwrap_or(""),
        resource = e.resource.as_deref().unwrap_or(""),
        decision = if e.allowed { "allow" } else { "deny" },
        code = e.code,
        reason = e.reason,
        trace_id = e.trace_id,
        client_address = e.client_address.as_deref().unwrap_or(""),
        count = e.count,
        "audit event not written to the table"
    );
}

/// The writing half: stops and flushes on [`AuditWriter::shutdown`].
#[derive(Debug)]
pub struct AuditWriter {
    log: AuditLog,
    stop: oneshot::Sender<Instant>,
    done: tokio::task::JoinHandle<()>,
    counting: tokio::task::JoinHandle<()>,
}

impl AuditWriter {
    /// Writes what is queued for at most [`FLUSH`], logs the rest, then stops. Call after the
    /// server has drained.
    pub async fn shutdown(self) {
        self.counting.abort();
        self.log.flush_refusals();
        let _ = self.stop.send(Instant::now() + FLUSH);
        if let Err(e) = self.done.await {
            tracing::error!(error = %e, "the audit writer failed while flushing");
        }
    }
}

/// The writer's view of the stop: none yet, or the deadline of the flush.
struct Stop {
    signal: oneshot::Receiver<Instant>,
    by: Option<Instant>,
}

impl Stop {
    /// Waits for `fut` unless the stop comes first (`None` then, or at once if it has).
    async fn unless_stopped<F: Future>(&mut self, fut: F) -> Option<F::Output> {
        if self.by.is_some() {
            return None;
        }
        tokio::select! {
            out = fut => Some(out),
            at = &mut self.signal => {
                // A writer dropped without a word stops now.
                self.by = Some(at.unwrap_or_else(|_| Instant::now()));
                None
            }
        }
    }

    /// Waits for `fut` until it completes or, once stopping, the flush deadline passes.
    async fn bounded<F: Future>(&mut self, fut: F) -> Option<F::Output> {
        tokio::pin!(fut);
        if self.by.is_none() {
            tokio::select! {
                out = &mut fut => return Some(out),
                at = &mut self.signal => self.by = Some(at.unwrap_or_else(|_| Instant::now())),
            }
        }
        let by = self.by.unwrap_or_else(Instant::now);
        tokio::time::timeout_at(by, fut).await.ok()
    }
}

/// Starts the writer over `pool` (search_path `gateway`), holding at most `capacity`
/// events (at least 1) for it.
pub fn start(pool: PgPool, capacity: usize) -> (AuditLog, AuditWriter) {
    let (queue, rx) = mpsc::channel(capacity.max(1));
    let (stop, signal) = oneshot::channel();
    let log = AuditLog {
        queue,
        healthy: Arc::new(AtomicBool::new(true)),
        logged: Arc::new(AtomicU64::new(0)),
        refusals: Arc::default(),
    };
    let stop_state = Stop { signal, by: None };
    let done = tokio::spawn(write_until_stopped(
        pool,
        rx,
        stop_state,
        log.healthy.clone(),
    ));
    let counting = tokio::spawn({
        let log = log.clone();
        async move {
            let mut windows = tokio::time::interval_at(Instant::now() + WINDOW, WINDOW);
            loop {
                windows.tick().await;
                log.flush_refusals();
            }
        }
    });
    observe(&log);
    let writer = AuditWriter {
        log: log.clone(),
        stop,
        done,
        counting,
    };
    (log, writer)
}

/// The writer: gathers batches, writes each until it is in (retrying with backoff), and at
/// the stop flushes what is queued until the deadline, then logs the rest.
async fn write_until_stopped(
    pool: PgPool,
    mut rx: mpsc::Receiver<AuditEvent>,
    mut stop: Stop,
    healthy: Arc<AtomicBool>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut delay = RETRY_FIRST;
    let mut written = 0usize;
    loop {
        if batch.is_empty() {
            if let Some(Some(first)) = stop.unless_stopped(rx.recv()).await {
                batch.push(first);
                let until = Instant::now() + GATHER;
                while batch.len() < BATCH {
                    match stop
                        .unless_stopped(tokio::time::timeout_at(until, rx.recv()))
                        .await
                    {
                        Some(Ok(Some(e))) => batch.push(e),
                        _ => break,
                    }
                }
            }
            if stop.by.is_some() {
                // Stopping: take what is queued, wait for nothing more.
                rx.close();
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(e) => batch.push(e),
                        Err(_) => break,
                    }
                }
            }
            if batch.is_empty() {
                if stop.by.is_some() || rx.is_closed() {
                    break;
                }
                continue;
            }
        }
        let attempt = tokio::time::timeout(WRITE_TIMEOUT, store::write(&pool, &batch));
        match stop.bounded(attempt).await {
            Some(Ok(Ok(()))) => {
                written += batch.len();
                batch.clear();
                delay = RETRY_FIRST;
                if !healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!("audit events are being written again");
                }
            }
            Some(failed) => {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {WRITE_TIMEOUT:?}"),
                };
                healthy.store(false, Ordering::Relaxed);
                tracing::warn!(
                    error,
                    events = batch.len(),
                    "writing audit events failed; retrying"
                );
                if stop.bounded(tokio::time::sleep(delay)).await.is_none() {
                    break;
                }
                delay = (delay * 2).min(RETRY_MAX);
            }
            // The flush deadline passed.
            None => break,
        }
    }
    rx.close();
    let mut unwritten = batch.len();
    batch.iter().for_each(log_unwritten);
    while let Ok(e) = rx.try_recv() {
        log_unwritten(&e);
        unwritten += 1;
    }
    if unwritten > 0 {
        tracing::error!(
            unwritten,
            "the database did not take the last audit events in time: they are in the log, target qi::audit"
        );
    }
    tracing::info!(written, "audit writer stopped");
}

/// The first and the longest wait between write attempts.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Reports the queue, read at each metrics export: `qi.gateway.audit.queued` (events
/// waiting for the writer), `qi.gateway.audit.logged` (events the table could not take,
/// written to the log instead: any is an alert) and `qi.gateway.audit.healthy`.
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
    let logged = log.logged.clone();
    meter
        .u64_observable_counter("qi.gateway.audit.logged")
        .with_unit("{event}")
        .with_description("Audit events written to the log because the table could not take them")
        .with_callback(move |o| o.observe(logged.load(Ordering::Relaxed), &[]))
        .build();
    let healthy = log.healthy.clone();
    meter
        .i64_observable_gauge("qi.gateway.audit.healthy")
        .with_description("1 while audit events reach the database, 0 while they do not")
        .with_callback(move |o| o.observe(i64::from(healthy.load(Ordering::Relaxed)), &[]))
        .build();
}
