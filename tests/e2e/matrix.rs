//! The access matrix (the shared design's access model, summarised in the README's Access section), generated from the compiled contracts so a
//! new RPC cannot escape it: every method of every `qi.*` service is called with no token, a
//! bad token, the wrong role, an own-site caller, an other-site caller, a trust-wide caller,
//! and a site caller naming a trust-wide resource, each expecting the code its policy
//! implies. The per-project dimension calls every method on a project (those marked
//! `shared_across_sites`) as a team editor, a team member without edit rights, a
//! contributor on no team, and the improvement teams of a participating site and of a site
//! taking no part, expecting what the policy and the per-project rule imply. Then the leak check: data seeded in two sites, and every read (lists,
//! summaries, dashboards, streams, and reads by id through `sites/-`) is called as a
//! one-site caller, whose answer must carry nothing of the other site.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor,
    ReflectMessage, Value,
};
use qi_e2e::TestSuite;
use qi_gateway::policy::{Mode, Policy};
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

/// The site every site-naming request names, and the caller who holds it.
const OWN: &str = "BAS";
/// A site the other-site caller holds instead.
const OTHER: &str = "SOU";

/// One way of calling a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Case {
    NoToken,
    BadToken,
    WrongRole,
    OwnSite,
    OtherSite,
    TrustWide,
    /// A caller of one site naming a trust-wide resource (`trust/...`).
    SiteCallerOnTrust,
}

const CASES: [Case; 7] = [
    Case::NoToken,
    Case::BadToken,
    Case::WrongRole,
    Case::OwnSite,
    Case::OtherSite,
    Case::TrustWide,
    Case::SiteCallerOnTrust,
];

/// What a case must get back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Unauthenticated,
    PermissionDenied,
    /// Any code but UNAUTHENTICATED and PERMISSION_DENIED: the call got past access control
    /// (the service may still find the made-up request invalid or its resource missing).
    NotDenied,
}

/// The whole expected-code table, from the policy's fields alone. `None`: the case does not
/// exist for this method (no role is "wrong" for it, or it names no resource to put under
/// the trust).
fn expected(case: Case, policy: &Policy) -> Option<Expect> {
    let names_site = !policy.resource_path.is_empty();
    let site_caller_allowed = if policy.trust_wide_only {
        Expect::PermissionDenied
    } else {
        Expect::NotDenied
    };
    Some(match case {
        Case::NoToken | Case::BadToken => Expect::Unauthenticated,
        Case::WrongRole => {
            wrong_role(policy)?;
            Expect::PermissionDenied
        }
        Case::OwnSite => site_caller_allowed,
        // A request that names no site is scoped by the service: the leak check covers it.
        Case::OtherSite if names_site => Expect::PermissionDenied,
        Case::OtherSite => site_caller_allowed,
        Case::TrustWide => Expect::NotDenied,
        Case::SiteCallerOnTrust if !names_site => return None,
        Case::SiteCallerOnTrust if policy.mode == Mode::Write => Expect::PermissionDenied,
        Case::SiteCallerOnTrust => site_caller_allowed,
    })
}

/// A role that may call the method (`admin` for admin-only methods).
fn allowed_role(policy: &Policy) -> &str {
    policy.roles.first().map_or("admin", String::as_str)
}

/// A role that may not.
fn wrong_role(policy: &Policy) -> Option<&'static str> {
    ["hr_sync", "viewer", "contributor", "improvement_team"]
        .into_iter()
        .find(|r| !policy.roles.iter().any(|have| have == r))
}

/// One method under test.
struct Target {
    path: String,
    method: MethodDescriptor,
    policy: Policy,
}

fn targets() -> Vec<Target> {
    let pool = DescriptorPool::decode(qi_proto::FILE_DESCRIPTOR_SET).unwrap();
    let methods = qi_gateway::policy::load(&pool);
    let mut targets: Vec<Target> = pool
        .services()
        .filter(|s| s.full_name().starts_with("qi.") && s.package_name().ends_with(".v1"))
        .flat_map(|s| s.methods().collect::<Vec<_>>())
        .map(|m| {
            let path = format!("/{}/{}", m.parent_service().full_name(), m.name());
            let policy = methods[&path]
                .policy
                .clone()
                .unwrap_or_else(|why| panic!("{path} has no usable access policy: {why}"));
            Target {
                path,
                method: m,
                policy,
            }
        })
        .collect();
    targets.sort_by(|a, b| a.path.cmp(&b.path));
    targets
}

/// The leading comment of a field, from the source info the descriptor set keeps.
fn comment(field: &FieldDescriptor) -> String {
    field
        .parent_file()
        .file_descriptor_proto()
        .source_code_info
        .as_ref()
        .and_then(|info| info.location.iter().find(|l| l.path == field.path()))
        .and_then(|l| l.leading_comments.clone())
        .unwrap_or_default()
}

/// The name patterns a comment gives in backticks, e.g. `sites/{site}/cohorts/{cohort}`,
/// with a pattern relative to another resource (`{cohort}/sessions/{number}`) spelled out
/// from that resource's own (messages of `package`).
fn patterns(pool: &DescriptorPool, package: &str, text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::trim)
        // A wildcard (`sites/-/cohorts/-`) reads many resources: it is not one's pattern.
        .filter(|s| !s.split('/').any(|segment| segment == "-"))
        .flat_map(|s| {
            if s.starts_with("sites/{") || s.starts_with("trust") {
                return vec![s.to_owned()];
            }
            let Some((head, rest)) = s.strip_prefix('{').and_then(|s| s.split_once("}/")) else {
                return Vec::new();
            };
            pool.get_message_by_name(&format!("{package}.{}", pascal(head)))
                .map(|m| resource_patterns(&m))
                .unwrap_or_default()
                .into_iter()
                .map(|base| format!("{base}/{rest}"))
                .collect()
        })
        .collect()
}

/// `wave_plan` → `WavePlan`.
fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// The documented name patterns of resource message `m` (its `name` field's comment).
fn resource_patterns(m: &MessageDescriptor) -> Vec<String> {
    m.get_field_by_name("name")
        .map(|f| patterns(m.parent_pool(), m.package_name(), &comment(&f)))
        .unwrap_or_default()
}

/// The name patterns a request field may hold: its own comment's, else those of the
/// resource it names — found from the field (`cohort.name`, `metric`), the method's noun
/// (`CompleteCohort` → `Cohort`), or for a `parent` the resource the method lists or
/// creates, less its last two segments.
fn field_patterns(field: &FieldDescriptor, method: &MethodDescriptor) -> Vec<String> {
    let pool = field.parent_pool();
    let package = method.parent_service().package_name().to_owned();
    let own = patterns(pool, &package, &comment(field));
    if !own.is_empty() {
        return own;
    }
    let message = |name: &str| pool.get_message_by_name(&format!("{package}.{name}"));
    let holder = field.parent_message().clone();
    let resource = match field.name() {
        "name" if !holder.name().ends_with("Request") => Some(holder),
        "name" => {
            let noun = method.name();
            let starts = noun.char_indices().filter(|(_, c)| c.is_uppercase());
            starts
                .filter_map(|(i, _)| message(&noun[i..]))
                .find(|m| !resource_patterns(m).is_empty())
        }
        "parent" => {
            let children = method
                .output()
                .fields()
                .chain(method.input().fields())
                .filter_map(|f| f.kind().as_message().cloned())
                .find(|m| !resource_patterns(m).is_empty());
            return children.map_or_else(Vec::new, |m| {
                resource_patterns(&m)
                    .into_iter()
                    .map(|p| {
                        let parts: Vec<&str> = p.split('/').collect();
                        parts[..parts.len().saturating_sub(2)].join("/")
                    })
                    .filter(|p| !p.is_empty())
                    .collect()
            });
        }
        other => message(&pascal(other)),
    };
    resource.map_or_else(Vec::new, |m| resource_patterns(&m))
}

