//! Every RPC of the QI contracts that a client does not stream into carries a
//! `google.api.http` rule (AIP-127), ready for the gateway to transcode HTTP/JSON: a `/v1/`
//! path whose variables are string fields of the request, a body that is `*` or one of its
//! fields, and a route no other RPC of any service shares. Client-streaming (and bidi)
//! RPCs have none: they stay gRPC only.
//!
//! The checks follow the grammar and rules of `google/api/http.proto`:
//!
//! ```text
//! Template = "/" Segments [ Verb ] ;
//! Segments = Segment { "/" Segment } ;
//! Segment  = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;
//! FieldPath = IDENT { "." IDENT } ;
//! Verb     = ":" LITERAL ;
//! ```

use std::collections::BTreeSet;

use prost_reflect::{DescriptorPool, Kind, MessageDescriptor, MethodDescriptor, Value};
use qi_proto::google::api::HttpRule;
use qi_proto::google::api::http_rule::Pattern;

/// One segment of a path template, variables expanded into what they match.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    /// A literal segment, matched exactly.
    Lit(String),
    /// `*`: exactly one segment.
    Star,
    /// `**`: zero or more segments (only last).
    Rest,
}

/// A parsed path template.
#[derive(Debug)]
struct Template {
    /// What the path matches, segment by segment.
    segments: Vec<Seg>,
    /// The custom verb after `:`, if any.
    verb: Option<String>,
    /// The field paths of the variables, e.g. `["idea", "name"]`.
    variables: Vec<Vec<String>>,
}

/// One HTTP binding of a method: its main rule or one of its `additional_bindings`.
#[derive(Debug)]
struct Route {
    /// `/qi.training.v1.TrainingService/GetCohort`, and which binding.
    method: String,
    /// `GET`, `POST`, …
    verb: String,
    /// The template as written.
    path: String,
    /// The parsed template (None when it did not parse: reported elsewhere).
    template: Option<Template>,
}

fn is_literal(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'))
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Splits `s` at `sep` outside braces.
fn split_outside_braces(s: &str, sep: char) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0_i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            c if c == sep && depth == 0 => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err("unbalanced or nested braces".into());
        }
    }
    if depth != 0 {
        return Err("unbalanced braces".into());
    }
    parts.push(&s[start..]);
    Ok(parts)
}

fn plain_segment(s: &str) -> Result<Seg, String> {
    match s {
        "*" => Ok(Seg::Star),
        "**" => Ok(Seg::Rest),
        s if is_literal(s) => Ok(Seg::Lit(s.to_owned())),
        s => Err(format!("segment `{s}` is neither `*`, `**` nor a literal")),
    }
}

fn parse_template(path: &str) -> Result<Template, String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err("does not start with `/`".into());
    };
    let mut pieces = split_outside_braces(rest, ':')?;
    let verb = match pieces.len() {
        1 => None,
        2 => {
            let verb = pieces.pop().unwrap_or_default();
            if !is_literal(verb) {
                return Err(format!("verb `{verb}` is not a literal"));
            }
            Some(verb.to_owned())
        }
        _ => return Err("more than one `:`".into()),
    };
    let mut template = Template {
        segments: Vec::new(),
        verb,
        variables: Vec::new(),
    };
    for segment in split_outside_braces(pieces[0], '/')? {
        if let Some(inner) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let (field, pattern) = inner.split_once('=').unwrap_or((inner, "*"));
            let field: Vec<String> = field.split('.').map(str::to_owned).collect();
            if !field.iter().all(|f| is_ident(f)) {
                return Err(format!("variable `{{{inner}}}` does not name a field path"));
            }
            template.variables.push(field);
            for s in pattern.split('/') {
                template.segments.push(plain_segment(s)?);
            }
        } else {
            template.segments.push(plain_segment(segment)?);
        }
    }
    if template
        .segments
        .iter()
        .rev()
        .skip(1)
        .any(|s| *s == Seg::Rest)
    {
        return Err("`**` before the last segment".into());
    }
    Ok(template)
}

