//! The W3C `traceparent` of a call: the trace id the audit trail records, and a new trace
//! started for a call that arrives without one, so the gateway and the service share it.

use tonic::metadata::{MetadataMap, MetadataValue};

/// The trace id of a W3C `traceparent` header, if it is a valid one.
pub(crate) fn trace_id(header: Option<&http::HeaderValue>) -> String {
    header
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let mut parts = v.split('-');
            let (_, trace) = (parts.next()?, parts.next()?);
            (trace.len() == 32
                && trace.bytes().all(|b| b.is_ascii_hexdigit())
                && trace != "0".repeat(32))
            .then(|| trace.to_ascii_lowercase())
        })
        .unwrap_or_default()
}

/// Returns the call's trace id, starting a trace (a new `traceparent`, forwarded to the
/// service) when the caller sent none.
pub(crate) fn ensure_traceparent(metadata: &mut MetadataMap) -> String {
    let existing = trace_id(
        metadata
            .get("traceparent")
            .and_then(|v| http::HeaderValue::from_bytes(v.as_bytes()).ok())
            .as_ref(),
    );
    if !existing.is_empty() {
        return existing;
    }
    // `00-{32 hex trace id}-{16 hex span id}-01`, written in place: this runs on every
    // call that arrives without a trace.
    let mut header = *b"00-00000000000000000000000000000000-0000000000000000-01";
    hex_into(&mut header[3..35], &rand::random::<[u8; 16]>());
    hex_into(&mut header[36..52], &rand::random::<[u8; 8]>());
    let trace = String::from_utf8_lossy(&header[3..35]).into_owned();
    if let Ok(mut v) = MetadataValue::try_from(&header[..]) {
        // A value used once: sent as never-indexed, so it does not push the headers every
        // call repeats (the signed context above all) out of HTTP/2's header table.
        v.set_sensitive(true);
        metadata.insert("traceparent", v);
    }
    trace
}

/// Writes `bytes` as lower-case hex into `out` (twice as long).
fn hex_into(out: &mut [u8], bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0x0f)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_without_a_trace_gets_a_valid_traceparent() {
        let mut metadata = MetadataMap::new();
        let trace = ensure_traceparent(&mut metadata);
        let header = metadata.get("traceparent").unwrap().to_str().unwrap();
        assert_eq!(header.len(), 55);
        assert_eq!(
            trace_id(Some(&http::HeaderValue::from_str(header).unwrap())),
            trace
        );
        assert!(header.starts_with(&format!("00-{trace}-")) && header.ends_with("-01"));
        // A caller's own trace is kept.
        assert_eq!(ensure_traceparent(&mut metadata), trace);
    }
}
