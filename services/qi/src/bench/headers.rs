//! The metadata the bench's calls carry: a bearer token through the gateway, or a signed
//! access context straight to a service.

use tonic::metadata::{Ascii, MetadataValue};

/// A request with metadata attached.
pub(super) fn with_header<T>(
    message: T,
    key: &'static str,
    value: &MetadataValue<Ascii>,
) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.metadata_mut().insert(key, value.clone());
    req
}

/// The `authorization` value of a bearer token.
pub(super) fn bearer(token: &str) -> anyhow::Result<MetadataValue<Ascii>> {
    Ok(format!("Bearer {token}").parse()?)
}
