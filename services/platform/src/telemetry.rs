//! Telemetry, initialised once per process: a `tracing` subscriber writing readable lines
//! (or JSON with `QI_LOG_FORMAT=json`), filtered by `QI_LOG`, plus, when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans and metrics exported over OTLP/gRPC. W3C trace
//! context is the propagator, so a trace follows a call from the gateway into the services.
//! Every server records each call's duration ([`RpcStatusLayer`]); with no endpoint the
//! global meter is OpenTelemetry's no-op one.

use anyhow::Context as _;
use std::time::Instant;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Histogram;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{Config, LogFormat};

/// Keeps the span and metric exporters alive; flushes and stops them when dropped. The
/// flush blocks and needs the Tokio runtime the exporters were built in: drop it from
/// `spawn_blocking` once the work is done, not after the runtime has ended.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    meters: Option<SdkMeterProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("flushing spans: {e}");
        }
        if let Some(meters) = self.meters.take()
            && let Err(e) = meters.shutdown()
        {
            eprintln!("flushing metrics: {e}");
        }
    }
}

/// Installs the global subscriber for `service_name`. Must run inside a Tokio runtime when
/// OTLP export is on.
pub fn init(config: &Config, service_name: &str) -> anyhow::Result<TelemetryGuard> {
    let Some(endpoint) = &config.otlp_endpoint else {
        return install(config, None, None);
    };
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    let spans = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .build()
        .context("building the OTLP span exporter")?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(spans)
        .with_resource(resource.clone())
        .build();
    // Exported every 60 s unless `OTEL_METRIC_EXPORT_INTERVAL` (ms) says otherwise.
    let metrics = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .build()
        .context("building the OTLP metric exporter")?;
    let meters = SdkMeterProvider::builder()
        .with_periodic_exporter(metrics)
        .with_resource(resource)
        .build();
    install(config, Some(provider), Some(meters))
}

/// Installs the global subscriber exporting spans through `provider` and metrics through
/// `meters` (tests pass them over the SDK's in-memory exporters).
pub fn init_with_providers(
    config: &Config,
    provider: SdkTracerProvider,
    meters: SdkMeterProvider,
) -> anyhow::Result<TelemetryGuard> {
    install(config, Some(provider), Some(meters))
}

fn install(
    config: &Config,
    provider: Option<SdkTracerProvider>,
    meters: Option<SdkMeterProvider>,
) -> anyhow::Result<TelemetryGuard> {
    let filter = || {
        EnvFilter::try_new(&config.log_filter)
            .with_context(|| format!("QI_LOG={:?} is not a log filter", config.log_filter))
    };
    let fmt = match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    // Each layer filters for itself: the SQL spans need sqlx's DEBUG statement events,
    // which the log lines do not show.
    let (otel, sql) = match &provider {
        Some(provider) => (
            Some(
                tracing_opentelemetry::layer()
                    .with_tracer(provider.tracer("qi"))
                    .with_filter(filter()?),
            ),
            Some(
                SqlSpans {
                    tracer: provider.tracer("qi.sql"),
                }
                // The spans the statements belong under must pass this filter too.
                .with_filter(
                    EnvFilter::try_new(format!("{},sqlx::query=debug", config.log_filter))
                        .context("QI_LOG with sqlx::query=debug")?,
                ),
            ),
        ),
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter()?))
        .with(otel)
        .with(sql)
        .try_init()
        .context("installing the tracing subscriber")?;
    // Before any server starts: instruments made from the no-op meter stay no-ops.
    if let Some(meters) = &meters {
        opentelemetry::global::set_meter_provider(meters.clone());
    }
    Ok(TelemetryGuard { provider, meters })
}

/// For tests: logs go nowhere unless `TEST_LOG` is set. Safe to call from every test.
pub fn init_for_tests() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(EnvFilter::new("debug"))
                .with_test_writer()
                .try_init();
        }
    });
}

/// The span of one call, with the OpenTelemetry RPC semantic-convention attributes, a child
/// of the caller's W3C trace context when the call carries one (the gateway's span, for a
/// service). `rpc.grpc.status_code` is recorded when the call ends ([`RpcStatusLayer`]).
pub fn rpc_span(req: &http::Request<()>) -> tracing::Span {
    let path = req.uri().path();
    let (service, method) = service_and_method(path);
    let span = tracing::info_span!(
        "rpc",
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        rpc.grpc.status_code = tracing::field::Empty,
    );
    let parent =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(req.headers())));
    if parent.span().span_context().is_valid() {
        // Fails only when no OpenTelemetry layer is installed: nothing to link then.
        let _ = span.set_parent(parent);
    }
    span
}

/// `/pkg.Service/Method` as (`pkg.Service`, `Method`).
fn service_and_method(path: &str) -> (&str, &str) {
    path.trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""))
}

/// A tower layer, inside the call's span: rewrites the call's `traceparent` to this
/// server's span, so what the handler forwards (the gateway's call to a service) and
/// records (the audit event's trace id) continues this span's trace; records the call's
/// `rpc.grpc.status_code` on the span when the status is known (response head or trailers);
/// and records the call's duration in the `rpc.server.call.duration` histogram when the
/// answer is over (or abandoned).
#[derive(Debug, Clone)]
pub struct RpcStatusLayer {
    component: &'static str,
    duration: Histogram<f64>,
}

/// The histogram's bucket bounds, in seconds: sub-millisecond reads to the longest calls.
const DURATION_BOUNDS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl RpcStatusLayer {
    /// The layer of the server of `component` (`gateway`, `training`, …), which is the
    /// `qi.component` attribute of its metrics: `qi up` serves them all from one process.
    pub fn new(component: &'static str) -> Self {
        let duration = opentelemetry::global::meter("qi")
            .f64_histogram("rpc.server.call.duration")
            .with_unit("s")
            .with_description("How long each call took, until its status was sent")
            .with_boundaries(DURATION_BOUNDS.to_vec())
            .build();
        RpcStatusLayer {
            component,
            duration,
        }
    }
}

