//! The session table: its SQL and row mapping.

use chrono::NaiveDate;
use qi_platform::Error;
use qi_platform::convert::{date, etag};
use qi_platform::names::Owner;
use qi_proto::training as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use super::COLLECTION;
use crate::cohorts::{self, CohortRef};

/// A session as stored.
pub(crate) struct SessionRow {
    pub(crate) number: i32,
    pub(crate) date: NaiveDate,
    pub(crate) register_taken: bool,
    pub(crate) revision: i64,
}

/// The session under the cohort named `cohort`.
pub(crate) fn to_proto(cohort: &str, r: SessionRow) -> pb::Session {
    pb::Session {
        name: format!("{cohort}/{COLLECTION}/{}", r.number),
        number: r.number,
        date: Some(date(r.date)),
        register_taken: r.register_taken,
        etag: etag(r.revision),
    }
}

/// Generates a new cohort's `count` sessions, one week apart from its start date.
pub(crate) async fn schedule(
    conn: &mut PgConnection,
    cohort_uid: Uuid,
    start_date: NaiveDate,
    count: i32,
) -> Result<(), Error> {
    sqlx::query!(
        "INSERT INTO session (cohort_uid, number, date)
         SELECT $1, n, $2::date + (n - 1) * 7 FROM generate_series(1, $3) AS n",
        cohort_uid,
        start_date,
        count,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A cohort's sessions, in order.
pub(crate) async fn list(
    conn: &mut PgConnection,
    cohort: &CohortRef,
) -> Result<Vec<pb::Session>, Error> {
    let rows = sqlx::query_as!(
        SessionRow,
        "SELECT number, date, register_taken, revision FROM session WHERE cohort_uid = $1 ORDER BY number",
        cohort.uid,
    )
    .fetch_all(&mut *conn)
    .await?;
    let name = cohort.name()?;
    Ok(rows.into_iter().map(|r| to_proto(&name, r)).collect())
}

/// The sessions of the cohorts `ids` of `owner`, by cohort then number: one statement
/// however many cohorts (a plan's).
pub(crate) async fn of_cohorts(
    conn: &mut PgConnection,
    owner: &Owner,
    ids: &[String],
) -> Result<Vec<pb::Session>, Error> {
    let rows = sqlx::query!(
        "SELECT c.id AS cohort_id, s.number, s.date, s.register_taken, s.revision
         FROM session s JOIN cohort c ON c.uid = s.cohort_uid
         WHERE coalesce(c.site, '') = coalesce($1, '') AND c.id = ANY($2)
         ORDER BY c.start_date, c.id, s.number",
        owner.site_column(),
        ids,
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let cohort = owner.child(cohorts::COLLECTION, &r.cohort_id);
            let row = SessionRow {
                number: r.number,
                date: r.date,
                register_taken: r.register_taken,
                revision: r.revision,
            };
            to_proto(&cohort, row)
        })
        .collect())
}

/// Reads one session, locking its row for the transaction.
pub(crate) async fn lock(
    conn: &mut PgConnection,
    cohort_uid: Uuid,
    number: i32,
) -> Result<Option<SessionRow>, Error> {
    Ok(sqlx::query_as!(
        SessionRow,
        "SELECT number, date, register_taken, revision FROM session
         WHERE cohort_uid = $1 AND number = $2 FOR UPDATE",
        cohort_uid,
        number,
    )
    .fetch_optional(&mut *conn)
    .await?)
}

/// Moves a session to `date`; the session as it now is.
pub(crate) async fn set_date(
    conn: &mut PgConnection,
    cohort_uid: Uuid,
    number: i32,
    date: Option<NaiveDate>,
) -> Result<SessionRow, Error> {
    Ok(sqlx::query_as!(
        SessionRow,
        "UPDATE session SET date = $3 WHERE cohort_uid = $1 AND number = $2
         RETURNING number, date, register_taken, revision",
        cohort_uid,
        number,
        date,
    )
    .fetch_one(&mut *conn)
    .await?)
}

/// A session's date, if it exists.
pub(crate) async fn date_of(
    conn: &mut PgConnection,
    cohort_uid: Uuid,
    number: i32,
) -> Result<Option<NaiveDate>, Error> {
    Ok(sqlx::query_scalar!(
        "SELECT date FROM session WHERE cohort_uid = $1 AND number = $2",
        cohort_uid,
        number,
    )
    .fetch_optional(&mut *conn)
    .await?)
}

/// Marks a session's register as taken, so it can no longer move; the session as it now
/// is, if this changed it (`None`: its register was taken before).
pub(crate) async fn mark_register_taken(
    conn: &mut PgConnection,
    cohort_uid: Uuid,
    number: i32,
) -> Result<Option<SessionRow>, Error> {
    Ok(sqlx::query_as!(
        SessionRow,
        "UPDATE session SET register_taken = true
         WHERE cohort_uid = $1 AND number = $2 AND NOT register_taken
         RETURNING number, date, register_taken, revision",
        cohort_uid,
        number,
    )
    .fetch_optional(&mut *conn)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{cohort, course, day, site, transaction};

    #[tokio::test]
    async fn a_cohorts_sessions_run_weekly_from_its_start() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        course(&mut conn, "lean", 3).await?;
        // The cohort's insert schedules its course's sessions from 2026-03-02.
        let c = cohort(&mut conn, site("BAS"), "a", "lean", 2).await?;
        // Another cohort's sessions are not this one's.
        cohort(&mut conn, site("BAS"), "b", "lean", 2).await?;
        let sessions = list(&mut conn, &c).await?;
        let got: Vec<_> = sessions
            .iter()
            .map(|s| (s.name.as_str(), s.date, s.register_taken))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "sites/BAS/cohorts/a/sessions/1",
                    Some(date(day("2026-03-02"))),
                    false
                ),
                (
                    "sites/BAS/cohorts/a/sessions/2",
                    Some(date(day("2026-03-09"))),
                    false
                ),
                (
                    "sites/BAS/cohorts/a/sessions/3",
                    Some(date(day("2026-03-16"))),
                    false
                ),
            ]
        );
        assert_eq!(date_of(&mut conn, c.uid, 3).await?, Some(day("2026-03-16")));
        assert_eq!(date_of(&mut conn, c.uid, 4).await?, None);
        assert!(lock(&mut conn, c.uid, 4).await?.is_none());
        Ok(())
    }

    #[tokio::test]
    async fn a_move_counts_a_revision_and_a_register_is_taken_once() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        course(&mut conn, "lean", 2).await?;
        let c = cohort(&mut conn, site("BAS"), "a", "lean", 2).await?;
        let moved = set_date(&mut conn, c.uid, 2, Some(day("2026-03-11"))).await?;
        assert_eq!(
            (moved.number, moved.date, moved.revision),
            (2, day("2026-03-11"), 2)
        );
        let marked = mark_register_taken(&mut conn, c.uid, 2).await?;
        assert_eq!(
            marked.map(|r| (r.register_taken, r.revision)),
            Some((true, 3))
        );
        assert!(mark_register_taken(&mut conn, c.uid, 2).await?.is_none());
        let taken = lock(&mut conn, c.uid, 2).await?.expect("session 2");
        // The second mark matched nothing: the revision moved once.
        assert_eq!((taken.register_taken, taken.revision), (true, 3));
        let first = lock(&mut conn, c.uid, 1).await?.expect("session 1");
        assert_eq!((first.register_taken, first.revision), (false, 1));
        Ok(())
    }
}
