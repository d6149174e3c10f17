//! The one message of a unary or server-streaming call, read straight from the HTTP/2
//! body. The gateway checks the message in its gRPC frame and forwards the same bytes, so
//! nothing is decoded or re-encoded through a codec on either side of the hop (tonic's
//! server and client codecs were most of the hop's cost).

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use qi_platform::Error;
use tonic::Status;
use tonic::body::Body;

/// gRPC's length prefix: one compression-flag byte, then the length in four bytes.
const PREFIX: usize = 5;

/// A request body holding exactly one uncompressed message.
#[derive(Debug)]
pub(crate) struct Frame(Bytes);

impl Frame {
    /// The encoded message, without its prefix.
    pub(crate) fn message(&self) -> &[u8] {
        &self.0[PREFIX..]
    }

    /// The frame as a body to send on, byte for byte as it came.
    pub(crate) fn into_body(self) -> Body {
        Body::new(Full::new(self.0))
    }
}

/// Reads the body of a call that carries one message, refusing more than `max_message`
/// bytes of it without reading further (`RESOURCE_EXHAUSTED`, as gRPC servers answer).
///
/// The prefix is judged as soon as it arrives: a message declared over the limit, or
/// compressed, is refused before its bytes are read, and a large one is gathered into one
/// buffer of its declared size (gathering the chunks and then joining them held it twice).
/// A body of one chunk, the usual small call, is used as it came, without a copy.
pub(crate) async fn read(mut body: Body, max_message: usize) -> Result<Frame, Status> {
    let limit = PREFIX + max_message;
    let mut first: Option<Bytes> = None;
    let mut gathered = BytesMut::new();
    while let Some(frame) = body.frame().await {
        // The body's errors are the statuses the transport gave the broken stream.
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        let held = first.as_ref().map_or(gathered.len(), Bytes::len);
        if held + data.len() > limit {
            return Err(too_large(max_message));
        }
        if first.is_none() && gathered.is_empty() {
            declared_len(&data, max_message)?;
            first = Some(data);
            continue;
        }
        if let Some(pending) = first.take() {
            let declared = declared_len(&pending, max_message)?.unwrap_or(0);
            gathered.reserve((PREFIX + declared).max(pending.len() + data.len()));
            gathered.extend_from_slice(&pending);
        }
        gathered.extend_from_slice(&data);
        if let Some(len) = declared_len(&gathered, max_message)? {
            gathered.reserve((PREFIX + len).saturating_sub(gathered.len()));
        }
    }
    parse(first.unwrap_or_else(|| gathered.freeze()), max_message)
}

/// The message length the prefix declares, once the prefix has arrived; refuses a
/// compressed or oversized message at once.
fn declared_len(bytes: &[u8], max_message: usize) -> Result<Option<usize>, Status> {
    let Some(&[flag, a, b, c, d]) = bytes.first_chunk::<PREFIX>() else {
        return Ok(None);
    };
    check_flag(flag)?;
    let len = u32::from_be_bytes([a, b, c, d]) as usize;
    if len > max_message {
        return Err(too_large(max_message));
    }
    Ok(Some(len))
}

fn check_flag(flag: u8) -> Result<(), Status> {
    match flag {
        0 => Ok(()),
        1 => Err(Error::Unimplemented {
            message: "compressed messages are not accepted: send them uncompressed".into(),
        }
        .into()),
        _ => Err(malformed("malformed gRPC frame: unknown flag byte")),
    }
}

/// Checks the framing of a whole body: one prefix, one uncompressed message, nothing after.
fn parse(bytes: Bytes, max_message: usize) -> Result<Frame, Status> {
    let Some((&[flag, a, b, c, d], _)) = bytes.split_first_chunk::<PREFIX>() else {
        return Err(malformed(
            "the call carries no message: a unary call sends exactly one",
        ));
    };
    check_flag(flag)?;
    let len = u32::from_be_bytes([a, b, c, d]) as usize;
    if len > max_message {
        return Err(too_large(max_message));
    }
    match (bytes.len() - PREFIX).cmp(&len) {
        std::cmp::Ordering::Equal => Ok(Frame(bytes)),
        std::cmp::Ordering::Less => Err(malformed(
            "malformed gRPC frame: the stream ended inside the message",
        )),
        std::cmp::Ordering::Greater => Err(malformed(
            "a unary call sends exactly one message; this one sent more",
        )),
    }
}

