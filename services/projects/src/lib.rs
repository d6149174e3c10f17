//! The projects service: improvement work from idea to outcome. The trust's sites and
//! wards; ideas and their triage; projects with their SMART aims, teams (staff and patient
//! partners), measures, PDSA cycles, IHI progress scores, engagement activities and
//! outcomes; programmes (training-wrapped, ward programmes in waves, thematic); and the
//! portfolio summary. Owns the `projects` schema and reads no other: staff, cohorts and
//! metrics of the other services are held by their resource names.
#![forbid(unsafe_code)]

mod driver_diagrams;
mod engagement;
mod enrolments;
mod feed;
mod foreign;
mod grpc;
mod ideas;
mod measures;
#[cfg(test)]
mod migration_tests;
mod pdsa;
pub mod people;
mod portfolio;
mod programmes;
mod projects;
mod scores;
mod sites;
mod stored;
mod team;
#[cfg(test)]
mod testing;
mod wards;
mod waves;

pub use grpc::ProjectsApi;

/// The portfolio summary's two statements (ideas, then projects), exactly as the service
/// runs them: the bench's raw-SQL peer runs them too.
pub use portfolio::store::{
    IDEAS_SQL as PORTFOLIO_IDEAS_SQL, PROJECTS_SQL as PORTFOLIO_PROJECTS_SQL,
};

/// The schema this service owns.
pub const SCHEMA: &str = "projects";

/// This service's migrations (its migrations table is `projects._sqlx_migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The gRPC service name, for health and reflection.
pub const SERVICE_NAME: &str = <qi_proto::projects::project_service_server::ProjectServiceServer<
    ProjectsApi,
> as tonic::server::NamedService>::NAME;

/// For the fuzz targets: decodes `body` as the request of `method` (e.g. `CreateProject`)
/// and runs the checks it passes before the database is touched. `None` for a method whose
/// checks need the database.
#[cfg(feature = "fuzzing")]
pub fn validate_request(method: &str, body: &[u8]) -> Option<Result<(), qi_platform::Error>> {
    use prost::Message as _;
    use qi_platform::{Error, SiteCode, Violations, names};
    use qi_proto::projects as pb;
    if method != "CreateProject" {
        return None;
    }
    let req = match pb::CreateProjectRequest::decode(body) {
        Ok(r) => r,
        Err(e) => return Some(Err(Error::invalid("request", e.to_string()))),
    };
    let known: Vec<SiteCode> = ["BAS", "BRM", "SOU"]
        .into_iter()
        .filter_map(|s| SiteCode::parse(s).ok())
        .collect();
    let mut v = Violations::new();
    if let (Ok(names::Owner::Site(lead)), Some(project)) =
        (names::parse_parent("parent", &req.parent), &req.project)
    {
        projects::validate(project, &lead, &known, &mut v);
    }
    Some(v.finish())
}
