//! The projects service: the trust's sites (and, as it grows, wards, ideas, projects,
//! programmes, PDSA cycles and co-production). Owns the `projects` schema.
#![forbid(unsafe_code)]

mod api;
mod sites;

pub use api::ProjectsApi;

/// The schema this service owns.
pub const SCHEMA: &str = "projects";

/// This service's migrations (its migrations table is `projects._sqlx_migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The gRPC service name, for health and reflection.
pub const SERVICE_NAME: &str = <qi_proto::projects::project_service_server::ProjectServiceServer<
    ProjectsApi,
> as tonic::server::NamedService>::NAME;
