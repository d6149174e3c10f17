//! The metrics service: metric definitions (and, as it grows, measurements, SPC,
//! inequality breakdowns and the QMS dashboard). Owns the `metrics` schema.
#![forbid(unsafe_code)]

mod api;
mod definitions;
pub mod spc;

pub use api::MetricsApi;

/// The schema this service owns.
pub const SCHEMA: &str = "metrics";

/// This service's migrations (its migrations table is `metrics._sqlx_migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The gRPC service name, for health and reflection.
pub const SERVICE_NAME: &str = <qi_proto::metrics::metric_service_server::MetricServiceServer<
    MetricsApi,
> as tonic::server::NamedService>::NAME;
