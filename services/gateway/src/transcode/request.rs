//! An HTTP request read into its RPC's request message, as AIP-127 maps it: the body (the
//! whole message for `body: "*"`, one field otherwise) in the proto3 JSON mapping, the path's
//! variables into the string fields they name, and the query string into the scalar fields
//! it names (`a.b=v`, repeated by repeating). Every bad part is refused naming its field,
//! before anything is called.

use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, Value,
};
use qi_platform::Error;

/// Reads the request message of `input` from the HTTP request's parts.
pub(crate) fn read(
    input: &MessageDescriptor,
    body_field: &str,
    body: &[u8],
    bindings: &[(String, String)],
    query: Option<&str>,
) -> Result<DynamicMessage, Error> {
    let mut message = match body_field {
        "" => DynamicMessage::new(input.clone()),
        "*" => json(input, "body", body)?,
        field => {
            let mut message = DynamicMessage::new(input.clone());
            let f = input
                .get_field_by_name(field)
                .ok_or_else(|| Error::invalid("body", format!("no field {field}")))?;
            if !body.is_empty() {
                let Kind::Message(m) = f.kind() else {
                    return Err(Error::invalid(field, "the body must be a JSON object"));
                };
                message.set_field(&f, Value::Message(json(&m, field, body)?));
            }
            message
        }
    };
    for (path, value) in bindings {
        set(&mut message, path, value)?;
    }
    if let Some(query) = query {
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            set(&mut message, &key, &value)?;
        }
    }
    Ok(message)
}

/// `bytes` as JSON of `message` (empty: the empty message); refused naming `field`.
fn json(message: &MessageDescriptor, field: &str, bytes: &[u8]) -> Result<DynamicMessage, Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(DynamicMessage::new(message.clone()));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let read = DynamicMessage::deserialize(message.clone(), &mut de)
        .and_then(|m| de.end().map(|()| m))
        .map_err(|e| Error::invalid(field, format!("not the JSON of {}: {e}", message.name())))?;
    Ok(read)
}

/// Sets the scalar field at dotted `path` to `value` read by its kind; a repeated field gains
/// one more value.
fn set(message: &mut DynamicMessage, path: &str, value: &str) -> Result<(), Error> {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let field = message
        .descriptor()
        .get_field_by_name(head)
        .or_else(|| message.descriptor().get_field_by_json_name(head))
        .ok_or_else(|| Error::invalid(path, "no such field"))?;
    match (rest, field.kind()) {
        (Some(rest), Kind::Message(_)) if !field.is_list() && !field.is_map() => {
            let Value::Message(inner) = message.get_field_mut(&field) else {
                return Err(Error::invalid(path, "not a message"));
            };
            set(inner, rest, value)
        }
        (Some(_), _) => Err(Error::invalid(path, format!("{head} has no fields"))),
        (None, _) if field.is_map() || matches!(field.kind(), Kind::Message(_)) => {
            Err(Error::invalid(
                path,
                "a message field goes in the body, or by its fields (`a.b=`)",
            ))
        }
        (None, _) => {
            let v = scalar(&field, path, value)?;
            if field.is_list() {
                let Value::List(list) = message.get_field_mut(&field) else {
                    return Err(Error::invalid(path, "not a list"));
                };
                list.push(v);
            } else {
                message.set_field(&field, v);
            }
            Ok(())
        }
    }
}

