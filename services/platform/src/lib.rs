//! What every QI service shares: configuration, telemetry, the database and its migrations,
//! the private PostgreSQL, server bootstrap, the access context, resource names, paging,
//! idempotent retries, and the one error type mapped to `tonic::Status`.
#![forbid(unsafe_code)]

pub mod access;
pub mod calendar;
pub mod config;
pub mod convert;
pub mod db;
pub mod deadline;
pub mod error;
pub mod idempotency;
pub mod names;
pub mod paging;
pub mod pg;
pub mod server;
pub mod telemetry;
pub mod update_mask;
pub mod validate;
pub mod verified;

pub use access::{AccessContext, SiteCode, SiteScope};
pub use config::Config;
pub use error::{Error, Violations};

/// Runs one RPC: hands the handler the caller's access context (put there by the
/// [`access::AccessLayer`]) and the message, runs it [`deadline::within`] the call's
/// deadline, and maps its error in the one place errors map.
pub async fn call<T, R, F>(
    req: tonic::Request<T>,
    handler: impl FnOnce(AccessContext, T) -> F,
) -> Result<tonic::Response<R>, tonic::Status>
where
    F: Future<Output = Result<R, Error>>,
{
    let ctx = AccessContext::of(&req)?.clone();
    // The handler's database work is bounded by the call's deadline (`db::begin`).
    let deadline = req.extensions().get::<deadline::CallDeadline>().copied();
    deadline::within(deadline, handler(ctx, req.into_inner()))
        .await
        .map(tonic::Response::new)
        .map_err(tonic::Status::from)
}
