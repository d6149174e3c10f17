//! The one message of a unary or server-streaming call, read straight from the HTTP/2
//! body. The gateway checks the message in its gRPC frame and forwards the same bytes, so
//! nothing is decoded or re-encoded through a codec on either side of the hop (tonic's
//! server and client codecs were most of the hop's cost).

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
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
pub(crate) async fn read(body: Body, max_message: usize) -> Result<Frame, Status> {
    let collected = Limited::new(body, PREFIX + max_message)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<LengthLimitError>() {
                too_large(max_message)
            } else {
                // The caller's stream broke: what broke it is the caller's to know.
                tracing::debug!(error = %e, "a request stream broke");
                Status::from(Error::Cancelled {
                    message: "the request stream broke".into(),
                })
            }
        })?;
    parse(collected.to_bytes(), max_message)
}

/// Checks the framing of a whole body: one prefix, one uncompressed message, nothing after.
fn parse(bytes: Bytes, max_message: usize) -> Result<Frame, Status> {
    let Some((&[flag, a, b, c, d], _)) = bytes.split_first_chunk::<PREFIX>() else {
        return Err(malformed(
            "the call carries no message: a unary call sends exactly one",
        ));
    };
    match flag {
        0 => {}
        1 => {
            return Err(Error::Unimplemented {
                message: "compressed messages are not accepted: send them uncompressed".into(),
            }
            .into());
        }
        _ => return Err(malformed("malformed gRPC frame: unknown flag byte")),
    }
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
