//! The read model (issue 30): the questions that span services (which of a cohort's
//! practitioners went on to lead a project, and did its outcome move?) are answered from
//! here, never by one service reading another's tables.
//!
//! It is fed only by the services' change feeds ([`intake`]), followed straight from each
//! service as DESIGN.md decides for internal consumers. No service imports this crate, and
//! it imports no service: it knows their contracts (`qi-proto`) and nothing else.

#![forbid(unsafe_code)]

mod coverage;
mod equity;
mod grpc;
mod impact;
pub mod intake;
mod projection;
mod readings;
pub mod rebuild;
mod risk;
mod signal;
mod wave;

pub use grpc::InsightsApi;

/// The schema this component owns.
pub const SCHEMA: &str = "insights";

/// Its migrations (its migrations table is `insights._sqlx_migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The gRPC service name, for health and reflection.
pub const SERVICE_NAME: &str = <qi_proto::insights::insights_service_server::InsightsServiceServer<
    InsightsApi,
> as tonic::server::NamedService>::NAME;
