//! Reads one string field out of an encoded protobuf message without decoding the rest, so
//! the gateway can authorize a large request (a bulk ingest) at the cost of a scan.
//!
//! Protobuf semantics are kept: for a repeated occurrence of a singular field the last one
//! wins, and occurrences of an embedded message merge — so the value found is the one the
//! service will see.

use bytes::Buf;
use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};

/// Why a field could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WireError {
    /// The bytes are not a protobuf message.
    Malformed,
    /// The field holds bytes that are not UTF-8.
    NotUtf8,
}

/// The string at `path` (field numbers, outermost first), or `None` when absent.
pub(crate) fn find_string(mut buf: &[u8], path: &[u32]) -> Result<Option<String>, WireError> {
    let Some((&first, rest)) = path.split_first() else {
        return Ok(None);
    };
    let mut found = None;
    while buf.has_remaining() {
        let (tag, wire_type) = decode_key(&mut buf).map_err(|_| WireError::Malformed)?;
        if tag == first && wire_type == WireType::LengthDelimited {
            let len = decode_varint(&mut buf).map_err(|_| WireError::Malformed)? as usize;
            if len > buf.remaining() {
                return Err(WireError::Malformed);
            }
            let (value, tail) = buf.split_at(len);
            buf = tail;
            if rest.is_empty() {
                let s = std::str::from_utf8(value).map_err(|_| WireError::NotUtf8)?;
                found = Some(s.to_owned());
            } else if let Some(inner) = find_string(value, rest)? {
                found = Some(inner);
            }
        } else {
            skip_field(wire_type, tag, &mut buf, DecodeContext::default())
                .map_err(|_| WireError::Malformed)?;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use qi_proto::training as pb;

    #[test]
    fn finds_top_level_and_nested_strings() {
        let req = pb::CreateCohortRequest {
            parent: "sites/BAS".into(),
            cohort_id: "x".into(),
            cohort: Some(pb::Cohort {
                name: "sites/BAS/cohorts/x".into(),
                capacity: 3,
                ..Default::default()
            }),
            request_id: String::new(),
        }
        .encode_to_vec();
        assert_eq!(
            find_string(&req, &[1]).unwrap().as_deref(),
            Some("sites/BAS")
        );
        assert_eq!(
            find_string(&req, &[3, 1]).unwrap().as_deref(),
            Some("sites/BAS/cohorts/x")
        );
        assert_eq!(find_string(&req, &[4]).unwrap(), None);
    }

    #[test]
    fn the_last_occurrence_wins_as_the_service_will_decode_it() {
        let a = pb::GetCohortRequest {
            name: "sites/BAS/cohorts/x".into(),
        }
        .encode_to_vec();
        let b = pb::GetCohortRequest {
            name: "sites/SOU/cohorts/x".into(),
        }
        .encode_to_vec();
        let both = [a, b].concat();
        let decoded = pb::GetCohortRequest::decode(both.as_slice()).unwrap();
        assert_eq!(find_string(&both, &[1]).unwrap().unwrap(), decoded.name);
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        assert_eq!(find_string(&[0x0a, 0xff], &[1]), Err(WireError::Malformed));
        assert_eq!(
            find_string(&[0x0a, 0x01, 0xff], &[1]),
            Err(WireError::NotUtf8)
        );
        assert_eq!(find_string(&[0xff; 12], &[1]), Err(WireError::Malformed));
    }
}