/// A name for `field` rooted where `root` says (`sites/BAS` or `trust`), shaped as its
/// documented pattern so the service sees a plausible name, not just a plausible site.
fn name_for(field: &FieldDescriptor, method: &MethodDescriptor, root: &str) -> String {
    let want_site = root.starts_with("sites/");
    let pattern = field_patterns(field, method).into_iter().find(|f| {
        if want_site {
            f.starts_with("sites/{")
        } else {
            f == "trust" || f.starts_with("trust/")
        }
    });
    let Some(pattern) = pattern else {
        return root.to_owned();
    };
    let mut out = Vec::new();
    for (i, part) in pattern.split('/').enumerate() {
        if i == 1 && want_site {
            out.push(root.trim_start_matches("sites/").to_owned());
        } else if part.contains("number") {
            out.push("10000001".to_owned());
        } else if part.starts_with('{') {
            // Lower case, digits and hyphens: a valid user-chosen id and a UUID at once.
            out.push("a0c4e5f6-0000-4000-8000-000000000001".to_owned());
        } else {
            out.push(part.to_owned());
        }
    }
    out.join("/")
}

/// The request for `target` with its resource field set under `root` (nothing set when the
/// policy names no resource field).
fn request(target: &Target, root: &str) -> Bytes {
    let mut message = DynamicMessage::new(target.method.input());
    let parts: Vec<&str> = target.policy.resource_field.split('.').collect();
    if !target.policy.resource_field.is_empty() {
        set_path(&mut message, &target.method, &parts, root);
    }
    Bytes::from(prost::Message::encode_to_vec(&message))
}

fn set_path(message: &mut DynamicMessage, method: &MethodDescriptor, parts: &[&str], root: &str) {
    let descriptor: MessageDescriptor = message.descriptor();
    let field = descriptor
        .get_field_by_name(parts[0])
        .unwrap_or_else(|| panic!("no field {} in {}", parts[0], descriptor.full_name()));
    if parts.len() == 1 {
        message.set_field(&field, Value::String(name_for(&field, method, root)));
        return;
    }
    let Kind::Message(inner) = field.kind() else {
        panic!("{} is not a message", field.full_name());
    };
    let mut child = DynamicMessage::new(inner);
    set_path(&mut child, method, &parts[1..], root);
    message.set_field(&field, Value::Message(child));
}

/// Calls `path` through the gateway with the method's call shape: a client stream sends the
/// one message; a server stream yields all its items, concatenated, or its status. A change
/// feed (`WatchChanges`) stays open: it is read up to its first CHECKPOINT, which it sends
/// once its backlog is delivered (and which is left out).
async fn call(
    channel: Channel,
    method: &MethodDescriptor,
    path: &str,
    token: Option<&str>,
    message: Bytes,
) -> Result<Bytes, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let path = PathAndQuery::try_from(path).unwrap();
    let codec = qi_platform::codec::BytesCodec;
    let with_token = |message| match token {
        Some(t) => qi_e2e::authed(t, message),
        None => tonic::Request::new(message),
    };
    match (method.is_client_streaming(), method.is_server_streaming()) {
        (false, false) => grpc
            .unary(with_token(message), path, codec)
            .await
            .map(|r| r.into_inner()),
        (false, true) => {
            let mut stream = grpc
                .server_streaming(with_token(message), path, codec)
                .await?
                .into_inner();
            let mut all = Vec::new();
            let mut seen = std::collections::BTreeSet::new();
            while let Some(item) = stream.message().await? {
                // A checkpoint's cursor moves with any activity: not part of the answer.
                if qi_e2e::is_checkpoint(&method.output(), &item) {
                    break;
                }
                let item = feed_content(&method.output(), item);
                if seen.insert(item.clone()) {
                    all.extend_from_slice(&item);
                }
            }
            Ok(Bytes::from(all))
        }
        (true, false) => {
            let one = tokio_stream::iter([message]);
            let req = match token {
                Some(t) => qi_e2e::authed(t, one),
                None => tonic::Request::new(one),
            };
            grpc.client_streaming(req, path, codec)
                .await
                .map(|r| r.into_inner())
        }
        (true, true) => panic!("{path}: no contract has a bidirectional RPC; add its shape here"),
    }
}

/// What a change feed's message says of its resource: without where it stands in the feed
/// and when (which any activity moves) and without the totals the contract keeps across the
/// trust. Another site's change to a trust-wide resource may reach a one-site caller, but
/// only as the resource it may read anyway: the same content, counted once. Other streams'
/// items are kept whole.
fn feed_content(output: &MessageDescriptor, item: Bytes) -> Bytes {
    if output.get_field_by_name("commit_time").is_none() {
        return item;
    }
    let Ok(mut m) = DynamicMessage::decode(output.clone(), item.clone()) else {
        return item;
    };
    m.clear_field_by_name("cursor");
    m.clear_field_by_name("commit_time");
    strip_trust_totals(&mut m);
    Bytes::from(prost::Message::encode_to_vec(&m))
}

/// The token and the request of one case.
fn setup(suite: &TestSuite, target: &Target, case: Case) -> (Option<String>, Bytes) {
    let role = allowed_role(&target.policy);
    let own = format!("sites/{OWN}");
    let sub = format!("matrix-{case:?}");
    match case {
        Case::NoToken => (None, request(target, &own)),
        Case::BadToken => {
            // Well formed, right issuer and audience, signed with the wrong secret.
            let forged = qi_gateway::auth::mint_dev_token(
                "not-the-gateways-secret",
                &suite.config.jwt,
                &sub,
                &["admin".into()],
                &["*".into()],
                Duration::from_secs(600),
            )
            .unwrap();
            (Some(forged), request(target, &own))
        }
        Case::WrongRole => {
            let wrong = wrong_role(&target.policy).unwrap();
            (
                Some(suite.token(&sub, &[wrong], &["*"])),
                request(target, &own),
            )
        }
        Case::OwnSite => (
            Some(suite.token(&sub, &[role], &[OWN])),
            request(target, &own),
        ),
        Case::OtherSite => (
            Some(suite.token(&sub, &[role], &[OTHER])),
            request(target, &own),
        ),
        Case::TrustWide => (
            Some(suite.token(&sub, &[role], &["*"])),
            request(target, &own),
        ),
        Case::SiteCallerOnTrust => (
            Some(suite.token(&sub, &[role], &[OWN])),
            request(target, "trust"),
        ),
    }
}

