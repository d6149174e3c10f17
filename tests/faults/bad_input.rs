//! The bad-input sweep: every RPC of every service, called through the gateway with
//! requests generated from the contracts (no per-RPC hand-written cases; a client stream
//! gets the request as its one message): the empty request, and for each field the request
//! can carry, a malformed value of its type — a string past any sensible length, an unknown
//! enum number, NaN, an impossible date, a negative number, a site that does not exist —
//! plus a message over the size limit.
//! Every answer must be a client error (never INTERNAL, UNKNOWN, UNAVAILABLE or a hang);
//! INVALID_ARGUMENT must carry field violations, and a field the malformed value adds to the
//! violations must be the field that was malformed; and nothing is stored.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor,
    ReflectMessage as _, Value,
};
use qi_e2e::{TestSuite, authed};
use tonic::Code;
use tonic_types::StatusExt;

/// `google.api.field_behavior` values the sweep leaves alone: servers ignore them on input.
const OUTPUT_ONLY: i32 = 3;
const IDENTIFIER: i32 = 8;
const REQUIRED: i32 = 2;

/// A string no field should take (but well inside the message limit).
fn oversized() -> String {
    "x".repeat(100_000)
}

fn behaviours(pool: &DescriptorPool, field: &FieldDescriptor) -> Vec<i32> {
    let Some(ext) = pool.get_extension_by_name("google.api.field_behavior") else {
        return Vec::new();
    };
    let options = field.options();
    if !options.has_extension(&ext) {
        return Vec::new();
    }
    if let Value::List(items) = options.get_extension(&ext).as_ref() {
        items.iter().filter_map(Value::as_enum_number).collect()
    } else {
        Vec::new()
    }
}

/// The fields a caller sets: top level, and one level into singular messages.
fn input_fields(pool: &DescriptorPool, m: &MessageDescriptor) -> Vec<Vec<FieldDescriptor>> {
    let mut out = Vec::new();
    for f in m.fields() {
        let b = behaviours(pool, &f);
        if b.contains(&OUTPUT_ONLY) || b.contains(&IDENTIFIER) || f.is_map() {
            continue;
        }
        out.push(vec![f.clone()]);
        if let Kind::Message(inner) = f.kind()
            && !f.is_list()
            && !inner.full_name().starts_with("google.")
        {
            for g in inner.fields() {
                let b = behaviours(pool, &g);
                if !(b.contains(&OUTPUT_ONLY) || b.contains(&IDENTIFIER) || g.is_map()) {
                    out.push(vec![f.clone(), g]);
                }
            }
        }
    }
    out
}

fn dotted(path: &[FieldDescriptor]) -> String {
    path.iter()
        .map(|f| f.name().to_owned())
        .collect::<Vec<_>>()
        .join(".")
}

/// Sets the field at `path` (creating the message on the way).
fn set(msg: &mut DynamicMessage, path: &[FieldDescriptor], value: Value) {
    match path {
        [] => {}
        [last] => msg.set_field(last, value),
        [first, rest @ ..] => {
            let inner = msg.get_field_mut(first);
            if let Value::Message(inner) = inner {
                set(inner, rest, value);
            }
        }
    }
}

