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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrolments;
    use crate::testing::{cohort, course, site, staff, transaction};

    #[tokio::test]
    async fn a_register_keeps_to_the_enrolled_and_a_correction_replaces() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        course(&mut conn, "lean", 2).await?;
        let c = cohort(&mut conn, site("BAS"), "a", "lean", 2).await?;
        for (number, site, state) in [
            ("1", "BAS", "enrolled"),
            ("2", "SOU", "enrolled"),
            ("3", "BAS", "waitlisted"),
        ] {
            staff(&mut conn, number, site, "Ames", "Pat").await?;
            enrolments::store::insert(&mut conn, &c, number, state).await?;
        }
        let asked = ["1", "2", "3", "9"].map(String::from);
        let mut got = enrolled(&mut conn, c.uid, &asked).await?;
        got.sort();
        assert_eq!(got, ["1", "2"], "the enrolled, wherever they work now");
        let both = ["1", "2"].map(String::from);
        record(&mut conn, c.uid, 1, &both, &["attended", "absent"]).await?;
        record(&mut conn, c.uid, 2, &both, &["caught_up", "attended"]).await?;
        record(&mut conn, c.uid, 1, &["1".into()], &["absent"]).await?;
        let statuses = async |conn: &mut PgConnection, n| -> anyhow::Result<Vec<(i32, i32)>> {
            let e = enrolments::store::read_one(conn, c.uid, n).await?;
            Ok(e.attendance
                .iter()
                .map(|a| (a.session_number, a.status))
                .collect())
        };
        use qi_proto::training::AttendanceStatus as S;
        assert_eq!(
            statuses(&mut conn, "1").await?,
            [(1, S::Absent as i32), (2, S::CaughtUp as i32)]
        );
        assert_eq!(
            statuses(&mut conn, "2").await?,
            [(1, S::Absent as i32), (2, S::Attended as i32)]
        );
        Ok(())
    }
}