/// The person the made-up names point at (`…staff/10000001`), working at the own site: the
/// training service refuses a site caller a person it cannot show to exist (issue 25),
/// which would read as a denial.
async fn sync_the_made_up_person(suite: &TestSuite) {
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let person = [qi_e2e::training::esr("10000001", OWN, "Matrix")];
    qi_e2e::training::sync(
        &hr,
        qi_proto::training::SyncMode::Delta,
        qi_e2e::training::EXTRACT_TIME,
        &person,
    )
    .await
    .unwrap();
}

fn verdict(expect: Expect, got: Code) -> bool {
    match expect {
        Expect::Unauthenticated => got == Code::Unauthenticated,
        Expect::PermissionDenied => got == Code::PermissionDenied,
        Expect::NotDenied => !matches!(got, Code::Unauthenticated | Code::PermissionDenied),
    }
}

#[tokio::test]
async fn every_rpc_answers_every_kind_of_caller_as_its_policy_says() {
    // Hundreds of calls from a handful of subjects: the rate limit is not under test here.
    let suite = Arc::new(TestSuite::start_with(&[("QI_RATE_LIMIT_PER_SUBJECT", "0")]).await);
    sync_the_made_up_person(&suite).await;
    let targets = Arc::new(targets());
    assert!(targets.len() >= 80, "only {} methods found", targets.len());
    // Bounded, so the services' small test pools are not the thing being measured.
    let permits = Arc::new(tokio::sync::Semaphore::new(16));
    let mut calls = tokio::task::JoinSet::new();
    let mut planned = 0;
    for (i, target) in targets.iter().enumerate() {
        for case in CASES {
            let Some(expect) = expected(case, &target.policy) else {
                continue;
            };
            planned += 1;
            let (token, message) = setup(&suite, target, case);
            let (suite, targets, permits) = (suite.clone(), targets.clone(), permits.clone());
            calls.spawn(async move {
                let _permit = permits.acquire().await.unwrap();
                let t = &targets[i];
                let got = call(
                    suite.channel.clone(),
                    &t.method,
                    &t.path,
                    token.as_deref(),
                    message,
                )
                .await;
                let (code, why) = match got {
                    Ok(_) => (Code::Ok, String::new()),
                    Err(s) => (s.code(), s.message().to_owned()),
                };
                (i, case, expect, code, why)
            });
        }
    }
    let mut table: Table = BTreeMap::new();
    while let Some(done) = calls.join_next().await {
        let (i, case, expect, code, why) = done.unwrap();
        table.insert(
            (targets[i].path.clone(), format!("{case:?}")),
            (expect, code, why),
        );
    }
    assert_eq!(table.len(), planned);
    judge(
        &table,
        &format!(
            "access matrix: {} methods, {planned} calls ({} cases)",
            targets.len(),
            CASES.len()
        ),
    );
    drop(targets);
    Arc::into_inner(suite)
        .expect("every call has finished")
        .stop()
        .await
        .unwrap();
}

/// An HTTP request: its method, path and query, body, and whether a binding of one fixed
/// name (`{parent=trust}`) replaced the probe's own.
type HttpProbe = (reqwest::Method, String, Option<String>, bool);

/// The HTTP request of `message` for `method`, by the first of its `google.api.http`
/// bindings whose path variables the message's values fit. `None` when none fits (a value
/// no binding's pattern takes).
fn http_request(method: &MethodDescriptor, message: &DynamicMessage) -> Option<HttpProbe> {
    use qi_proto::google::api::HttpRule;
    use qi_proto::google::api::http_rule::Pattern;
    let pool = method.parent_pool();
    let ext = pool.get_extension_by_name("google.api.http")?;
    let options = method.options();
    let Value::Message(m) = options.get_extension(&ext).into_owned() else {
        return None;
    };
    let rule: HttpRule = m.transcode_to().ok()?;
    let text = |path: &[&str]| -> Option<String> {
        let mut m = message.clone();
        for (i, part) in path.iter().enumerate() {
            let value = m.get_field_by_name(part)?.into_owned();
            if i + 1 == path.len() {
                return value.as_str().map(str::to_owned);
            }
            m = value.as_message()?.clone();
        }
        None
    };
    'bindings: for binding in std::iter::once(&rule).chain(&rule.additional_bindings) {
        let (verb, template) = match binding.pattern.as_ref()? {
            Pattern::Get(p) => (reqwest::Method::GET, p),
            Pattern::Post(p) => (reqwest::Method::POST, p),
            Pattern::Put(p) => (reqwest::Method::PUT, p),
            Pattern::Patch(p) => (reqwest::Method::PATCH, p),
            Pattern::Delete(p) => (reqwest::Method::DELETE, p),
            Pattern::Custom(c) => (c.kind.parse().ok()?, &c.path),
        };
        // Each `{field=pattern}` replaced by the field's value, which must fit the pattern.
        let mut path = String::new();
        let mut bound = Vec::new();
        let mut fixed = false;
        let mut rest = template.as_str();
        while let Some(open) = rest.find('{') {
            path.push_str(&rest[..open]);
            let close = rest[open..].find('}')? + open;
            let (field, pattern) = rest[open + 1..close]
                .split_once('=')
                .unwrap_or((&rest[open + 1..close], "*"));
            let steps: Vec<&str> = field.split('.').collect();
            let value = text(&steps).unwrap_or_default();
            let want: Vec<&str> = pattern.split('/').collect();
            let got: Vec<&str> = value.split('/').collect();
            let fits = want.len() == got.len()
                && want
                    .iter()
                    .zip(&got)
                    .all(|(w, g)| *w == "*" && !g.is_empty() || w == g);
            if fits {
                path.push_str(&value);
            } else if !pattern.contains('*') {
                // A binding of one fixed name (`{parent=trust}`) can only ask for that one.
                path.push_str(pattern);
                fixed = true;
            } else {
                continue 'bindings;
            }
            bound.push(steps[0].to_owned());
            rest = &rest[close + 1..];
        }
        path.push_str(rest);
        let json = |m: &DynamicMessage| serde_json::to_string(m).unwrap();
        let body = match binding.body.as_str() {
            "" => {
                // The other scalar fields the probe set, as the query.
                let query: Vec<String> = message
                    .fields()
                    .filter(|(f, _)| !bound.iter().any(|b| b == f.name()))
                    .filter_map(|(f, v)| {
                        let text = v
                            .as_str()
                            .map(str::to_owned)
                            .or_else(|| v.as_i32().map(|n| n.to_string()))
                            .or_else(|| v.as_bool().map(|b| b.to_string()))
                            .or_else(|| v.as_enum_number().map(|n| n.to_string()))?;
                        Some(format!("{}={text}", f.json_name()))
                    })
                    .collect();
                if !query.is_empty() {
                    path = format!("{path}?{}", query.join("&"));
                }
                None
            }
            "*" => Some(json(message)),
            field => Some(
                match message.get_field_by_name(field).map(|v| v.into_owned()) {
                    Some(Value::Message(m)) => json(&m),
                    _ => "{}".to_owned(),
                },
            ),
        };
        return Some((verb, path, body, fixed));
    }
    None
}