impl<S> tower::Layer<S> for RpcStatusLayer {
    type Service = RpcStatus<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RpcStatus {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`RpcStatusLayer`].
#[derive(Debug, Clone)]
pub struct RpcStatus<S> {
    inner: S,
    layer: RpcStatusLayer,
}

/// One call's duration, recorded when dropped: with the status seen, or as CANCELLED when
/// the call ended without one (the caller went away, or the server failed to answer).
struct CallTimer {
    layer: RpcStatusLayer,
    started: Instant,
    service: String,
    method: String,
    code: Option<i64>,
}

/// The gRPC code of a call that ended without a status.
const CANCELLED: i64 = 1;

// The service and method come from the caller's path, so a caller can make up new ones:
// the SDK keeps at most 2,000 attribute sets per instrument and folds the rest into one
// overflow set, so they cannot grow the meter's memory.
impl Drop for CallTimer {
    fn drop(&mut self) {
        self.layer.duration.record(
            self.started.elapsed().as_secs_f64(),
            &[
                KeyValue::new("qi.component", self.layer.component),
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("rpc.service", std::mem::take(&mut self.service)),
                KeyValue::new("rpc.method", std::mem::take(&mut self.method)),
                KeyValue::new("rpc.grpc.status_code", self.code.unwrap_or(CANCELLED)),
            ],
        );
    }
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B, ResBody> tower::Service<http::Request<B>> for RpcStatus<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: Send + 'static,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // The ready service goes into the future; a clone stays for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (service, method) = service_and_method(req.uri().path());
        let mut timer = CallTimer {
            layer: self.layer.clone(),
            started: Instant::now(),
            service: service.to_owned(),
            method: method.to_owned(),
            code: None,
        };
        Box::pin(async move {
            // tonic enters the call's span only while polling: read it here, not in `call`.
            let span = tracing::Span::current();
            let cx = span.context();
            if cx.span().span_context().is_valid() {
                opentelemetry::global::get_text_map_propagator(|p| {
                    p.inject_context(&cx, &mut HeadersMut(req.headers_mut()));
                });
            }
            let response = inner.call(req).await?;
            if let Some(code) = grpc_status(response.headers()) {
                span.record("rpc.grpc.status_code", code);
                timer.code = Some(code);
            }
            Ok(response.map(|body| {
                // The timer lives as long as the body: dropped once the trailers are sent.
                tonic::body::Body::new(http_body_util::BodyExt::map_frame(body, move |frame| {
                    // Names the whole timer, so the closure owns it, not a copy of its code.
                    let timer = &mut timer;
                    if let Some(code) = frame.trailers_ref().and_then(grpc_status) {
                        span.record("rpc.grpc.status_code", code);
                        timer.code = Some(code);
                    }
                    frame
                }))
            }))
        })
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<i64> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

struct Headers<'a>(&'a http::HeaderMap);

impl opentelemetry::propagation::Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeadersMut<'a>(&'a mut http::HeaderMap);

impl opentelemetry::propagation::Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// Turns sqlx's statement events (`sqlx::query`, one when each statement finishes, with its
/// text and duration) into OpenTelemetry client spans under the current span, so a trace
/// reaches the SQL without wrapping every query.
struct SqlSpans {
    tracer: opentelemetry_sdk::trace::SdkTracer,
}

impl<S> Layer<S> for SqlSpans
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        use opentelemetry::trace::{Span as _, SpanKind, Tracer as _};
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let Some(current) = ctx.lookup_current() else {
            return;
        };
        // The global subscriber (telemetry is installed once, globally) is reachable here.
        let Some(parent) = tracing::dispatcher::get_default(|dispatch| {
            tracing_opentelemetry::get_otel_context(&current.id(), dispatch)
        }) else {
            return;
        };
        let mut sql = SqlFields::default();
        event.record(&mut sql);
        let text = if sql.statement.trim().is_empty() {
            sql.summary
        } else {
            sql.statement.trim().to_owned()
        };
        let operation = text
            .split_whitespace()
            .next()
            .unwrap_or("SQL")
            .to_ascii_uppercase();
        let end = std::time::SystemTime::now();
        let start = end - std::time::Duration::from_secs_f64(sql.elapsed_secs.max(0.0));
        let mut span = self
            .tracer
            .span_builder(operation.clone())
            .with_kind(SpanKind::Client)
            .with_start_time(start)
            .with_attributes([
                opentelemetry::KeyValue::new("db.system.name", "postgresql"),
                opentelemetry::KeyValue::new("db.operation.name", operation),
                opentelemetry::KeyValue::new("db.query.text", text),
                opentelemetry::KeyValue::new("db.response.returned_rows", sql.rows_returned),
            ])
            .start_with_context(&self.tracer, &parent);
        span.end_with_timestamp(end);
    }
}

#[derive(Default)]
struct SqlFields {
    summary: String,
    statement: String,
    elapsed_secs: f64,
    rows_returned: i64,
}

impl tracing::field::Visit for SqlFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_owned(),
            "db.statement" => self.statement = value.to_owned(),
            _ => {}
        }
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = value;
        }
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        if field.name() == "rows_returned" {
            self.rows_returned = i64::try_from(value).unwrap_or(i64::MAX);
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "summary" => self.summary = format!("{value:?}").trim_matches('"').to_owned(),
            "db.statement" => self.statement = format!("{value:?}").trim_matches('"').to_owned(),
            _ => {}
        }
    }
}
