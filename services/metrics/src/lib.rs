//! The metrics service: metric definitions, their measurements (batch ingest with
//! health-inequality strata), annotations and rebase points, Making Data Count SPC charts
//! (stored and stateless, and drawn as SVG), run charts (the same three ways), inequality
//! breakdowns and the QMS dashboard.
//! Owns the `metrics` schema.
#![forbid(unsafe_code)]

mod annotations;
mod charts;
mod dashboard;
mod definitions;
mod dimensions;
mod feed;
mod grpc;
mod inequality;
mod measurements;
mod periods;
mod rebase_points;
mod render;
mod run_charts;
mod series;
// The chart engines live in their own library crate (`libs/spc`), shared with any component
// that reads SPC; here they keep the paths the service has always used.
use qi_spc as spc;
use qi_spc::runchart;
#[cfg(test)]
mod testing;

pub use grpc::{DEFAULT_RUN_CHART_BELOW_POINTS, MetricsApi};

/// The schema this service owns.
pub const SCHEMA: &str = "metrics";

/// This service's migrations (its migrations table is `metrics._sqlx_migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The gRPC service name, for health and reflection.
pub const SERVICE_NAME: &str = <qi_proto::metrics::metric_service_server::MetricServiceServer<
    MetricsApi,
> as tonic::server::NamedService>::NAME;

/// For the fuzz targets: decodes `body` as the request of `method` (e.g. `CreateMetric`) and
/// runs the checks it passes before the database is touched. `None` for a method whose
/// checks need the database.
#[cfg(feature = "fuzzing")]
pub fn validate_request(method: &str, body: &[u8]) -> Option<Result<(), qi_platform::Error>> {
    use qi_platform::validate::decoded;
    use qi_proto::metrics as pb;
    Some(match method {
        "CreateMetric" => decoded::<pb::CreateMetricRequest, definitions::NewMetric>(body),
        _ => return None,
    })
}
