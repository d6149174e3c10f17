//! `/openapi.json`: an OpenAPI 3.1 document of the HTTP/JSON face, generated from the same
//! descriptors and `google.api.http` rules the transcoder routes by, with the contracts'
//! comments as descriptions. A variable spanning several segments
//! (`{name=sites/*/projects/*}`) is written as its literal segments with one parameter per
//! `*` (`/v1/sites/{site}/projects/{project}`), the shape OpenAPI clients can fill.

use std::collections::{BTreeMap, BTreeSet};

use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor};
use serde_json::{Map, Value, json};

use super::Route;

/// The document for `routes`.
pub(crate) fn document(pool: &DescriptorPool, routes: &[Route]) -> Value {
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut messages: BTreeSet<String> = BTreeSet::new();
    let mut seen_ids: BTreeMap<String, usize> = BTreeMap::new();
    for route in routes {
        let (path, params) = openapi_path(&route.template_text);
        let input = route.rpc.input();
        let bound: BTreeSet<String> = route.bound_fields().into_iter().collect();
        let mut parameters: Vec<Value> = params
            .iter()
            .map(|p| {
                json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"},
                       "description": "one segment of the resource name (`-` for every site the caller holds, where a site is asked)"})
            })
            .collect();
        let body_fields: BTreeSet<String> = match route.body.as_str() {
            "*" => input.fields().map(|f| f.name().to_owned()).collect(),
            "" => BTreeSet::new(),
            f => std::iter::once(f.to_owned()).collect(),
        };
        for f in input.fields() {
            if bound.contains(f.name()) || body_fields.contains(f.name()) {
                continue;
            }
            if let Some(schema) = query_schema(&f) {
                parameters.push(json!({
                    "name": f.json_name(), "in": "query", "schema": schema,
                    "description": comment(&f.parent_file(), f.path()),
                }));
            }
        }
        let mut op = Map::new();
        let base = format!("{}_{}", route.rpc.parent_service().name(), route.rpc.name());
        let n = seen_ids.entry(base.clone()).or_default();
        *n += 1;
        let id = if *n == 1 { base } else { format!("{base}_{n}") };
        op.insert("operationId".into(), json!(id));
        op.insert("tags".into(), json!([route.rpc.parent_service().name()]));
        op.insert("description".into(), json!(method_comment(&route.rpc)));
        op.insert("parameters".into(), Value::Array(parameters));
        match route.body.as_str() {
            "" => {}
            "*" => {
                messages.insert(input.full_name().to_owned());
                op.insert(
                    "requestBody".into(),
                    json!({"required": true, "content": {"application/json": {"schema": reference(&input)}}}),
                );
            }
            field => {
                if let Some(Kind::Message(m)) = input.get_field_by_name(field).map(|f| f.kind()) {
                    messages.insert(m.full_name().to_owned());
                    op.insert(
                        "requestBody".into(),
                        json!({"required": true, "content": {"application/json": {"schema": reference(&m)}}}),
                    );
                }
            }
        }
        let output = route.rpc.output();
        messages.insert(output.full_name().to_owned());
        let media = if route.rpc.is_server_streaming() {
            "application/x-ndjson"
        } else {
            "application/json"
        };
        op.insert(
            "responses".into(),
            json!({
                "200": {"description": "the answer", "content": {media: {"schema": reference(&output)}}},
                "default": {"description": "an error: the google.rpc.Status, with the HTTP status its code maps to",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/google.rpc.Status"}}}}
            }),
        );
        op.insert("security".into(), json!([{"bearer": []}]));
        paths
            .entry(path)
            .or_default()
            .insert(route.verb.as_str().to_lowercase(), Value::Object(op));
    }
    messages.insert("google.rpc.Status".into());
    let mut schemas = Map::new();
    let mut todo: Vec<String> = messages.into_iter().collect();
    let mut done = BTreeSet::new();
    while let Some(name) = todo.pop() {
        if !done.insert(name.clone()) {
            continue;
        }
        let Some(m) = pool.get_message_by_name(&name) else {
            continue;
        };
        schemas.insert(name, message_schema(&m, &mut todo));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "QI Suite",
            "version": "v1",
            "description": "The QI Suite's services over HTTP/JSON (the proto3 JSON mapping), transcoded at the gateway from the contracts' google.api.http rules. Every call needs `Authorization: Bearer <token>`."
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
        }
    })
}

/// An HTTP rule's template as an OpenAPI path, and its path parameters in order.
fn openapi_path(template: &str) -> (String, Vec<String>) {
    let (path, verb) = match template.rfind(':') {
        Some(i) if !template[i..].contains('}') => (&template[..i], Some(&template[i..])),
        _ => (template, None),
    };
    let mut out = String::new();
    let mut params: Vec<String> = Vec::new();
    let mut previous = String::new();
    let push =
        |segment: &str, out: &mut String, params: &mut Vec<String>, previous: &mut String| {
            out.push('/');
            if segment == "*" || segment == "**" {
                let base = singular(previous);
                let mut name = base.clone();
                let mut k = 2;
                while params.contains(&name) {
                    name = format!("{base}{k}");
                    k += 1;
                }
                out.push_str(&format!("{{{name}}}"));
                params.push(name);
            } else {
                out.push_str(segment);
            }
            segment.clone_into(previous);
        };
    let mut rest = path.trim_start_matches('/');
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix('{') {
            let end = inner.find('}').unwrap_or(inner.len());
            let pattern = inner[..end].split_once('=').map_or("*", |(_, p)| p);
            for s in pattern.split('/') {
                push(s, &mut out, &mut params, &mut previous);
            }
            rest = inner.get(end + 1..).unwrap_or("").trim_start_matches('/');
        } else {
            let end = rest.find('/').unwrap_or(rest.len());
            push(&rest[..end], &mut out, &mut params, &mut previous);
            rest = rest[end..].trim_start_matches('/');
        }
    }
    if let Some(v) = verb {
        out.push_str(v);
    }
    (out, params)
}