fn malformed(message: &str) -> Status {
    Error::Malformed {
        message: message.into(),
    }
    .into()
}

fn too_large(max_message: usize) -> Status {
    Error::ResourceExhausted {
        message: format!("the message is larger than the {max_message}-byte limit"),
        retry_after: None,
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn framed(flag: u8, message: &[u8]) -> Vec<u8> {
        let mut out = vec![flag];
        out.extend_from_slice(&(message.len() as u32).to_be_bytes());
        out.extend_from_slice(message);
        out
    }

    #[test]
    fn one_message_is_read_and_forwarded_byte_for_byte() {
        let bytes = framed(0, b"\x0a\x03abc");
        let frame = parse(Bytes::from(bytes.clone()), 100).unwrap();
        assert_eq!(frame.message(), b"\x0a\x03abc");
        assert_eq!(frame.0, bytes);
        assert_eq!(
            parse(Bytes::from(framed(0, b"")), 100).unwrap().message(),
            b""
        );
    }

    #[test]
    fn bad_framing_is_refused_with_the_right_code() {
        let code = |bytes: Vec<u8>| parse(Bytes::from(bytes), 10).unwrap_err().code();
        assert_eq!(code(vec![]), Code::Internal);
        assert_eq!(code(vec![0, 0, 0]), Code::Internal);
        assert_eq!(code(framed(1, b"abc")), Code::Unimplemented);
        assert_eq!(code(framed(7, b"abc")), Code::Internal);
        assert_eq!(code(framed(0, &[0; 11])), Code::ResourceExhausted);
        let mut short = framed(0, b"abcd");
        short.pop();
        assert_eq!(code(short), Code::Internal);
        let two = [framed(0, b"a"), framed(0, b"b")].concat();
        assert_eq!(code(two), Code::Internal);
    }

    /// A body in many chunks, as a large message arrives.
    fn chunked(bytes: Vec<u8>, size: usize) -> Body {
        let chunks: Vec<Result<http_body::Frame<Bytes>, Status>> = bytes
            .chunks(size)
            .map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        Body::new(http_body_util::StreamBody::new(tokio_stream::iter(chunks)))
    }

    #[tokio::test]
    async fn a_message_in_many_chunks_is_gathered_into_one_buffer_of_its_size() {
        let message: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        for size in [1, 3, 5, 7, 16_384] {
            let frame = read(chunked(framed(0, &message), size), 200_000)
                .await
                .unwrap();
            assert_eq!(frame.message(), message.as_slice());
        }
    }

    #[tokio::test]
    async fn an_oversized_or_compressed_message_is_refused_from_its_prefix() {
        // The body would never end: only the prefix can have been judged.
        let endless = |prefix: Vec<u8>| {
            let head =
                tokio_stream::iter([Ok::<_, Status>(http_body::Frame::data(Bytes::from(prefix)))]);
            let tail = tokio_stream::pending();
            Body::new(http_body_util::StreamBody::new(
                tokio_stream::StreamExt::chain(head, tail),
            ))
        };
        let mut big = vec![0];
        big.extend_from_slice(&(1_000_000u32).to_be_bytes());
        let status = read(endless(big), 1_000).await.unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted);
        let mut compressed = vec![1];
        compressed.extend_from_slice(&(10u32).to_be_bytes());
        let status = read(endless(compressed), 1_000).await.unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_as_resource_exhausted() {
        let body = Body::new(Full::new(Bytes::from(framed(0, &[0; 64]))));
        assert_eq!(
            read(body, 32).await.unwrap_err().code(),
            Code::ResourceExhausted
        );
        let body = Body::new(Full::new(Bytes::from(framed(0, &[0; 32]))));
        assert_eq!(read(body, 32).await.unwrap().message().len(), 32);
    }
}
