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

    /// The gateway authorizes the name it reads here, so it must be the name the service
    /// decodes: over mutated encodings (bytes flipped, inserted, removed, runs repeated),
    /// whenever prost accepts the bytes, the scan read the same values.
    #[test]
    fn reads_what_the_services_decoder_reads_from_mutated_requests() {
        let cohort = |parent: &str, name: &str| pb::CreateCohortRequest {
            parent: parent.into(),
            cohort_id: "c1".into(),
            cohort: Some(pb::Cohort {
                name: name.into(),
                capacity: 12,
                ..Default::default()
            }),
            request_id: "r".into(),
        };
        let a = cohort("sites/BAS", "sites/BAS/cohorts/c1").encode_to_vec();
        let b = cohort("sites/SOU", "").encode_to_vec();
        let seeds = [a.clone(), b.clone(), [a, b].concat()];
        // xorshift64: a fixed, reproducible stream of mutations.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut accepted = 0;
        for i in 0..50_000 {
            let mut bytes = seeds[i % seeds.len()].clone();
            for _ in 0..=next() % 3 {
                let at = (next() % (bytes.len() as u64 + 1)) as usize;
                match next() % 4 {
                    0 if at < bytes.len() => bytes[at] ^= 1 << (next() % 8),
                    1 => bytes.insert(at, next() as u8),
                    2 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => {
                        let end = (at + (next() % 8) as usize).min(bytes.len());
                        let run = bytes[at..end].to_vec();
                        bytes.splice(at..at, run);
                    }
                }
            }
            let Ok(decoded) = pb::CreateCohortRequest::decode(bytes.as_slice()) else {
                continue;
            };
            accepted += 1;
            let read = |path: &[u32]| {
                find_string(&bytes, path)
                    .unwrap_or_else(|e| panic!("{e:?} on bytes prost accepts: {bytes:02x?}"))
                    .unwrap_or_default()
            };
            assert_eq!(read(&[1]), decoded.parent, "{bytes:02x?}");
            assert_eq!(
                read(&[3, 1]),
                decoded.cohort.map(|c| c.name).unwrap_or_default(),
                "{bytes:02x?}"
            );
        }
        assert!(accepted > 5_000, "too few decodable mutations: {accepted}");
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