/// Over HTTP/JSON, the same access rules: one method for each distinct shape of access
/// policy (read or write, naming a site or not, trust-wide only or not, each role set),
/// each case called through the gateway's HTTP face and judged by the `google.rpc.Status`
/// code its JSON answer carries (200 is OK).
#[tokio::test]
async fn every_shape_of_access_policy_holds_over_http_too() {
    let suite = TestSuite::start_with(&[("QI_RATE_LIMIT_PER_SUBJECT", "0")]).await;
    sync_the_made_up_person(&suite).await;
    let all = targets();
    // Per shape, the method whose every probe an HTTP binding can carry (a probe naming a
    // site where the binding only takes `trust` cannot be sent over HTTP at all), else the
    // one with the most such probes.
    let bindable = |t: &Target| {
        CASES
            .iter()
            .filter(|case| expected(**case, &t.policy).is_some())
            .filter(|case| {
                let (_, bytes) = setup(&suite, t, **case);
                let message = DynamicMessage::decode(t.method.input(), bytes).unwrap();
                http_request(&t.method, &message).is_some()
            })
            .count()
    };
    let mut shapes: BTreeMap<String, (&Target, usize)> = BTreeMap::new();
    for t in all.iter().filter(|t| !t.method.is_client_streaming()) {
        let p = &t.policy;
        let mut roles = p.roles.clone();
        roles.sort();
        let shape = format!(
            "{:?} site:{} trust-only:{} {roles:?}",
            p.mode,
            !p.resource_path.is_empty(),
            p.trust_wide_only
        );
        let n = bindable(t);
        let best = shapes.entry(shape).or_insert((t, n));
        if n > best.1 {
            *best = (t, n);
        }
    }
    assert!(shapes.len() >= 6, "{} shapes", shapes.len());
    assert!(
        shapes.values().all(|(_, n)| *n > 0),
        "a policy shape no HTTP probe reaches"
    );
    let client = reqwest::Client::new();
    let mut table: Table = BTreeMap::new();
    let mut unbound = Vec::new();
    for (t, _) in shapes.values() {
        for case in CASES {
            let Some(expect) = expected(case, &t.policy) else {
                continue;
            };
            let (token, bytes) = setup(&suite, t, case);
            let message = DynamicMessage::decode(t.method.input(), bytes).unwrap();
            let Some((verb, path, body, fixed)) = http_request(&t.method, &message) else {
                unbound.push(format!("{} {case:?}", t.path));
                continue;
            };
            // A one-site caller sent to the one trust-wide name asks of the trust's resource.
            let on_trust = fixed && matches!(case, Case::OwnSite | Case::OtherSite);
            let expect = if on_trust {
                expected(Case::SiteCallerOnTrust, &t.policy).unwrap_or(expect)
            } else {
                expect
            };
            let mut req = client.request(verb, format!("http://{}{path}", suite.addr));
            if let Some(token) = &token {
                req = req.bearer_auth(token);
            }
            if let Some(body) = body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let code = if status == reqwest::StatusCode::OK {
                Code::Ok
            } else {
                let text = resp.text().await.unwrap_or_default();
                let answer: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                Code::from(answer["code"].as_i64().map_or(2, |n| n as i32))
            };
            table.insert(
                (format!("{} {path}", t.path), format!("{case:?}")),
                (expect, code, status.to_string()),
            );
        }
    }
    judge(
        &table,
        &format!(
            "access matrix over HTTP: {} policy shapes, {} calls ({} probes no binding can \
             carry: {unbound:?})",
            shapes.len(),
            table.len(),
            unbound.len()
        ),
    );
    suite.stop().await.unwrap();
}

/// Each call's expected and actual answer, by method path and case./// Each call's expected and actual answer, by method path and case.
type Table = BTreeMap<(String, String), (Expect, Code, String)>;

/// Fails, listing them, if any call in `table` broke the access rules; prints what the
/// services answered the admitted calls with.
fn judge(table: &Table, what: &str) {
    let wrong: Vec<String> = table
        .iter()
        .filter(|(_, (expect, got, _))| !verdict(*expect, *got))
        .map(|((path, case), (expect, got, why))| {
            format!("{path} {case}: expected {expect:?}, got {got:?} ({why})")
        })
        .collect();
    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    for (expect, got, _) in table.values() {
        if *expect == Expect::NotDenied {
            *answers.entry(format!("{got:?}")).or_default() += 1;
        }
    }
    println!("{what}; the services answered the admitted calls with {answers:?}");
    assert!(
        wrong.is_empty(),
        "{} of {} calls broke the access rules:\n{}",
        wrong.len(),
        table.len(),
        wrong.join("\n")
    );
}

/// Who calls a project's methods in the per-project dimension (issue 25): the project is
/// led by [`OWN`] with [`OTHER`] taking part.
#[derive(Debug, Clone, Copy)]
enum OnProject {
    /// A contributor at the lead site, on the team as an editor.
    TeamEditor,
    /// A contributor at the lead site, on the team without edit rights.
    TeamMember,
    /// A contributor at the lead site, not on the team.
    NonMember,
    /// `improvement_team` at the participating site.
    TeamOfParticipatingSite,
    /// `improvement_team` at a site taking no part.
    TeamOfOtherSite,
}

const ON_PROJECT: [OnProject; 5] = [
    OnProject::TeamEditor,
    OnProject::TeamMember,
    OnProject::NonMember,
    OnProject::TeamOfParticipatingSite,
    OnProject::TeamOfOtherSite,
];

/// A site taking no part in the matrix project.
const ELSEWHERE: &str = "BRM";

impl OnProject {
    /// The caller's role, site and employee number.
    fn caller(self) -> (&'static str, &'static str, Option<&'static str>) {
        match self {
            OnProject::TeamEditor => ("contributor", OWN, Some("10000002")),
            OnProject::TeamMember => ("contributor", OWN, Some("10000003")),
            OnProject::NonMember => ("contributor", OWN, Some("10000004")),
            OnProject::TeamOfParticipatingSite => ("improvement_team", OTHER, None),
            OnProject::TeamOfOtherSite => ("improvement_team", ELSEWHERE, None),
        }
    }
}

/// The expected answer of a project's method, from its policy and the per-project rule:
/// the role is the gateway's; holding one of the project's sites lets a caller read; a
/// change needs an editor on the team, or `improvement_team` at one of its sites.
fn expected_on_project(who: OnProject, policy: &Policy) -> Expect {
    let (role, ..) = who.caller();
    if !policy.roles.iter().any(|r| r == role) {
        return Expect::PermissionDenied;
    }
    match who {
        OnProject::TeamOfOtherSite => Expect::PermissionDenied,
        OnProject::TeamEditor | OnProject::TeamOfParticipatingSite => Expect::NotDenied,
        OnProject::TeamMember | OnProject::NonMember if policy.mode == Mode::Write => {
            Expect::PermissionDenied
        }
        OnProject::TeamMember | OnProject::NonMember => Expect::NotDenied,
    }
}

