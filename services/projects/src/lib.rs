//! The projects service: improvement work from idea to outcome. The trust's sites and
//! wards; ideas and their triage; projects with their SMART aims, teams (staff and patient
//! partners), measures, PDSA cycles, IHI progress scores, engagement activities and
//! outcomes; programmes (training-wrapped, ward programmes in waves, thematic); and the
//! portfolio summary. Owns the `projects` schema and reads no other: staff, cohorts and
//! metrics of the other services are held by their resource names.
#![forbid(unsafe_code)]

mod api;
mod common;
mod engagement;
mod ideas;
mod measures;
mod pdsa;
mod portfolio;
mod programmes;
mod projects;
mod scores;
mod sites;
mod team;
mod wards;
mod waves;

pub use api::ProjectsApi;

/// The schema this service owns.
pub const SCHEMA: &str = "projects";

/// This service's migrations (its migrations table is `projects._sqlx_migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The gRPC service name, for health and reflection.
pub const SERVICE_NAME: &str = <qi_proto::projects::project_service_server::ProjectServiceServer<
    ProjectsApi,
> as tonic::server::NamedService>::NAME;