/// Whether some request path (and verb) matches both templates: the router could not tell
/// the two methods apart.
fn overlap(a: &[Seg], b: &[Seg]) -> bool {
    match (a.first(), b.first()) {
        (None, None) | (Some(Seg::Rest), _) | (_, Some(Seg::Rest)) => true,
        (None, Some(_)) | (Some(_), None) => false,
        (Some(x), Some(y)) => {
            let same = match (x, y) {
                (Seg::Lit(x), Seg::Lit(y)) => x == y,
                _ => true,
            };
            same && overlap(&a[1..], &b[1..])
        }
    }
}

/// Whether a field can be set from a URL query parameter: a scalar or enum (repeated or
/// not), or a singular message whose fields all can (maps and repeated messages cannot).
fn query_mappable(kind: &Kind, is_list: bool, is_map: bool, stack: &mut Vec<String>) -> bool {
    if is_map {
        return false;
    }
    let Kind::Message(m) = kind else {
        return true;
    };
    if is_list {
        return false;
    }
    if stack.iter().any(|seen| seen == m.full_name()) {
        return true;
    }
    stack.push(m.full_name().to_owned());
    let ok = m
        .fields()
        .all(|f| query_mappable(&f.kind(), f.is_list(), f.is_map(), stack));
    stack.pop();
    ok
}

fn http_rule(pool: &DescriptorPool, method: &MethodDescriptor) -> Result<Option<HttpRule>, String> {
    let ext = pool
        .get_extension_by_name("google.api.http")
        .ok_or("the descriptor pool lacks the `google.api.http` extension")?;
    let options = method.options();
    if !options.has_extension(&ext) {
        return Ok(None);
    }
    let value = options.get_extension(&ext);
    let Value::Message(m) = value.as_ref() else {
        return Err(format!(
            "its `google.api.http` option is not a message: {value:?}"
        ));
    };
    m.transcode_to::<HttpRule>()
        .map(Some)
        .map_err(|e| format!("its `google.api.http` option does not decode: {e}"))
}

fn verb_and_path(rule: &HttpRule) -> Option<(String, String)> {
    Some(match rule.pattern.as_ref()? {
        Pattern::Get(p) => ("GET".into(), p.clone()),
        Pattern::Put(p) => ("PUT".into(), p.clone()),
        Pattern::Post(p) => ("POST".into(), p.clone()),
        Pattern::Delete(p) => ("DELETE".into(), p.clone()),
        Pattern::Patch(p) => ("PATCH".into(), p.clone()),
        Pattern::Custom(c) => (c.kind.to_ascii_uppercase(), c.path.clone()),
    })
}

/// Resolves a variable's field path in the request: every step a singular field, messages
/// on the way, a string at the end.
fn check_variable(input: &MessageDescriptor, path: &[String]) -> Result<(), String> {
    let mut message = input.clone();
    for (i, name) in path.iter().enumerate() {
        let Some(field) = message.get_field_by_name(name) else {
            return Err(format!("`{}` has no field `{name}`", message.full_name()));
        };
        if field.is_list() || field.is_map() {
            return Err(format!("`{}.{name}` is repeated", message.full_name()));
        }
        let kind = field.kind();
        if i + 1 == path.len() {
            if !matches!(kind, Kind::String) {
                return Err(format!("`{}.{name}` is not a string", message.full_name()));
            }
        } else if let Kind::Message(inner) = kind {
            message = inner;
        } else {
            return Err(format!("`{}.{name}` is not a message", message.full_name()));
        }
    }
    Ok(())
}