/// The per-project dimension: every method the contract marks `shared_across_sites` (a
/// project and everything under it) is called on a real project, led by BAS with SOU taking
/// part, by each [`OnProject`] caller; the made-up names of [`request`] point into it.
#[tokio::test]
async fn every_project_rpc_answers_each_kind_of_team_member_as_the_project_rule_says() {
    use qi_proto::projects as pb;
    let suite = TestSuite::start_with(&[("QI_RATE_LIMIT_PER_SUBJECT", "0")]).await;
    let team = suite.caller("matrix-team", &["improvement_team"], &[OWN]);
    // The id [`name_for`] puts in every made-up name.
    let id = "a0c4e5f6-0000-4000-8000-000000000001";
    let project = pb::Project {
        participating_sites: vec![format!("sites/{OTHER}")],
        ..qi_e2e::projects::with_aim("Matrix project")
    };
    let project = qi_e2e::projects::create_project(&team, OWN, id, project)
        .await
        .unwrap();
    for (n, editor) in [("10000002", true), ("10000003", false)] {
        let member = pb::TeamMember {
            staff: format!("staff/{n}"),
            role: pb::TeamRole::Member as i32,
            editor,
            ..Default::default()
        };
        qi_e2e::projects::add_team_member(&team, &project.name, member)
            .await
            .unwrap();
    }
    let targets: Vec<Target> = targets()
        .into_iter()
        .filter(|t| t.policy.shared_across_sites)
        .collect();
    assert!(
        targets.len() >= 20,
        "only {} project methods",
        targets.len()
    );
    let mut table: Table = BTreeMap::new();
    for t in &targets {
        let message = request(t, &format!("sites/{OWN}"));
        for who in ON_PROJECT {
            let (role, site, employee) = who.caller();
            let sub = format!("matrix-{who:?}");
            let token = match employee {
                Some(n) => suite.employee_token(&sub, &[role], &[site], n),
                None => suite.token(&sub, &[role], &[site]),
            };
            let got = call(
                suite.channel.clone(),
                &t.method,
                &t.path,
                Some(&token),
                message.clone(),
            )
            .await;
            let (code, why) = match got {
                Ok(_) => (Code::Ok, String::new()),
                Err(s) => (s.code(), s.message().to_owned()),
            };
            let expect = expected_on_project(who, &t.policy);
            table.insert((t.path.clone(), format!("{who:?}")), (expect, code, why));
        }
    }
    judge(
        &table,
        &format!(
            "per-project matrix: {} methods, {} calls",
            targets.len(),
            table.len()
        ),
    );
    suite.stop().await.unwrap();
}

/// Text found only in what is seeded for each site.
const OWN_MARKER: &str = "Basildonmarker";
const OTHER_MARKER: &str = "Southendmarker";

fn marker(site: &str) -> &'static str {
    if site == OWN {
        OWN_MARKER
    } else {
        OTHER_MARKER
    }
}

