//! Tracing end to end: one call through the gateway is one trace, gateway → service → SQL,
//! with the OpenTelemetry RPC attributes, and its trace id is the audit event's; and each
//! server times every call it answers in the `rpc.server.call.duration` histogram, while
//! the pools and the audit queue report their state.
//!
//! A binary of its own: the tracing subscriber is process-global, and this one exports to
//! the OpenTelemetry SDK's in-memory exporter.

use opentelemetry::Value;
use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use qi_e2e::{TestSuite, authed};
use qi_proto::google::r#type::Date;
use qi_proto::training as pb;
use qi_proto::training::training_service_client::TrainingServiceClient;

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn create(n: i32) -> pb::CreateCohortRequest {
    pb::CreateCohortRequest {
        parent: "sites/BAS".into(),
        cohort: Some(pb::Cohort {
            course: "trust/courses/qsir-prac".into(),
            display_name: format!("Traced cohort {n}"),
            start_date: Some(Date {
                year: 2027,
                month: 3,
                day: n,
            }),
            capacity: 20,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The spans of one trace: (gateway server span, service server span, SQL spans under it).
fn one_trace(spans: &[SpanData], trace: TraceId) -> (&SpanData, &SpanData, Vec<&SpanData>) {
    let mine: Vec<_> = spans
        .iter()
        .filter(|s| s.span_context.trace_id() == trace)
        .collect();
    let servers: Vec<_> = mine
        .iter()
        .filter(|s| s.span_kind == SpanKind::Server)
        .collect();
    assert_eq!(servers.len(), 2, "gateway and service: {servers:#?}");
    let service = servers
        .iter()
        .find(|s| {
            servers
                .iter()
                .any(|g| g.span_context.span_id() == s.parent_span_id)
        })
        .expect("the service's span is a child of the gateway's");
    let gateway = servers
        .iter()
        .find(|g| g.span_context.span_id() == service.parent_span_id)
        .expect("the gateway's span");
    let sql: Vec<_> = mine
        .iter()
        .copied()
        .filter(|s| s.span_kind == SpanKind::Client)
        .collect();
    for s in &sql {
        assert_eq!(
            s.parent_span_id,
            service.span_context.span_id(),
            "SQL runs in the service's span: {s:#?}"
        );
        assert_eq!(attr(s, "db.system.name"), Some(&Value::from("postgresql")));
        assert!(attr(s, "db.query.text").is_some());
    }
    (gateway, service, sql)
}

/// The calls timed in `rpc.server.call.duration` by `component` for `method`, by status
/// code: (code, calls, summed seconds), ordered by code.
fn timed_calls(metrics: &ResourceMetrics, component: &str, method: &str) -> Vec<(i64, u64, f64)> {
    let mut out = Vec::new();
    for m in metrics.scope_metrics().flat_map(|s| s.metrics()) {
        if m.name() != "rpc.server.call.duration" {
            continue;
        }
        assert_eq!(m.unit(), "s");
        let AggregatedMetrics::F64(MetricData::Histogram(h)) = m.data() else {
            panic!("a histogram of seconds: {m:#?}");
        };
        for p in h.data_points() {
            let get = |key: &str| {
                p.attributes()
                    .find(|kv| kv.key.as_str() == key)
                    .map(|kv| kv.value.clone())
            };
            if get("qi.component") == Some(Value::from(component.to_owned()))
                && get("rpc.method") == Some(Value::from(method.to_owned()))
            {
                assert_eq!(get("rpc.system"), Some(Value::from("grpc")));
                assert_eq!(
                    get("rpc.service"),
                    Some(Value::from("qi.training.v1.TrainingService"))
                );
                let Some(Value::I64(code)) = get("rpc.grpc.status_code") else {
                    panic!("a status code: {p:#?}");
                };
                out.push((code, p.count(), p.sum()));
            }
        }
    }
    out.sort_by_key(|&(code, ..)| code);
    out
}

/// The value of metric `name`, a sum (a counter or an up-down counter, observed or not),
/// at the data point whose attributes include all of `with`.
fn sum_of(metrics: &ResourceMetrics, name: &str, with: &[(&str, &str)]) -> Option<i64> {
    let matches = |attrs: &mut dyn Iterator<Item = &opentelemetry::KeyValue>| {
        let attrs: Vec<_> = attrs.collect();
        with.iter().all(|(k, v)| {
            attrs
                .iter()
                .any(|kv| kv.key.as_str() == *k && kv.value == Value::from(v.to_string()))
        })
    };
    let m = metrics
        .scope_metrics()
        .flat_map(|s| s.metrics())
        .find(|m| m.name() == name)?;
    match m.data() {
        AggregatedMetrics::I64(MetricData::Sum(sum)) => sum
            .data_points()
            .find(|p| matches(&mut p.attributes()))
            .map(|p| p.value()),
        AggregatedMetrics::U64(MetricData::Sum(sum)) => sum
            .data_points()
            .find(|p| matches(&mut p.attributes()))
            .map(|p| i64::try_from(p.value()).expect("a count that fits")),
        other @ (AggregatedMetrics::F64(_)
        | AggregatedMetrics::U64(_)
        | AggregatedMetrics::I64(_)) => panic!("{name} is not a sum: {other:#?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_through_the_gateway_is_one_trace_and_one_timed_call_per_server() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let metric_exporter = InMemoryMetricExporter::default();
    let meters = SdkMeterProvider::builder()
        .with_periodic_exporter(metric_exporter.clone())
        .build();
    let _telemetry = qi_platform::telemetry::init_with_providers(
        &qi_platform::Config::defaults(),
        provider.clone(),
        meters.clone(),
    )
    .expect("the subscriber installs");
    let suite = TestSuite::start().await;
    let token = suite.token("traced-lead", &["improvement_team"], &["BAS"]);
    let mut client = TrainingServiceClient::new(suite.channel.clone());

    // A trust system that traces sends its own context; the suite continues that trace.
    let theirs = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    let their_span = SpanId::from_hex("00f067aa0ba902b7").unwrap();
    let mut req = authed(&token, create(1));
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{theirs}-{their_span}-01").parse().unwrap(),
    );
    client.create_cohort(req).await.expect("created");
    // A caller that sends none gets a trace started by the gateway.
    client
        .create_cohort(authed(&token, create(2)))
        .await
        .expect("created");

    // A call the gateway refuses: its span carries the refusal's code.
    let viewer = suite.token("traced-viewer", &["viewer"], &["BAS"]);
    let denied = client
        .create_cohort(authed(&viewer, create(3)))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);

    // While the suite runs: every pool reports its connections, the gateway its audit queue.
    meters.force_flush().expect("metrics flushed");
    let running = metric_exporter.get_finished_metrics().expect("the metrics");
    let running = running.last().expect("one export");
    for pool in ["qi-gateway", "qi-training", "qi-projects", "qi-metrics"] {
        let state = |s| {
            sum_of(
                running,
                "db.client.connection.count",
                &[
                    ("db.client.connection.pool.name", pool),
                    ("db.client.connection.state", s),
                ],
            )
            .unwrap_or_else(|| panic!("{pool} reports its {s} connections"))
        };
        let (idle, used) = (state("idle"), state("used"));
        let max = sum_of(
            running,
            "db.client.connection.max",
            &[("db.client.connection.pool.name", pool)],
        )
        .unwrap_or_else(|| panic!("{pool} reports its size"));
        assert!(
            idle >= 0 && used >= 0 && idle + used >= 1 && idle + used <= max,
            "{pool}: idle {idle}, used {used}, max {max}"
        );
    }
    assert_eq!(
        sum_of(running, "qi.gateway.audit.logged", &[]),
        Some(0),
        "every audit event reached the table, none the log"
    );
    let queued = sum_of(running, "qi.gateway.audit.queued", &[]).expect("the queue's depth");
    assert!(
        (0..=3).contains(&queued),
        "at most this test's events: {queued}"
    );

    let url = suite.database_url.clone();
    suite.stop().await.expect("stops, flushing the audit trail");
    provider.force_flush().expect("spans flushed");
    meters.force_flush().expect("metrics flushed");
    let spans = exporter.get_finished_spans().expect("the finished spans");

    // Cumulative: the last export holds every call. The gateway answered all three
    // (PERMISSION_DENIED is 7); the service only the two it was sent.
    let exported = metric_exporter.get_finished_metrics().expect("the metrics");
    let metrics = exported.last().expect("one export at least");
    let gateway = timed_calls(metrics, "gateway", "CreateCohort");
    let training = timed_calls(metrics, "training", "CreateCohort");
    assert_eq!(
        gateway.iter().map(|&(c, n, _)| (c, n)).collect::<Vec<_>>(),
        [(0, 2), (7, 1)]
    );
    assert_eq!(
        training.iter().map(|&(c, n, _)| (c, n)).collect::<Vec<_>>(),
        [(0, 2)]
    );
    // The gateway's time for a call includes the service's.
    assert!(gateway[0].2 > training[0].2, "{gateway:?} {training:?}");
    assert!(training[0].2 > 0.0);
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let audited: Vec<String> = sqlx::query_scalar(
        "SELECT trace_id FROM gateway.audit_event
         WHERE subject = 'traced-lead' AND method LIKE '%/CreateCohort' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(audited.len(), 2);

    // Every CreateCohort server span belongs to one of the two traces, two to each.
    let create_spans: Vec<_> = spans
        .iter()
        .filter(|s| attr(s, "rpc.method") == Some(&Value::from("CreateCohort")))
        .collect();
    assert_eq!(create_spans.len(), 5, "{create_spans:#?}");
    let refused: Vec<_> = create_spans
        .iter()
        .filter(|s| attr(s, "rpc.grpc.status_code") == Some(&Value::I64(7)))
        .collect();
    assert_eq!(
        refused.len(),
        1,
        "PERMISSION_DENIED is 7: {create_spans:#?}"
    );

    for (i, audit_trace) in audited.iter().enumerate() {
        let trace = TraceId::from_hex(audit_trace).expect("the audit trace id is a trace id");
        if i == 0 {
            assert_eq!(trace, theirs, "the caller's trace is kept");
        }
        let (gateway, service, sql) = one_trace(&spans, trace);
        if i == 0 {
            assert_eq!(gateway.parent_span_id, their_span);
        } else {
            assert_eq!(gateway.parent_span_id, SpanId::INVALID, "a new trace");
        }
        for s in [gateway, service] {
            assert_eq!(attr(s, "rpc.system"), Some(&Value::from("grpc")));
            assert_eq!(
                attr(s, "rpc.service"),
                Some(&Value::from("qi.training.v1.TrainingService"))
            );
            assert_eq!(attr(s, "rpc.method"), Some(&Value::from("CreateCohort")));
            assert_eq!(attr(s, "rpc.grpc.status_code"), Some(&Value::I64(0)));
        }
        // The cohort, its sessions and its read-back: the insert is among the statements.
        assert!(
            sql.iter().any(|s| matches!(
                attr(s, "db.query.text"),
                Some(Value::String(q)) if q.as_str().contains("INSERT INTO cohort")
            )),
            "{sql:#?}"
        );
        eprintln!(
            "trace {trace}: gateway span {}, service span {}, {} SQL spans",
            gateway.span_context.span_id(),
            service.span_context.span_id(),
            sql.len()
        );
    }
}