/// `projects` → `project`, `staff` → `staff`: a collection's one member, for a parameter.
fn singular(collection: &str) -> String {
    let c = collection.trim_end_matches('s');
    if c.is_empty() || collection == "staff" {
        collection.to_owned()
    } else {
        c.to_owned()
    }
}

fn reference(m: &MessageDescriptor) -> Value {
    json!({"$ref": format!("#/components/schemas/{}", m.full_name())})
}

/// A scalar field's schema for the query string; `None` for what the query cannot carry.
fn query_schema(f: &FieldDescriptor) -> Option<Value> {
    if f.is_map() {
        return None;
    }
    let scalar = scalar_schema(f)?;
    Some(if f.is_list() {
        json!({"type": "array", "items": scalar})
    } else {
        scalar
    })
}

/// The schema of a field's single value, for a scalar or enum kind.
fn scalar_schema(f: &FieldDescriptor) -> Option<Value> {
    Some(match f.kind() {
        Kind::String => json!({"type": "string"}),
        Kind::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
        Kind::Bool => json!({"type": "boolean"}),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            json!({"type": "integer", "format": "int32"})
        }
        Kind::Uint32 | Kind::Fixed32 => json!({"type": "integer", "format": "int64", "minimum": 0}),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => {
            json!({"type": "string", "format": "int64"})
        }
        Kind::Double | Kind::Float => json!({"type": "number"}),
        Kind::Enum(e) => {
            json!({"type": "string", "enum": e.values().map(|v| v.name().to_owned()).collect::<Vec<_>>()})
        }
        Kind::Message(_) => return None,
    })
}

/// A message's schema; the messages it refers to are added to `todo`.
fn message_schema(m: &MessageDescriptor, todo: &mut Vec<String>) -> Value {
    if let Some(schema) = well_known(m.full_name()) {
        return schema;
    }
    let mut properties = Map::new();
    for f in m.fields() {
        let value = field_schema(&f, todo);
        properties.insert(f.json_name().to_owned(), value);
    }
    let mut schema = json!({"type": "object", "properties": properties});
    let description = comment(&m.parent_file(), m.path());
    if !description.is_empty() {
        schema["description"] = json!(description);
    }
    schema
}

/// The JSON form of a well-known type the proto3 mapping writes as a scalar or free object.
fn well_known(name: &str) -> Option<Value> {
    Some(match name {
        "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
        "google.protobuf.Duration" => {
            json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?s$"})
        }
        "google.protobuf.FieldMask" => json!({"type": "string"}),
        "google.protobuf.Any" => {
            json!({"type": "object", "properties": {"@type": {"type": "string"}},
                                        "additionalProperties": true})
        }
        "google.protobuf.Struct" | "google.protobuf.Value" => json!({}),
        _ => return None,
    })
}

fn field_schema(f: &FieldDescriptor, todo: &mut Vec<String>) -> Value {
    let single = if let Kind::Message(inner) = f.kind() {
        if f.is_map() {
            let value = inner.map_entry_value_field();
            return json!({"type": "object", "additionalProperties": field_schema(&value, todo)});
        }
        well_known(inner.full_name()).unwrap_or_else(|| {
            todo.push(inner.full_name().to_owned());
            reference(&inner)
        })
    } else {
        scalar_schema(f).unwrap_or_else(|| json!({}))
    };
    let mut schema = if f.is_list() {
        json!({"type": "array", "items": single})
    } else {
        single
    };
    let description = comment(&f.parent_file(), f.path());
    if !description.is_empty() && schema.get("$ref").is_none() {
        schema["description"] = json!(description);
    }
    schema
}

fn method_comment(m: &MethodDescriptor) -> String {
    comment(&m.parent_file(), m.path())
}

/// The leading comment of the element at `path` in `file`, trimmed.
fn comment(file: &prost_reflect::FileDescriptor, path: &[i32]) -> String {
    file.file_descriptor_proto()
        .source_code_info
        .as_ref()
        .and_then(|info| info.location.iter().find(|l| l.path == path))
        .and_then(|l| l.leading_comments.clone())
        .map(|c| c.trim().replace("\n ", "\n"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_becomes_a_path_with_a_parameter_per_segment_matched() {
        assert_eq!(
            openapi_path("/v1/{name=sites/*/projects/*}:start"),
            (
                "/v1/sites/{site}/projects/{project}:start".into(),
                vec!["site".into(), "project".into()]
            )
        );
        assert_eq!(
            openapi_path("/v1/{parent=sites/*}/ideas"),
            ("/v1/sites/{site}/ideas".into(), vec!["site".into()])
        );
        assert_eq!(
            openapi_path("/v1/{name=staff/*}"),
            ("/v1/staff/{staff}".into(), vec!["staff".into()])
        );
        assert_eq!(
            openapi_path("/v1/projects/changes:watch").1,
            Vec::<String>::new()
        );
    }
}
