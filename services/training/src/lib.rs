//! The training service: QSIR courses and the cohorts that run them (and, as it grows,
//! enrolment, attendance, completion, staff and HR sync). Owns the `training` schema.
//!
//! `grpc` maps each RPC to its handler; each resource is a module holding its handlers,
//! domain types and rules, with its SQL and row mapping in a `store` beside them.
#![forbid(unsafe_code)]

mod attendance;
mod cohorts;
mod courses;
mod enrolments;
mod esr_mappings;
mod feed;
mod grpc;
mod register;
mod sessions;
mod staff;
mod sync;
#[cfg(test)]
mod testing;

/// The bench's raw-SQL peer of GetCohort runs this statement straight on the database, so
/// the two read a cohort with exactly the same SQL.
pub use cohorts::store::COHORT_READ_SQL;
pub use grpc::TrainingApi;

/// The schema this service owns.
pub const SCHEMA: &str = "training";

/// This service's migrations (its migrations table is `training._sqlx_migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The gRPC service name, for health and reflection.
pub const SERVICE_NAME: &str = <qi_proto::training::training_service_server::TrainingServiceServer<
    TrainingApi,
> as tonic::server::NamedService>::NAME;

/// For the fuzz targets: decodes `body` as the request of `method` (e.g. `CreateCohort`) and
/// runs the checks it passes before the database is touched. `None` for a method whose
/// checks need the database.
#[cfg(feature = "fuzzing")]
pub fn validate_request(method: &str, body: &[u8]) -> Option<Result<(), qi_platform::Error>> {
    use qi_platform::validate::decoded;
    use qi_proto::training as pb;
    Some(match method {
        "CreateCohort" => decoded::<pb::CreateCohortRequest, cohorts::NewCohort>(body),
        "PlanCohorts" => decoded::<pb::PlanCohortsRequest, cohorts::Plan>(body),
        "CreateCourse" => decoded::<pb::CreateCourseRequest, courses::NewCourse>(body),
        _ => return None,
    })
}
