//! What every QI service shares: configuration, telemetry, the database and its migrations,
//! the private PostgreSQL, server bootstrap, the access context, resource names, paging,
//! idempotent retries, and the one error type mapped to `tonic::Status`.
#![forbid(unsafe_code)]

pub mod access;
pub mod calendar;
pub mod changes;
pub mod codec;
pub mod config;
pub mod convert;
pub mod db;
pub mod deadline;
pub mod error;
pub mod extract;
pub mod follow;
pub mod idempotency;
pub mod names;
pub mod paging;
pub mod pg;
pub mod rpc;
pub mod server;
pub mod telemetry;
pub mod update_mask;
pub mod validate;
pub mod verified;

pub use access::{AccessContext, SiteScope};
pub use config::Config;
pub use error::{Error, Violations};
pub use qi_names::{EmployeeNumber, SiteCode};
pub use rpc::call;