/// The malformed values for a field of this type, each with its name.
#[allow(
    clippy::wildcard_enum_match_arm,
    reason = "kinds without a malformed value (bools, bytes, other messages) get none"
)]
fn malformed(pool: &DescriptorPool, field: &FieldDescriptor) -> Vec<(&'static str, Value)> {
    let one = |v: Value| {
        if field.is_list() {
            Value::List(vec![v])
        } else {
            v
        }
    };
    match field.kind() {
        Kind::String => {
            let mut cases = vec![("oversized string", one(Value::String(oversized())))];
            if field.name() == "parent" || field.name() == "name" || field.name().ends_with("site")
            {
                cases.push(("unknown site", one(Value::String("sites/ZZZ".into()))));
            }
            if field.name().ends_with("site_code") {
                cases.push(("unknown site code", one(Value::String("ZZZ".into()))));
            }
            cases
        }
        Kind::Enum(_) => vec![("unknown enum value", one(Value::EnumNumber(999)))],
        Kind::Double => vec![("NaN", one(Value::F64(f64::NAN)))],
        Kind::Float => vec![("NaN", one(Value::F32(f32::NAN)))],
        Kind::Int32 => vec![("negative", one(Value::I32(-1)))],
        Kind::Int64 => vec![("negative", one(Value::I64(-1)))],
        Kind::Message(m) if m.full_name() == "google.type.Date" => {
            let mut date = DynamicMessage::new(m.clone());
            date.set_field_by_name("year", Value::I32(99_999));
            date.set_field_by_name("month", Value::I32(13));
            date.set_field_by_name("day", Value::I32(40));
            vec![("date out of range", one(Value::Message(date)))]
        }
        Kind::Message(m) if m.full_name() == "google.protobuf.Timestamp" => {
            let mut t = DynamicMessage::new(m.clone());
            t.set_field_by_name("seconds", Value::I64(i64::MAX));
            t.set_field_by_name("nanos", Value::I32(-5));
            vec![("timestamp out of range", one(Value::Message(t)))]
        }
        _ => {
            let _ = pool;
            Vec::new()
        }
    }
}

/// A request with its resource field set for the BAS site (so malformed values are checked
/// past the gateway), or as empty when the method names none.
fn baseline(method: &MethodDescriptor, resource_field: &str) -> DynamicMessage {
    let mut msg = DynamicMessage::new(method.input());
    if resource_field.ends_with("parent") {
        let path: Vec<FieldDescriptor> = resource_field
            .split('.')
            .scan(method.input(), |m, part| {
                let f = m.get_field_by_name(part)?;
                if let Kind::Message(inner) = f.kind() {
                    *m = inner;
                }
                Some(f)
            })
            .collect();
        set(&mut msg, &path, Value::String("sites/BAS".into()));
    }
    // A client stream's first message is its header, which says when (the HR sync's
    // `extract_time`): given, so the malformed values of the header's other fields are
    // checked rather than refused for the missing time.
    if method.is_client_streaming() {
        for field in method.input().fields() {
            if let Kind::Message(m) = field.kind()
                && m.full_name() == "google.protobuf.Timestamp"
                && !field.is_list()
            {
                let mut t = DynamicMessage::new(m);
                t.set_field_by_name("seconds", Value::I64(1_790_000_000));
                msg.set_field(&field, Value::Message(t));
            }
        }
    }
    msg
}

struct Answer {
    code: Code,
    fields: BTreeSet<String>,
    message: String,
}

async fn call(suite: &TestSuite, token: &str, method: &MethodDescriptor, body: Bytes) -> Answer {
    let mut grpc =
        tonic::client::Grpc::new(suite.channel.clone()).max_encoding_message_size(64 * 1024 * 1024);
    grpc.ready().await.expect("the gateway is ready");
    let path = format!("/{}/{}", method.parent_service().full_name(), method.name());
    let mut req = authed(token, body);
    req.set_timeout(std::time::Duration::from_secs(10));
    let path = path.parse().unwrap();
    let outcome = if method.is_client_streaming() {
        // The request as a stream of that one message.
        grpc.client_streaming(
            req.map(|m| tokio_stream::iter([m])),
            path,
            qi_platform::codec::BytesCodec,
        )
        .await
        .map(|_| ())
    } else if method.is_server_streaming() {
        // A stream's refusal may come as its first answer or after messages: read it all
        // (a change feed, which stays open, up to the checkpoint ending its backlog).
        match grpc
            .server_streaming(req, path, qi_platform::codec::BytesCodec)
            .await
        {
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(item)) if qi_e2e::is_checkpoint(&method.output(), &item) => {
                            break Ok(());
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => break Ok(()),
                        Err(status) => break Err(status),
                    }
                }
            }
            Err(status) => Err(status),
        }
    } else {
        grpc.unary(req, path, qi_platform::codec::BytesCodec)
            .await
            .map(|_| ())
    };
    match outcome {
        Ok(()) => Answer {
            code: Code::Ok,
            fields: BTreeSet::new(),
            message: String::new(),
        },
        Err(status) => Answer {
            code: status.code(),
            fields: status
                .get_details_bad_request()
                .map(|b| b.field_violations.into_iter().map(|f| f.field).collect())
                .unwrap_or_default(),
            message: status.message().to_owned(),
        },
    }
}