/// What is wrong with one binding of `method`: `label` names it in the messages.
fn binding_problems(method: &MethodDescriptor, rule: &HttpRule, label: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut say = |p: String| problems.push(format!("{label}: {p}"));
    let input = method.input();
    let Some((verb, path)) = verb_and_path(rule) else {
        say("no HTTP method and path".into());
        return problems;
    };
    if !rule.selector.is_empty() {
        say(format!(
            "`selector` is for service config, not a method option: `{}`",
            rule.selector
        ));
    }
    if !path.starts_with("/v1/") {
        say(format!("path `{path}` does not start with `/v1/`"));
    }
    let mut bound: BTreeSet<String> = BTreeSet::new();
    match parse_template(&path) {
        Err(e) => say(format!("path `{path}` does not parse: {e}")),
        Ok(template) => {
            for variable in &template.variables {
                let dotted = variable.join(".");
                if let Err(e) = check_variable(&input, variable) {
                    say(format!("path variable `{dotted}` in `{path}`: {e}"));
                }
                if !bound.insert(dotted.clone()) {
                    say(format!("path `{path}` binds `{dotted}` twice"));
                }
            }
        }
    }
    // The body: none, the whole request, or one top-level field of it.
    let body = rule.body.as_str();
    match body {
        "" | "*" => {}
        field => match input.get_field_by_name(field) {
            None => say(format!(
                "body `{field}` is not a field of `{}`",
                input.full_name()
            )),
            Some(_) if bound.contains(field) => {
                say(format!("body `{field}` is bound by the path too"));
            }
            Some(_) => {}
        },
    }
    if matches!(verb.as_str(), "GET" | "DELETE") && !body.is_empty() {
        say(format!("{verb} has a body (`{body}`)"));
    }
    if !rule.response_body.is_empty()
        && method
            .output()
            .get_field_by_name(&rule.response_body)
            .is_none()
    {
        say(format!(
            "response_body `{}` is not a field of `{}`",
            rule.response_body,
            method.output().full_name()
        ));
    }
    // Whatever neither the path nor the body carries comes from the query string.
    if body != "*" {
        for field in input.fields() {
            let name = field.name();
            if name == body || bound.contains(name) {
                continue;
            }
            if !query_mappable(
                &field.kind(),
                field.is_list(),
                field.is_map(),
                &mut Vec::new(),
            ) {
                say(format!(
                    "field `{name}` would come from the query string, which cannot carry it: \
                     use `body: \"*\"` (or a body field)"
                ));
            }
        }
    }
    problems
}

/// Every binding of a method's rule, checked; the routes for the clash check.
fn method_problems(
    method: &MethodDescriptor,
    rule: &HttpRule,
    routes: &mut Vec<Route>,
) -> Vec<String> {
    let name = format!("/{}/{}", method.parent_service().full_name(), method.name());
    let mut problems = binding_problems(method, rule, &name);
    for (i, extra) in rule.additional_bindings.iter().enumerate() {
        let label = format!("{name} (additional_bindings[{i}])");
        problems.extend(binding_problems(method, extra, &label));
        if !extra.additional_bindings.is_empty() {
            problems.push(format!("{label}: nests additional_bindings"));
        }
    }
    for (i, binding) in std::iter::once(rule)
        .chain(&rule.additional_bindings)
        .enumerate()
    {
        if let Some((verb, path)) = verb_and_path(binding) {
            routes.push(Route {
                method: if i == 0 {
                    name.clone()
                } else {
                    format!("{name} (additional_bindings[{}])", i - 1)
                },
                verb,
                template: parse_template(&path).ok(),
                path,
            });
        }
    }
    problems
}

/// Pairs of routes a request could match both of.
fn clashes(routes: &[Route]) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, a) in routes.iter().enumerate() {
        for b in &routes[i + 1..] {
            let (Some(ta), Some(tb)) = (&a.template, &b.template) else {
                continue;
            };
            if a.verb == b.verb && ta.verb == tb.verb && overlap(&ta.segments, &tb.segments) {
                problems.push(format!(
                    "{} `{}` of {} clashes with `{}` of {}",
                    a.verb, a.path, a.method, b.path, b.method
                ));
            }
        }
    }
    problems
}

fn pool() -> DescriptorPool {
    DescriptorPool::decode(qi_proto::FILE_DESCRIPTOR_SET).expect("the compiled descriptor set")
}

