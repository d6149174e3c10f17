//! What the store tests share: a transaction on a migrated throwaway database, and stored
//! courses, cohorts and staff to enrol, register and sync.

use qi_platform::names::Owner;
use qi_platform::paging::Page;
use qi_proto::training as pb;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

pub(crate) use qi_test_kit::{day, site};

use crate::cohorts::{CohortRef, NewCohort};
use crate::courses::NewCourse;

/// A pool on a fresh database with the `training` schema migrated.
pub(crate) async fn pool() -> anyhow::Result<PgPool> {
    qi_test_kit::migrated(crate::SCHEMA, &crate::MIGRATOR).await
}

/// A transaction on a fresh migrated database, as a call has one.
pub(crate) async fn transaction() -> anyhow::Result<Transaction<'static, Postgres>> {
    qi_test_kit::transaction(crate::SCHEMA, &crate::MIGRATOR).await
}

/// A page of `size` after `token`.
pub(crate) fn page(size: i32, token: &str) -> anyhow::Result<Page> {
    Ok(Page::parse(size, token, "p")?)
}

/// A course `id` (code `id` in capitals) of `sessions` sessions, every one required.
pub(crate) fn new_course(id: &str, sessions: i32) -> NewCourse {
    NewCourse {
        id: id.to_owned(),
        code: id.to_uppercase(),
        display_name: format!("Course {id}"),
        session_count: sessions,
        required_sessions: 0,
        validity_months: 0,
        esr_competence_id: String::new(),
        esr_competence_name: String::new(),
        request_id: String::new(),
    }
}

/// Stores [`new_course`].
pub(crate) async fn course(
    conn: &mut PgConnection,
    id: &str,
    sessions: i32,
) -> anyhow::Result<pb::Course> {
    Ok(crate::courses::store::insert(conn, &new_course(id, sessions)).await?)
}

/// A cohort `id` of `owner` on the course `course_id`, starting on `start`.
pub(crate) fn new_cohort(owner: Owner, id: &str, course_id: &str, start: &str) -> NewCohort {
    NewCohort {
        owner,
        id: id.to_owned(),
        course_id: course_id.to_owned(),
        display_name: format!("Cohort {id}"),
        start_date: day(start),
        capacity: 2,
        facilitators: Vec::new(),
        request_id: String::new(),
    }
}

/// Stores a cohort of [`new_cohort`] with `capacity` places, and returns its reference.
pub(crate) async fn cohort(
    conn: &mut PgConnection,
    owner: Owner,
    id: &str,
    course_id: &str,
    capacity: i32,
) -> anyhow::Result<CohortRef> {
    let mut new = new_cohort(owner.clone(), id, course_id, "2026-03-02");
    new.capacity = capacity;
    crate::cohorts::store::insert(conn, &new).await?;
    crate::cohorts::store::locate(conn, &owner, id, false)
        .await?
        .ok_or_else(|| anyhow::anyhow!("cohort {id} was not stored"))
}

/// Stores an active person at `site` (the HR sync's work in the service).
pub(crate) async fn staff(
    conn: &mut PgConnection,
    number: &str,
    site: &str,
    surname: &str,
    forename: &str,
) -> anyhow::Result<()> {
    sqlx::query!(
        "INSERT INTO staff (employee_number, site, assignment_number, forename, surname, active,
                            data_hash, source_update_time, site_since)
         VALUES ($1, $2, $1 || '-1', $3, $4, true, 0, '2026-01-01T00:00:00Z', '2026-01-01')",
        number,
        site,
        forename,
        surname,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}
