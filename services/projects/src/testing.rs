//! What the store tests share: a transaction on a migrated throwaway database, reading a
//! list page by page, and stored projects to hang cycles, teams, measures, scores and
//! activities on.

use qi_platform::paging::Page;
use qi_platform::{AccessContext, EmployeeNumber, Error, SiteCode, SiteScope};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

pub(crate) use qi_test_kit::day;

use crate::projects::{Fields, ProjectRef, store};

/// A pool on a fresh database with the `projects` schema migrated.
pub(crate) async fn pool() -> anyhow::Result<PgPool> {
    qi_test_kit::migrated(crate::SCHEMA, &crate::MIGRATOR).await
}

/// A transaction on a fresh migrated database, as a call has one.
pub(crate) async fn transaction() -> anyhow::Result<Transaction<'static, Postgres>> {
    qi_test_kit::transaction(crate::SCHEMA, &crate::MIGRATOR).await
}

/// The site `code`.
pub(crate) fn site(code: &str) -> SiteCode {
    SiteCode::parse(code).expect("a site code")
}

/// A trust-wide contributor whose token carries `employee` as their employee number, if any
/// (under the default claim, `employee_number`).
pub(crate) fn caller(employee: Option<&str>) -> AccessContext {
    AccessContext {
        subject: "someone".into(),
        roles: vec!["contributor".into()],
        sites: SiteScope::TrustWide,
        method: "/qi.projects.v1.ProjectService/CreateTeamMember".into(),
        employee: employee.map(|e| EmployeeNumber::parse(e).expect("an employee number")),
        employee_claim: Default::default(),
        token_expiry: None,
    }
}

/// One page of every row (the largest page there is).
pub(crate) fn everything() -> anyhow::Result<Page> {
    Ok(Page::parse(1000, "", "p")?)
}

/// The pages of a list read `size` rows at a time, each after the token of the one before,
/// until a page comes back without one.
pub(crate) async fn pages<T>(
    size: i32,
    mut list: impl AsyncFnMut(Page) -> Result<(Vec<T>, String), Error>,
) -> anyhow::Result<Vec<Vec<T>>> {
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let (rows, next) = list(Page::parse(size, &token, "p")?).await?;
        pages.push(rows);
        if next.is_empty() {
            return Ok(pages);
        }
        token = next;
    }
}

/// The uid a page of a list newest first continues after, as the handlers read it.
pub(crate) fn after_uid(page: &Page) -> Option<Uuid> {
    page.after_key(0).map(|k| k.parse().expect("a uid"))
}

/// Stores a project `id` led by `lead`, in SCOPING, with no aim (and no title: the
/// projects module's own tests fill the fields in).
pub(crate) async fn project(
    conn: &mut PgConnection,
    lead: &str,
    id: &str,
) -> anyhow::Result<ProjectRef> {
    Ok(store::insert(conn, &site(lead), id, &Fields::default(), None, None).await?)
}

/// The project `p` as stored: the counts and the latest score its children keep on it.
pub(crate) async fn stored(
    conn: &mut PgConnection,
    p: &ProjectRef,
) -> anyhow::Result<qi_proto::projects::Project> {
    Ok(store::read(conn, p.uid).await?)
}

/// The uid a child's resource name ends in (`…/teamMembers/{uid}`).
pub(crate) fn uid_of(name: &str) -> Uuid {
    name.rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("{name} does not end in a uid"))
}