/// `text` as a value of `field`'s kind.
fn scalar(field: &FieldDescriptor, path: &str, text: &str) -> Result<Value, Error> {
    let bad = |what: &str| {
        Error::invalid(
            path,
            format!("`{}` is not {what}", qi_platform::names::clip(text)),
        )
    };
    Ok(match field.kind() {
        Kind::String => Value::String(text.to_owned()),
        Kind::Bool => Value::Bool(match text {
            "true" => true,
            "false" => false,
            _ => return Err(bad("true or false")),
        }),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Value::I32(text.parse().map_err(|_| bad("a whole number"))?)
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            Value::I64(text.parse().map_err(|_| bad("a whole number"))?)
        }
        Kind::Uint32 | Kind::Fixed32 => {
            Value::U32(text.parse().map_err(|_| bad("a whole number"))?)
        }
        Kind::Uint64 | Kind::Fixed64 => {
            Value::U64(text.parse().map_err(|_| bad("a whole number"))?)
        }
        Kind::Double => Value::F64(text.parse().map_err(|_| bad("a number"))?),
        Kind::Float => Value::F32(text.parse().map_err(|_| bad("a number"))?),
        Kind::Enum(e) => {
            let value = e
                .get_value_by_name(text)
                .or_else(|| text.parse().ok().and_then(|n| e.get_value(n)))
                .ok_or_else(|| bad(&format!("a value of {}", e.name())))?;
            Value::EnumNumber(value.number())
        }
        Kind::Bytes => return Err(Error::invalid(path, "bytes go in the body")),
        Kind::Message(_) => return Err(bad("a scalar")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> prost_reflect::DescriptorPool {
        prost_reflect::DescriptorPool::decode(qi_proto::FILE_DESCRIPTOR_SET).unwrap()
    }

    fn fields(e: Error) -> Vec<String> {
        let Error::InvalidArgument { violations } = e else {
            panic!("{e:?}");
        };
        violations.into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn the_body_the_path_and_the_query_fill_the_request() {
        let pool = pool();
        let input = pool
            .get_message_by_name("qi.projects.v1.CreateIdeaRequest")
            .unwrap();
        let m = read(
            &input,
            "idea",
            br#"{"title": "Quiet hours", "submitter": "A. Nurse"}"#,
            &[("parent".into(), "sites/BAS".into())],
            Some("requestId=6f1c2f0e-5f0a-4c39-9a57-0f4f7f2e9d11&idea_id=quiet"),
        )
        .unwrap();
        let req: qi_proto::projects::CreateIdeaRequest = m.transcode_to().unwrap();
        assert_eq!(req.parent, "sites/BAS");
        assert_eq!(req.idea_id, "quiet");
        assert_eq!(req.request_id, "6f1c2f0e-5f0a-4c39-9a57-0f4f7f2e9d11");
        assert_eq!(req.idea.unwrap().title, "Quiet hours");

        let input = pool
            .get_message_by_name("qi.projects.v1.ListProjectsRequest")
            .unwrap();
        let m = read(
            &input,
            "",
            b"",
            &[("parent".into(), "sites/-".into())],
            Some("state=PROJECT_STATE_IN_PROGRESS&pageSize=5&filter=lead_status%20%3D%20GONE"),
        )
        .unwrap();
        let req: qi_proto::projects::ListProjectsRequest = m.transcode_to().unwrap();
        assert_eq!(
            req.state,
            qi_proto::projects::ProjectState::InProgress as i32
        );
        assert_eq!(
            (req.page_size, req.filter.as_str()),
            (5, "lead_status = GONE")
        );
    }

    #[test]
    fn each_bad_part_is_refused_naming_its_field() {
        let pool = pool();
        let input = pool
            .get_message_by_name("qi.projects.v1.ListProjectsRequest")
            .unwrap();
        let refused = |query: &str| fields(read(&input, "", b"", &[], Some(query)).unwrap_err());
        assert_eq!(refused("pageSize=lots"), ["pageSize"]);
        assert_eq!(refused("state=SLEEPING"), ["state"]);
        assert_eq!(refused("colour=red"), ["colour"]);
        let input = pool
            .get_message_by_name("qi.projects.v1.CreateIdeaRequest")
            .unwrap();
        assert_eq!(
            fields(read(&input, "idea", b"{\"title\": 7}", &[], None).unwrap_err()),
            ["idea"]
        );
        assert_eq!(
            fields(read(&input, "*", b"[", &[], None).unwrap_err()),
            ["body"]
        );
        assert_eq!(
            fields(read(&input, "", b"", &[], Some("idea=x")).unwrap_err()),
            ["idea"]
        );
    }
}