/// Whether a violation's field is the malformed one (or inside it, or it inside the
/// violation: `cohort.start_date` for `cohort.start_date.month`).
fn names(violation: &str, field: &str) -> bool {
    let strip = |s: &str| s.split('[').next().unwrap_or(s).to_owned();
    let (v, f) = (strip(violation), field.to_owned());
    v == f
        || v.starts_with(&format!("{f}."))
        || f.starts_with(&format!("{v}."))
        || violation.starts_with(&format!("{f}["))
}

/// Whether the field a violation names is unset (empty) in the request.
fn unset(msg: &DynamicMessage, violation: &str) -> bool {
    let mut current = msg.clone();
    let parts: Vec<&str> = violation.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let part = part.split('[').next().unwrap_or(part);
        let Some(field) = current.descriptor().get_field_by_name(part) else {
            return false;
        };
        if !current.has_field(&field) {
            return true;
        }
        let value = current.get_field(&field);
        let (Value::Message(inner), true) = (value.as_ref(), i + 1 < parts.len()) else {
            return false;
        };
        current = inner.clone();
    }
    false
}

async fn row_counts(suite: &TestSuite) -> Vec<(String, i64)> {
    let pool = sqlx::PgPool::connect(&suite.database_url).await.unwrap();
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema, table_name FROM information_schema.tables
         WHERE table_schema IN ('training', 'projects', 'metrics', 'gateway')
           AND table_type = 'BASE TABLE'
           -- The audit trail (partitioned by month) records every call, refusals included.
           AND NOT (table_schema = 'gateway' AND table_name ~ '^audit_event(_|$)')
           -- What the projects service learns from the training feed, on its own time.
           AND NOT (table_schema = 'projects' AND table_name IN ('feed', 'staff_place'))
         ORDER BY 1, 2",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut out = Vec::new();
    for (schema, table) in tables {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM \"{schema}\".\"{table}\""
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
        out.push((format!("{schema}.{table}"), n));
    }
    pool.close().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[allow(
    clippy::wildcard_enum_match_arm,
    reason = "every code not listed is a failure of the sweep"
)]
async fn every_rpc_refuses_malformed_requests_naming_the_field_and_stores_nothing() {
    let suite = TestSuite::start_with(&[("QI_RATE_LIMIT_PER_SUBJECT", "0")]).await;
    let token = suite.token(
        "sweeper",
        &[
            "admin",
            "improvement_team",
            "contributor",
            "viewer",
            "hr_sync",
        ],
        &["*"],
    );
    let pool = DescriptorPool::decode(qi_proto::FILE_DESCRIPTOR_SET).expect("the contracts");
    let policies = qi_gateway::policy::load(&pool);
    let before = row_counts(&suite).await;

    let (mut calls, mut exact, mut preempted) = (0, 0, 0);
    let mut failures = Vec::new();
    let mut oversized_codes = BTreeSet::new();
    for service in pool.services().filter(|s| s.full_name().starts_with("qi.")) {
        let mut first = true;
        for method in service.methods() {
            let id = format!("{}/{}", service.name(), method.name());
            let path = format!("/{}/{}", service.full_name(), method.name());
            let resource_field = policies
                .get(&path)
                .and_then(|m| m.policy.as_ref().ok())
                .map(|p| p.resource_field.clone())
                .unwrap_or_default();

            // The empty request: refused, naming a field, when the method requires any.
            let input = method.input();
            let required: Vec<String> = input
                .fields()
                .filter(|f| behaviours(&pool, f).contains(&REQUIRED))
                .map(|f| f.name().to_owned())
                .collect();
            let empty = call(&suite, &token, &method, Bytes::new()).await;
            calls += 1;
            if !required.is_empty() {
                let named = empty
                    .fields
                    .iter()
                    .any(|v| required.iter().any(|r| names(v, r)));
                if !(matches!(empty.code, Code::InvalidArgument) && named) {
                    failures.push(format!(
                        "{id} empty: {:?} {:?} {} (required: {required:?})",
                        empty.code, empty.fields, empty.message
                    ));
                }
            }

            let top = baseline(&method, &resource_field);
            // What the request without the malformed value is refused for: the baseline,
            // with the message holding a nested field present (it may be required).
            let mut bases: HashMap<String, (DynamicMessage, Answer)> = HashMap::new();
            for field_path in input_fields(&pool, &input) {
                let field = field_path.last().expect("a field").clone();
                let name = dotted(&field_path);
                let outer = dotted(&field_path[..field_path.len() - 1]);
                if !bases.contains_key(&outer) {
                    let mut base = top.clone();
                    if let [holder, _] = field_path.as_slice()
                        && let Kind::Message(inner) = holder.kind()
                        && !base.has_field(holder)
                    {
                        base.set_field(holder, Value::Message(DynamicMessage::new(inner)));
                    }
                    let answer = call(&suite, &token, &method, base.encode_to_vec().into()).await;
                    calls += 1;
                    bases.insert(outer.clone(), (base, answer));
                }
                let (base, base_answer) = &bases[&outer];
                for (what, value) in malformed(&pool, &field) {
                    let mut msg = base.clone();
                    set(&mut msg, &field_path, value);
                    let answer = call(&suite, &token, &method, msg.encode_to_vec().into()).await;
                    calls += 1;
                    let case = format!("{id} {name} {what}");
                    match answer.code {
                        Code::InvalidArgument => {
                            if answer.fields.is_empty() {
                                failures.push(format!(
                                    "{case}: no field violations: {}",
                                    answer.message
                                ));
                                continue;
                            }
                            // Violations the malformed value added must be about that field.
                            let added: Vec<_> = answer
                                .fields
                                .iter()
                                .filter(|v| !base_answer.fields.contains(*v))
                                .collect();
                            // Another field may be named only for being absent (a required
                            // field the malformed value let validation reach).
                            let wrong: Vec<_> = added
                                .iter()
                                .filter(|v| !names(v, &name) && !unset(&msg, v))
                                .collect();
                            if !wrong.is_empty() {
                                failures.push(format!(
                                    "{case}: names {wrong:?}, not {name} ({}; without it: {:?} {:?} {})",
                                    answer.message,
                                    base_answer.code,
                                    base_answer.fields,
                                    base_answer.message
                                ));
                            } else if answer.fields.iter().any(|v| names(v, &name)) {
                                exact += 1;
                            } else {
                                preempted += 1;
                            }
                        }
                        Code::NotFound
                        | Code::PermissionDenied
                        | Code::FailedPrecondition
                        | Code::OutOfRange => preempted += 1,
                        other => failures.push(format!(
                            "{case}: {other:?} {:?} {}",
                            answer.fields, answer.message
                        )),
                    }
                }
            }

            // One message over the limit per service: the gateway refuses it before routing.
            if first {
                first = false;
                if let Some(field) = input
                    .fields()
                    .find(|f| f.kind() == Kind::String && !f.is_list())
                {
                    let mut msg = DynamicMessage::new(input.clone());
                    msg.set_field(&field, Value::String("x".repeat(5 * 1024 * 1024)));
                    let answer = call(&suite, &token, &method, msg.encode_to_vec().into()).await;
                    calls += 1;
                    oversized_codes.insert(format!("{:?}", answer.code));
                    if answer.code != Code::ResourceExhausted {
                        failures.push(format!(
                            "{id} 5 MiB message: {:?} {}",
                            answer.code, answer.message
                        ));
                    }
                }
            }
        }
    }
    let after = row_counts(&suite).await;
    eprintln!(
        "bad-input sweep: {calls} calls; {exact} named the malformed field, {preempted} were \
         refused first for another reason (a required field, the resource name); 5 MiB \
         messages: {oversized_codes:?}; {} failures",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(before, after, "a malformed request stored something");
    suite.stop().await.unwrap();
}
