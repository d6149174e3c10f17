//! A call's gRPC status as an HTTP answer: the HTTP status `google.rpc.Code` maps it to, and
//! a `google.rpc.Status` JSON body with its details (field violations, error info, …)
//! rendered from the descriptor set.

use bytes::Bytes;
use prost_reflect::{DescriptorPool, DynamicMessage};
use tonic::Code;

/// The HTTP status of a gRPC code (google/rpc/code.proto's table).
pub(crate) fn http_status(code: Code) -> http::StatusCode {
    use http::StatusCode as S;
    match code {
        Code::Ok => S::OK,
        Code::Cancelled => S::from_u16(499).unwrap_or(S::BAD_REQUEST),
        Code::Unknown | Code::Internal | Code::DataLoss => S::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => S::BAD_REQUEST,
        Code::DeadlineExceeded => S::GATEWAY_TIMEOUT,
        Code::NotFound => S::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => S::CONFLICT,
        Code::PermissionDenied => S::FORBIDDEN,
        Code::ResourceExhausted => S::TOO_MANY_REQUESTS,
        Code::Unimplemented => S::NOT_IMPLEMENTED,
        Code::Unavailable => S::SERVICE_UNAVAILABLE,
        Code::Unauthenticated => S::UNAUTHORIZED,
    }
}

/// The `google.rpc.Status` JSON of a status: its `details` (the encoded `google.rpc.Status`
/// the service sent, if any) rendered with their types, else the code and message alone.
pub(crate) fn json(pool: &DescriptorPool, status: &tonic::Status) -> Vec<u8> {
    let rendered = pool
        .get_message_by_name("google.rpc.Status")
        .filter(|_| !status.details().is_empty())
        .and_then(|d| DynamicMessage::decode(d, Bytes::copy_from_slice(status.details())).ok())
        .and_then(|m| super::to_json(&m).ok());
    rendered.unwrap_or_else(|| {
        serde_json::to_vec(&serde_json::json!({
            "code": status.code() as i32,
            "message": status.message(),
        }))
        .unwrap_or_default()
    })
}

/// The HTTP answer of a failed call.
pub(crate) fn response(
    pool: &DescriptorPool,
    status: &tonic::Status,
) -> http::Response<tonic::body::Body> {
    let mut out = http::Response::new(tonic::body::Body::new(http_body_util::Full::new(
        Bytes::from(json(pool, status)),
    )));
    *out.status_mut() = http_status(status.code());
    out.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_as_google_rpc_code_says_and_details_are_rendered() {
        assert_eq!(http_status(Code::InvalidArgument), 400);
        assert_eq!(http_status(Code::Unauthenticated), 401);
        assert_eq!(http_status(Code::PermissionDenied), 403);
        assert_eq!(http_status(Code::NotFound), 404);
        assert_eq!(http_status(Code::AlreadyExists), 409);
        assert_eq!(http_status(Code::ResourceExhausted), 429);
        assert_eq!(http_status(Code::Unavailable), 503);
        let pool = DescriptorPool::decode(qi_proto::FILE_DESCRIPTOR_SET).unwrap();
        let status: tonic::Status = qi_platform::Error::invalid("idea.title", "is required").into();
        let body: serde_json::Value = serde_json::from_slice(&json(&pool, &status)).unwrap();
        assert_eq!(body["code"], 3);
        let details = body["details"].as_array().unwrap();
        let bad = details
            .iter()
            .find(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
            .unwrap();
        assert_eq!(bad["fieldViolations"][0]["field"], "idea.title");
        let plain: serde_json::Value =
            serde_json::from_slice(&json(&pool, &tonic::Status::not_found("gone"))).unwrap();
        assert_eq!(plain, serde_json::json!({"code": 5, "message": "gone"}));
    }
}