#[test]
fn every_rpc_but_client_streams_has_a_sound_unique_http_rule() {
    let pool = pool();
    let mut problems = Vec::new();
    let mut routes = Vec::new();
    let mut services = 0;
    for service in pool
        .services()
        .filter(|s| s.package_name().starts_with("qi."))
    {
        services += 1;
        for method in service.methods() {
            let name = format!("/{}/{}", service.full_name(), method.name());
            match (http_rule(&pool, &method), method.is_client_streaming()) {
                (Err(e), _) => problems.push(format!("{name}: {e}")),
                (Ok(Some(_)), true) => problems.push(format!(
                    "{name}: streams requests, so stays gRPC only, yet has a `google.api.http` rule"
                )),
                (Ok(None), true) => {}
                (Ok(None), false) => problems.push(format!("{name}: no `google.api.http` rule")),
                (Ok(Some(rule)), false) => {
                    problems.extend(method_problems(&method, &rule, &mut routes));
                }
            }
        }
    }
    assert!(
        services >= 5,
        "found only {services} qi.* services in the descriptor set"
    );
    problems.extend(clashes(&routes));
    assert!(
        problems.is_empty(),
        "{} problem(s) with the HTTP rules (AIP-127):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The checks above catch what they claim to: each bad rule here is refused.
#[test]
fn the_http_rule_checks_refuse_bad_rules() {
    let pool = pool();
    let method = |name: &str| {
        pool.get_service_by_name("qi.training.v1.TrainingService")
            .and_then(|s| s.methods().find(|m| m.name() == name))
            .expect("the method")
    };
    let rule = |pattern: Pattern, body: &str| HttpRule {
        pattern: Some(pattern),
        body: body.into(),
        ..HttpRule::default()
    };
    let get = |p: &str| Pattern::Get(p.into());
    let post = |p: &str| Pattern::Post(p.into());
    let refused = |m: &str, r: HttpRule| {
        let problems = method_problems(&method(m), &r, &mut Vec::new());
        assert!(!problems.is_empty(), "{m} {r:?} passed");
    };
    // An unknown path variable, a non-string one, a missing prefix, a bad template.
    refused("GetCohort", rule(get("/v1/{nam=sites/*/cohorts/*}"), ""));
    refused(
        "ListCohorts",
        rule(get("/v1/{page_size=sites/*}/cohorts"), ""),
    );
    refused("GetCohort", rule(get("/v2/{name=sites/*/cohorts/*}"), ""));
    refused("GetCohort", rule(get("/v1/{name=sites/*/cohorts/*"), ""));
    refused("GetCohort", rule(get("/v1/{name=sites/**/cohorts/*}"), ""));
    refused(
        "UpdateCohort",
        rule(
            Pattern::Patch("/v1/{cohort.nme=sites/*/cohorts/*}".into()),
            "cohort",
        ),
    );
    // A body that is no field, and a GET with a body.
    refused(
        "CreateCohort",
        rule(post("/v1/{parent=sites/*}/cohorts"), "cohorts"),
    );
    refused("GetCohort", rule(get("/v1/{name=sites/*/cohorts/*}"), "*"));
    // Repeated messages cannot come from the query string.
    refused(
        "ReconcileTraining",
        rule(get("/v1/{parent=sites/*}/completions:reconcile"), ""),
    );
    // A bad additional binding is caught too.
    let mut nested = rule(get("/v1/{name=sites/*/cohorts/*}"), "");
    nested
        .additional_bindings
        .push(rule(get("/v1/{name=trust/cohorts/*}:x:y"), ""));
    refused("GetCohort", nested);

    // Two methods on one route, or on overlapping ones, clash; a verb or a literal keeps
    // them apart.
    let mut routes = Vec::new();
    let ok = |m: &str, r: HttpRule, routes: &mut Vec<Route>| {
        let problems = method_problems(&method(m), &r, routes);
        assert!(problems.is_empty(), "{problems:?}");
    };
    ok(
        "GetCohort",
        rule(get("/v1/{name=sites/*/cohorts/*}"), ""),
        &mut routes,
    );
    ok(
        "StartCohort",
        rule(post("/v1/{name=sites/*/cohorts/*}:start"), "*"),
        &mut routes,
    );
    ok(
        "OpenCohort",
        rule(post("/v1/{name=sites/*/cohorts/*}:open"), "*"),
        &mut routes,
    );
    assert!(clashes(&routes).is_empty(), "{:?}", clashes(&routes));
    ok(
        "GetCourse",
        rule(get("/v1/{name=sites/*/cohorts/*}"), ""),
        &mut routes,
    );
    ok(
        "CompleteCohort",
        rule(post("/v1/{name=sites/BAS/cohorts/*}:open"), "*"),
        &mut routes,
    );
    ok(
        "CancelCohort",
        rule(post("/v1/sites/{name=**}:start"), "*"),
        &mut routes,
    );
    let found = clashes(&routes);
    assert_eq!(found.len(), 3, "{found:#?}");
}