/// Seeds, through the public API as a trust-wide admin, one of each kind of record under
/// `site` (ids end in `-{round}`): a cohort, a staff member, an ESR mapping, a ward, an
/// idea, a project and a metric with measurements. Returns the ids, by collection.
async fn seed(suite: &TestSuite, site: &str, round: u32) -> BTreeMap<&'static str, String> {
    use qi_e2e::authed;
    use qi_proto::{metrics, projects, training};
    let admin = suite.token("seeder", &["admin"], &["*"]);
    let mark = marker(site);
    let parent = format!("sites/{site}");
    let low = site.to_ascii_lowercase();
    let date = |month| qi_proto::google::r#type::Date {
        year: 2026,
        month,
        day: 1,
    };
    let mut ids = BTreeMap::new();

    let mut t =
        training::training_service_client::TrainingServiceClient::new(suite.channel.clone());
    let cohort = t
        .create_cohort(authed(
            &admin,
            training::CreateCohortRequest {
                parent: parent.clone(),
                cohort_id: format!("{low}-cohort-{round}"),
                cohort: Some(training::Cohort {
                    course: "trust/courses/qsir-prac".into(),
                    display_name: format!("{mark} cohort {round}"),
                    start_date: Some(date(3)),
                    capacity: 12,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .cohort
        .unwrap();
    ids.insert("cohorts", last_segment(&cohort.name));
    let employee = format!("{}{round:04}", if site == OWN { 2000 } else { 3000 });
    let row = training::EsrRow {
        employee_number: employee.clone(),
        assignment_number: employee.clone(),
        primary_assignment: true,
        forename: "Sam".into(),
        surname: mark.into(),
        work_email: format!("{employee}@nhs.example"),
        staff_group: "03".into(),
        job_role: "Staff Nurse".into(),
        site: site.into(),
        person_type: "Employee".into(),
        ..Default::default()
    };
    let synced = t
        .sync_staff(authed(
            &admin,
            tokio_stream::iter([training::SyncStaffRequest {
                mode: training::SyncMode::Delta as i32,
                extract_id: format!("{low}-{round}"),
                extract_time: Some(prost_types::Timestamp {
                    seconds: 1_790_000_000 + i64::from(round),
                    nanos: 0,
                }),
                rows: vec![row],
                complete: true,
            }]),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(synced.inserted, 1, "{synced:?}");
    ids.insert("staff", employee);
    let mapping = t
        .create_esr_mapping(authed(
            &admin,
            training::CreateEsrMappingRequest {
                parent: parent.clone(),
                esr_mapping_id: format!("location.{site}-LEAK-{round}"),
                esr_mapping: Some(training::EsrMapping {
                    display_name: format!("{mark} location {round}"),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .esr_mapping
        .unwrap();
    ids.insert("esrMappings", last_segment(&mapping.name));

    let mut p = projects::project_service_client::ProjectServiceClient::new(suite.channel.clone());
    let ward = p
        .create_ward(authed(
            &admin,
            projects::CreateWardRequest {
                parent: parent.clone(),
                ward_id: format!("{low}-ward-{round}"),
                ward: Some(projects::Ward {
                    display_name: format!("{mark} ward {round}"),
                    specialty: "Acute medicine".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .ward
        .unwrap();
    ids.insert("wards", last_segment(&ward.name));
    let idea = p
        .create_idea(authed(
            &admin,
            projects::CreateIdeaRequest {
                parent: parent.clone(),
                idea: Some(projects::Idea {
                    title: format!("{mark} idea {round}"),
                    submitter: "A. Nurse".into(),
                    theme: "Patient flow".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .idea
        .unwrap();
    ids.insert("ideas", last_segment(&idea.name));
    let project = p
        .create_project(authed(
            &admin,
            projects::CreateProjectRequest {
                parent: parent.clone(),
                project_id: format!("{low}-project-{round}"),
                project: Some(projects::Project {
                    title: format!("{mark} project {round}"),
                    // Every site's projects join the one trust programme.
                    programme: format!("trust/programmes/{TRUST_PROGRAMME}"),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .project
        .unwrap();
    ids.insert("projects", last_segment(&project.name));
    // Its driver diagram, whose text carries the site's mark too.
    p.edit_driver_diagram(authed(
        &admin,
        projects::EditDriverDiagramRequest {
            name: format!("{}/driverDiagram", project.name),
            edits: vec![projects::DriverDiagramEdit {
                edit: Some(projects::driver_diagram_edit::Edit::AddNode(
                    projects::DriverNode {
                        id: "aim".into(),
                        kind: projects::DriverNodeKind::Aim as i32,
                        text: format!("{mark} aim {round}"),
                        ..Default::default()
                    },
                )),
            }],
            ..Default::default()
        },
    ))
    .await
    .unwrap();

    let mut m = metrics::metric_service_client::MetricServiceClient::new(suite.channel.clone());
    let metric = m
        .create_metric(authed(
            &admin,
            metrics::CreateMetricRequest {
                parent: parent.clone(),
                metric_id: format!("{low}-los-{round}"),
                metric: Some(metrics::Metric {
                    display_name: format!("{mark} length of stay {round}"),
                    kind: metrics::MetricKind::Qms as i32,
                    improvement_direction: metrics::ImprovementDirection::Decrease as i32,
                    frequency: metrics::MetricFrequency::Month as i32,
                    value_type: metrics::MetricValueType::Mean as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .metric
        .unwrap();
    let values = (1..=6)
        .map(|month| metrics::Measurement {
            period: Some(date(month)),
            value: Some(f64::from(month) + if site == OWN { 0.5 } else { 9.0 }),
            ..Default::default()
        })
        .collect();
    m.batch_create_measurements(authed(
        &admin,
        metrics::BatchCreateMeasurementsRequest {
            parent: metric.name.clone(),
            measurements: values,
            request_id: String::new(),
        },
    ))
    .await
    .unwrap();
    ids.insert("metrics", last_segment(&metric.name));
    ids
}

fn last_segment(name: &str) -> String {
    name.rsplit('/').next().unwrap_or_default().to_owned()
}

/// Every read a site caller may make: the lists, summaries, dashboards, progress, the
/// overview and streams that hand back many records or sums of them, and the reads of one
/// record, asked by id through `sites/-` (any of my sites) — the way a leak by id would
/// happen. Trust-wide-only reads refuse a site caller outright (the matrix shows it).
fn site_reads(targets: &[Target]) -> Vec<&Target> {
    targets
        .iter()
        .filter(|t| t.policy.mode == Mode::Read && !t.policy.trust_wide_only)
        .collect()
}

/// The ids of seeded records, by collection (`projects` → `sou-project-1`).
type Ids = BTreeMap<&'static str, String>;

/// Where a probe's resource field points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    /// `sites/-` ("any of my sites"); a list under one record names the other site's seeded
    /// record by id under `sites/{owner}` (`-` for a one-site caller, so a leak by id is
    /// tried; the real site for the trust-wide caller).
    Sites,
    /// Under a seeded trust-wide record (`trust/programmes/{id}`), whose children may
    /// belong to several sites.
    Trust,
    /// Every record of a nested collection, at every site the caller holds (AIP-159's `-`:
    /// `sites/-/cohorts/-`), as a nightly extract reads it.
    EverySite,
    /// Every trust-wide record's children (`trust/metrics/-`), as a nightly extract reads them.
    EveryTrust,
}

/// The probe of `target` rooted at `root`, or `None` when its resource field has no such
/// shape (a trust probe needs a trust-wide parent record).
fn probe(target: &Target, root: Root, ids: &Ids, owner: &str) -> Option<Bytes> {
    let mut message = DynamicMessage::new(target.method.input());
    if !target.policy.resource_field.is_empty() {
        let parts: Vec<&str> = target.policy.resource_field.split('.').collect();
        set_probe(&mut message, &target.method, &parts, root, ids, owner)?;
    } else if root != Root::Sites {
        return None;
    }
    Some(Bytes::from(prost::Message::encode_to_vec(&message)))
}

fn set_probe(
    message: &mut DynamicMessage,
    method: &MethodDescriptor,
    parts: &[&str],
    root: Root,
    ids: &Ids,
    owner: &str,
) -> Option<()> {
    let field = message.descriptor().get_field_by_name(parts[0]).unwrap();
    if parts.len() > 1 {
        let inner = field.kind().as_message().cloned().unwrap();
        let mut child = DynamicMessage::new(inner);
        set_probe(&mut child, method, &parts[1..], root, ids, owner)?;
        message.set_field(&field, Value::Message(child));
        return Some(());
    }
    let patterns = field_patterns(&field, method);
    let fill = |pattern: &str, head: Vec<String>| {
        let segments: Vec<&str> = pattern.split('/').collect();
        let mut out = head;
        for (i, part) in segments.iter().enumerate().skip(out.len()) {
            out.push(if part.starts_with('{') {
                ids.get(segments[i - 1])
                    .cloned()
                    .unwrap_or_else(|| "a0c4e5f6-0000-4000-8000-000000000001".into())
            } else {
                (*part).to_owned()
            });
        }
        out.join("/")
    };
    let value = match root {
        Root::Sites => match patterns.iter().find(|p| p.starts_with("sites/{")) {
            Some(p) => {
                let site = if p.split('/').count() > 2 { owner } else { "-" };
                fill(p, vec!["sites".into(), site.into()])
            }
            None if patterns.iter().any(|p| p == "trust") => "trust".to_owned(),
            None => "sites/-".to_owned(),
        },
        Root::Trust => {
            let p = patterns
                .iter()
                .find(|p| *p == "trust" || (p.starts_with("trust/") && p.contains('{')))?;
            fill(p, vec!["trust".into()])
        }
        // A parent under a record of its own (a cohort's, a metric's), every one of them.
        Root::EverySite | Root::EveryTrust => {
            let nested = |p: &&String| {
                if root == Root::EverySite {
                    p.starts_with("sites/{") && p.matches('{').count() >= 2
                } else {
                    p.starts_with("trust/") && p.contains('{')
                }
            };
            if parts != ["parent"] {
                return None;
            }
            let p = patterns.iter().find(nested)?;
            p.split('/')
                .map(|part| if part.starts_with('{') { "-" } else { part })
                .collect::<Vec<_>>()
                .join("/")
        }
    };
    message.set_field(&field, Value::String(value));
    Some(())
}

/// One collection read, asked one way by a one-site and by a trust-wide caller.
struct Probe<'a> {
    target: &'a Target,
    root: Root,
    one_site: Bytes,
    trust_wide: Bytes,
}

/// What a caller got: the code and everything readable in the answer (the message of an
/// error too: an error naming another site's record would leak it).
type Seen = (Code, Vec<u8>);

async fn look(suite: &TestSuite, probes: &[Probe<'_>], trust_wide: bool) -> Vec<Seen> {
    let sites: &[&str] = if trust_wide { &["*"] } else { &[OWN] };
    let mut out = Vec::new();
    for p in probes {
        let t = p.target;
        let token = suite.token("leak-probe", &[allowed_role(&t.policy)], sites);
        let message = if trust_wide {
            p.trust_wide.clone()
        } else {
            p.one_site.clone()
        };
        let seen = match call(
            suite.channel.clone(),
            &t.method,
            &t.path,
            Some(&token),
            message,
        )
        .await
        {
            Ok(bytes) => (Code::Ok, bytes.to_vec()),
            Err(s) => (s.code(), s.message().as_bytes().to_vec()),
        };
        out.push(seen);
    }
    out
}

/// An answer without the fields the contract marks as totals "(across the trust)" (a
/// ward programme's wards still to reach its trust-wide target): everything else must be
/// the caller's sites' alone.
fn site_scoped(target: &Target, seen: &Seen) -> Seen {
    let (code, bytes) = seen;
    if *code != Code::Ok {
        return seen.clone();
    }
    let Ok(mut message) = DynamicMessage::decode(target.method.output(), bytes.as_slice()) else {
        return seen.clone();
    };
    strip_trust_totals(&mut message);
    (*code, prost::Message::encode_to_vec(&message))
}

fn strip_trust_totals(message: &mut DynamicMessage) {
    for field in message.descriptor().fields() {
        if comment(&field).contains("(across the trust)") {
            message.clear_field(&field);
            continue;
        }
        // Only what is set: a mutable look at an unset field would set it (and switch a
        // oneof to it).
        if field.kind().as_message().is_none() || field.is_map() || !message.has_field(&field) {
            continue;
        }
        let value = message.get_field_mut(&field);
        if let Value::Message(inner) = value {
            strip_trust_totals(inner);
        } else if let Value::List(items) = value {
            for item in items {
                if let Value::Message(inner) = item {
                    strip_trust_totals(inner);
                }
            }
        }
    }
}

fn carries(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The trust-wide ward programme every site's wards and projects join.
const TRUST_PROGRAMME: &str = "leak-wards";
/// The trust metrics every site records into: by site, and by ward.
const TRUST_METRIC_BY_SITE: &str = "leak-falls";
const TRUST_METRIC_BY_WARD: &str = "leak-ward-falls";

/// Trust-wide records that each site's seeded records join: a ward programme (its waves
/// planned) for the wards and projects, a cohort for the staff, and two trust metrics (by
/// site, and by ward) for measurements.
async fn seed_trust_records(suite: &TestSuite) -> Ids {
    use qi_e2e::authed;
    use qi_proto::{metrics, projects, training};
    let admin = suite.token("seeder", &["admin"], &["*"]);
    let mut m = metrics::metric_service_client::MetricServiceClient::new(suite.channel.clone());
    for (id, location) in [
        (TRUST_METRIC_BY_SITE, metrics::LocationBreakdown::Site),
        (TRUST_METRIC_BY_WARD, metrics::LocationBreakdown::Ward),
    ] {
        m.create_metric(authed(
            &admin,
            metrics::CreateMetricRequest {
                parent: "trust".into(),
                metric_id: id.into(),
                metric: Some(metrics::Metric {
                    display_name: "Falls".into(),
                    kind: metrics::MetricKind::Qms as i32,
                    improvement_direction: metrics::ImprovementDirection::Decrease as i32,
                    frequency: metrics::MetricFrequency::Month as i32,
                    value_type: metrics::MetricValueType::Count as i32,
                    location_breakdown: location as i32,
                    dimensions: vec![metrics::InequalityDimension::Sex as i32],
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap();
    }
    let cohort =
        training::training_service_client::TrainingServiceClient::new(suite.channel.clone())
            .create_cohort(authed(
                &admin,
                training::CreateCohortRequest {
                    parent: "trust".into(),
                    cohort_id: "leak-cohort".into(),
                    cohort: Some(training::Cohort {
                        course: "trust/courses/qsir-prac".into(),
                        display_name: "Cross-site practitioners".into(),
                        start_date: Some(qi_proto::google::r#type::Date {
                            year: 2027,
                            month: 3,
                            day: 1,
                        }),
                        capacity: 20,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .cohort
            .unwrap();
    let mut p = projects::project_service_client::ProjectServiceClient::new(suite.channel.clone());
    let programme = p
        .create_programme(authed(
            &admin,
            projects::CreateProgrammeRequest {
                parent: "trust".into(),
                programme_id: TRUST_PROGRAMME.into(),
                programme: Some(projects::Programme {
                    display_name: "Ward accreditation".into(),
                    kind: projects::ProgrammeKind::WardProgramme as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .programme
        .unwrap();
    let today = chrono::Utc::now().date_naive();
    let first = chrono::Datelike::with_day(&today, 1).unwrap();
    let date = |d: chrono::NaiveDate| Some(qi_platform::convert::date(d));
    p.plan_waves(authed(
        &admin,
        projects::PlanWavesRequest {
            programme: programme.name.clone(),
            wave_plan: Some(projects::WavePlan {
                first_wave_date: date(first),
                interval_months: 3,
                wards_per_wave: 10,
                end_date: date(first + chrono::Months::new(12)),
                target_wards: 20,
                ..Default::default()
            }),
            etag: String::new(),
        },
    ))
    .await
    .unwrap();
    Ids::from([
        ("programmes", last_segment(&programme.name)),
        ("cohorts", last_segment(&cohort.name)),
        ("metrics", TRUST_METRIC_BY_SITE.to_owned()),
    ])
}

/// Puts the ward and the staff member `seed` made for `site` in `round` into the trust-wide
/// programme and cohort, and records the site's and the ward's falls of month `round` in
/// the trust metrics.
async fn join_trust_records(
    suite: &TestSuite,
    trust_ids: &Ids,
    site_ids: &Ids,
    site: &str,
    round: u32,
) {
    use qi_e2e::authed;
    use qi_proto::{metrics, projects, training};
    let admin = suite.token("seeder", &["admin"], &["*"]);
    let month = i32::try_from(round).unwrap();
    let value = if site == OWN { 5.0 } else { 9.0 };
    let falls = |at_site: String, at_ward: String, sex: &str| metrics::Measurement {
        period: Some(qi_proto::google::r#type::Date {
            year: 2026,
            month,
            day: 1,
        }),
        site: at_site,
        ward: at_ward,
        stratum: Some(metrics::Stratum {
            sex: sex.into(),
            ..Default::default()
        }),
        value: Some(value),
        ..Default::default()
    };
    let ward = format!("sites/{site}/wards/{}", site_ids["wards"]);
    let mut m = metrics::metric_service_client::MetricServiceClient::new(suite.channel.clone());
    for (metric, row) in [
        (
            TRUST_METRIC_BY_SITE,
            falls(format!("sites/{site}"), String::new(), "1"),
        ),
        (TRUST_METRIC_BY_WARD, falls(String::new(), ward, "2")),
    ] {
        m.batch_create_measurements(authed(
            &admin,
            metrics::BatchCreateMeasurementsRequest {
                parent: format!("trust/metrics/{metric}"),
                measurements: vec![row],
                request_id: String::new(),
            },
        ))
        .await
        .unwrap();
    }
    training::training_service_client::TrainingServiceClient::new(suite.channel.clone())
        .create_enrolment(authed(
            &admin,
            training::CreateEnrolmentRequest {
                parent: format!("trust/cohorts/{}", trust_ids["cohorts"]),
                enrolment: Some(training::Enrolment {
                    staff: format!("sites/{site}/staff/{}", site_ids["staff"]),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap();
    projects::project_service_client::ProjectServiceClient::new(suite.channel.clone())
        .create_ward_enrolment(authed(
            &admin,
            projects::CreateWardEnrolmentRequest {
                parent: format!("trust/programmes/{}", trust_ids["programmes"]),
                ward_enrolment: Some(projects::WardEnrolment {
                    ward: format!("sites/{site}/wards/{}", site_ids["wards"]),
                    wave: 1,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn no_read_hands_a_one_site_caller_another_sites_data() {
    let suite = TestSuite::start_with(&[("QI_RATE_LIMIT_PER_SUBJECT", "0")]).await;
    let all = targets();
    let reads = site_reads(&all);
    assert!(reads.len() >= 40, "only {} reads", reads.len());
    let trust_ids = seed_trust_records(&suite).await;
    let own = seed(&suite, OWN, 1).await;
    join_trust_records(&suite, &trust_ids, &own, OWN, 1).await;
    let other = seed(&suite, OTHER, 1).await;
    join_trust_records(&suite, &trust_ids, &other, OTHER, 1).await;
    // The trust records once more, with the metric recorded by ward in place of the one
    // recorded by site: only the probes that name a metric differ.
    let mut by_ward = trust_ids.clone();
    by_ward.insert("metrics", TRUST_METRIC_BY_WARD.to_owned());
    let mut probes: Vec<Probe<'_>> = Vec::new();
    for t in &reads {
        for (root, ids) in [
            (Root::Sites, &other),
            (Root::Trust, &trust_ids),
            (Root::Trust, &by_ward),
            (Root::EverySite, &other),
            (Root::EveryTrust, &trust_ids),
        ] {
            if let (Some(one_site), Some(trust_wide)) =
                (probe(t, root, ids, "-"), probe(t, root, ids, OTHER))
            {
                let asked = |p: &Probe<'_>| {
                    p.target.path == t.path && p.root == root && p.one_site == one_site
                };
                if !probes.iter().any(asked) {
                    probes.push(Probe {
                        target: t,
                        root,
                        one_site,
                        trust_wide,
                    });
                }
            }
        }
    }
    // The read model's answers follow the feeds: each look waits until it has caught up,
    // so a change in its answer is the new site's data, never its own arriving late.
    suite.until_read_model_caught_up().await;
    let before = look(&suite, &probes, false).await;
    // More of the other site's records: nothing a one-site caller sees may change.
    let more = seed(&suite, OTHER, 2).await;
    join_trust_records(&suite, &trust_ids, &more, OTHER, 2).await;
    suite.until_read_model_caught_up().await;
    let after = look(&suite, &probes, false).await;
    let trust = look(&suite, &probes, true).await;

    let mut leaks = Vec::new();
    let mut answered = 0;
    let mut trust_sees_other = Vec::new();
    for (i, p) in probes.iter().enumerate() {
        let what = format!("{} ({:?} probe)", p.target.path, p.root);
        let (code, bytes) = &after[i];
        if *code == Code::Ok {
            answered += 1;
        }
        for needle in [format!("sites/{OTHER}"), OTHER_MARKER.to_owned()] {
            if carries(bytes, &needle) {
                leaks.push(format!("{what}: a {OWN} caller got `{needle}` ({code:?})"));
            }
        }
        if site_scoped(p.target, &before[i]) != site_scoped(p.target, &after[i]) {
            leaks.push(format!(
                "{what}: a {OWN} caller's answer changed when only {OTHER} data was added"
            ));
        }
        let (code, bytes) = &trust[i];
        if *code == Code::Ok
            && (carries(bytes, OTHER_MARKER) || carries(bytes, &format!("sites/{OTHER}")))
        {
            trust_sees_other.push(p.target.method.name().to_owned());
        }
    }
    println!(
        "leak check: {} reads, {} probes, {answered} answered OK for the {OWN} \
         caller; the trust-wide caller saw {OTHER} data in {trust_sees_other:?}",
        reads.len(),
        probes.len()
    );
    assert!(leaks.is_empty(), "leaks:\n{}", leaks.join("\n"));
    // The check can fail: what was seeded is there to be seen by a caller who may see it,
    // and the one-site caller sees its own site's records in the plain lists.
    for (i, p) in probes.iter().enumerate() {
        let plain = [
            "ListCohorts",
            "ListStaff",
            "ListEsrMappings",
            "ListWards",
            "ListIdeas",
            "ListProjects",
            "ListMetrics",
            "ListWardEnrolments",
            "WatchChanges",
        ];
        if plain.contains(&p.target.method.name()) && p.root == Root::Sites {
            assert!(
                carries(&after[i].1, OWN_MARKER) || p.target.method.name() == "ListWardEnrolments",
                "{}: the {OWN} caller does not see its own records",
                p.target.path
            );
        }
    }
    // The collection-wide reads of nested collections were probed, and a trust-wide caller
    // finds the other site's rows there.
    for (method, root) in [
        ("ListEnrolments", Root::EveryTrust),
        ("ListMeasurements", Root::EverySite),
        ("ListMeasurements", Root::EveryTrust),
    ] {
        let i = (0..probes.len())
            .find(|&i| probes[i].root == root && probes[i].target.method.name() == method)
            .unwrap_or_else(|| panic!("{method} is not probed under {root:?}"));
        assert!(
            carries(&trust[i].1, OTHER_MARKER) || carries(&trust[i].1, &format!("sites/{OTHER}")),
            "{method} under {root:?}: the trust-wide caller did not see {OTHER}'s rows"
        );
    }
    // Both trust metrics were probed, and hold the other site's rows.
    let trust_metric_lists: Vec<usize> = (0..probes.len())
        .filter(|&i| {
            probes[i].root == Root::Trust && probes[i].target.method.name() == "ListMeasurements"
        })
        .collect();
    assert_eq!(trust_metric_lists.len(), 2);
    for i in trust_metric_lists {
        assert!(
            carries(&trust[i].1, &format!("sites/{OTHER}")),
            "the trust-wide caller did not see the {OTHER} measurements of a trust metric"
        );
    }
    for seeded in [
        "ListCohorts",
        "ListStaff",
        "ListEsrMappings",
        "ListWards",
        "ListIdeas",
        "ListProjects",
        "ListMetrics",
        "ListMeasurements",
        "ListSessions",
        "ListWardEnrolments",
        "ListEnrolments",
    ] {
        assert!(
            trust_sees_other.iter().any(|m| m == seeded),
            "{seeded}: the trust-wide caller did not see the {OTHER} records, so the check \
             proves nothing there"
        );
    }
    suite.stop().await.unwrap();
}
