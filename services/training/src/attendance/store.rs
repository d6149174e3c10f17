//! The attendance table: its SQL.

use qi_platform::Error;
use sqlx::PgConnection;
use uuid::Uuid;

/// Of these learners, those enrolled (not waitlisted or withdrawn) in a cohort.
pub(super) async fn enrolled(
    conn: &mut PgConnection,
    cohort_uid: Uuid,
    numbers: &[String],
) -> Result<Vec<String>, Error> {
    Ok(sqlx::query_scalar!(
        "SELECT employee_number FROM enrolment
         WHERE cohort_uid = $1 AND state = 'enrolled' AND employee_number = ANY($2)",
        cohort_uid,
        numbers,
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// Records each learner's status at one session, replacing any recorded before.
pub(super) async fn record(
    conn: &mut PgConnection,
    cohort_uid: Uuid,
    session_number: i32,
    numbers: &[String],
    statuses: &[&str],
) -> Result<(), Error> {
    sqlx::query!(
        "INSERT INTO attendance (cohort_uid, session_number, employee_number, status)
         SELECT $1, $2, n, s FROM UNNEST($3::text[], $4::text[]) AS r(n, s)
         ON CONFLICT (cohort_uid, employee_number, session_number)
         DO UPDATE SET status = EXCLUDED.status, recorded_time = now()",
        cohort_uid,
        session_number,
        numbers,
        statuses as &[&str],
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}
