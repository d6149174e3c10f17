//! The enrolment table: its SQL (the roster, the waitlist) and row mapping.

use chrono::{DateTime, Utc};
use qi_filter::Range;
use qi_platform::Error;
use qi_platform::convert::{date, timestamp};
use qi_platform::extract::{self, Order};
use qi_platform::names::Owner;
use qi_platform::names::OwnerAccess as _;
use qi_platform::paging::Page;
use qi_proto::training as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use super::COLLECTION;
use crate::cohorts::CohortRef;
use crate::{cohorts, staff};

struct EnrolmentRow {
    cohort_uid: Uuid,
    site: Option<String>,
    cohort_id: String,
    employee_number: String,
    forename: String,
    surname: String,
    state: String,
    waitlist_position: Option<i64>,
    completion_date: Option<chrono::NaiveDate>,
    create_time: chrono::DateTime<chrono::Utc>,
    update_time: chrono::DateTime<chrono::Utc>,
    attendance: Vec<String>,
    /// Where the learner works now (whose callers read their record).
    learner_site: String,
    /// Where the roster puts the enrolment: 0 enrolled, 1 waitlisted, 2 withdrawn.
    rank: i32,
    /// The order within its rank: the waitlist's, else by name.
    sort_key: String,
}

impl TryFrom<EnrolmentRow> for pb::Enrolment {
    type Error = Error;
    fn try_from(r: EnrolmentRow) -> Result<Self, Error> {
        let state = match r.state.as_str() {
            "enrolled" => pb::EnrolmentState::Enrolled,
            "waitlisted" => pb::EnrolmentState::Waitlisted,
            "withdrawn" => pb::EnrolmentState::Withdrawn,
            other => {
                return Err(Error::Internal(anyhow::anyhow!(
                    "stored enrolment state {other}"
                )));
            }
        };
        // Attendance travels as `number:status` pairs, aggregated in SQL.
        let attendance = r
            .attendance
            .iter()
            .filter_map(|a| {
                let (n, s) = a.split_once(':')?;
                let status = match s {
                    "attended" => pb::AttendanceStatus::Attended,
                    "caught_up" => pb::AttendanceStatus::CaughtUp,
                    _ => pb::AttendanceStatus::Absent,
                };
                Some(pb::Attendance {
                    session_number: n.parse().ok()?,
                    status: status as i32,
                })
            })
            .collect();
        let cohort = Owner::from_column(r.site)?.child(cohorts::COLLECTION, &r.cohort_id);
        Ok(pb::Enrolment {
            name: format!("{cohort}/{COLLECTION}/{}", r.employee_number),
            staff: staff::name_of(&r.employee_number),
            staff_display_name: format!("{} {}", r.forename, r.surname),
            state: state as i32,
            waitlist_position: r
                .waitlist_position
                .and_then(|p| i32::try_from(p).ok())
                .unwrap_or(0),
            attendance,
            completion_date: r.completion_date.map(date),
            create_time: Some(timestamp(r.create_time)),
            update_time: Some(timestamp(r.update_time)),
        })
    }
}

/// `query_as!` into [`EnrolmentRow`] of the roster (enrolments with learner, waitlist
/// position, attendance and completion) then `$tail`: the columns are written once, and every
/// statement is still checked at build time.
macro_rules! roster_rows {
    ($tail:literal, $($arg:expr),+ $(,)?) => {
        sqlx::query_as!(
            EnrolmentRow,
            r#"SELECT e.cohort_uid, c.site, c.id AS cohort_id, e.employee_number,
                      s.forename, s.surname, e.state,
                      CASE WHEN e.state = 'waitlisted' THEN
                          (SELECT count(*) FROM enrolment w WHERE w.cohort_uid = e.cohort_uid
                             AND w.state = 'waitlisted' AND w.waitlist_seq <= e.waitlist_seq)
                      END AS waitlist_position,
                      (SELECT k.completion_date FROM completion k WHERE k.cohort_uid = e.cohort_uid
                         AND k.employee_number = e.employee_number AND NOT k.revoked) AS completion_date,
                      e.create_time, e.update_time,
                      coalesce((SELECT array_agg(a.session_number || ':' || a.status
                                                 ORDER BY a.session_number)
                                FROM attendance a WHERE a.cohort_uid = e.cohort_uid
                                  AND a.employee_number = e.employee_number), '{}') AS "attendance!",
                      s.site AS learner_site,
                      o.rank AS "rank!", o.sort_key AS "sort_key!"
               FROM enrolment e
               JOIN cohort c ON c.uid = e.cohort_uid
               JOIN staff s ON s.employee_number = e.employee_number
               CROSS JOIN LATERAL (SELECT
                   CASE e.state WHEN 'enrolled' THEN 0 WHEN 'waitlisted' THEN 1 ELSE 2 END AS rank,
                   CASE WHEN e.state = 'waitlisted' THEN lpad(e.waitlist_seq::text, 20, '0')
                        ELSE lower(s.surname || ' ' || s.forename) END AS sort_key) o "#
                + $tail,
            $($arg),+
        )
    };
}

/// Reads one enrolment of a cohort.
pub(crate) async fn read_one(
    conn: &mut PgConnection,
    cohort_uid: Uuid,
    number: &str,
) -> Result<pb::Enrolment, Error> {
    let row = roster_rows!(
        "WHERE e.cohort_uid = $1 AND e.employee_number = $2",
        cohort_uid,
        number,
    )
    .fetch_one(&mut *conn)
    .await?;
    row.try_into()
}

/// An enrolment with its learner's current site, which the change feed scopes it by.
fn located(r: EnrolmentRow) -> Result<(String, pb::Enrolment), Error> {
    let site = r.learner_site.clone();
    Ok((site, r.try_into()?))
}

/// These learners' enrolments in a cohort, by employee number, each with the learner's
/// current site: one statement however many.
pub(crate) async fn read_located(
    conn: &mut PgConnection,
    cohort_uid: Uuid,
    numbers: &[String],
) -> Result<Vec<(String, pb::Enrolment)>, Error> {
    let rows = roster_rows!(
        "WHERE e.cohort_uid = $1 AND e.employee_number = ANY($2) ORDER BY e.employee_number",
        cohort_uid,
        numbers,
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(located).collect()
}

/// A cohort's waitlist, in order, each with the learner's current site.
pub(crate) async fn waitlist_located(
    conn: &mut PgConnection,
    cohort_uid: Uuid,
) -> Result<Vec<(String, pb::Enrolment)>, Error> {
    let rows = roster_rows!(
        "WHERE e.cohort_uid = $1 AND e.state = 'waitlisted' ORDER BY e.waitlist_seq",
        cohort_uid,
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(located).collect()
}

/// The unfinished cohort of a course, other than `cohort_uid`, a learner is already on
/// (enrolled or waitlisted), by name.
pub(crate) async fn elsewhere(
    conn: &mut PgConnection,
    number: &str,
    course_id: &str,
    cohort_uid: Uuid,
) -> Result<Option<String>, Error> {
    Ok(sqlx::query_scalar!(
        r#"SELECT coalesce('sites/' || c.site, 'trust') || '/cohorts/' || c.id AS "name!"
           FROM enrolment e JOIN cohort c ON c.uid = e.cohort_uid
           WHERE e.employee_number = $1 AND e.course_id = $2 AND e.cohort_uid <> $3
             AND e.state IN ('enrolled', 'waitlisted')
             AND c.state IN ('planned', 'open', 'running')
           LIMIT 1"#,
        number,
        course_id,
        cohort_uid,
    )
    .fetch_optional(&mut *conn)
    .await?)
}

/// How many learners hold a place in a cohort.
pub(crate) async fn enrolled_count(
    conn: &mut PgConnection,
    cohort_uid: Uuid,
) -> Result<i64, Error> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM enrolment WHERE cohort_uid = $1 AND state = 'enrolled'"#,
        cohort_uid,
    )
    .fetch_one(&mut *conn)
    .await?)
}

/// Puts a learner on a cohort in `state` (`enrolled` or `waitlisted`, at the waitlist's
/// end). A withdrawn learner may come back; anyone else on the roster is already there, and
/// then nothing is written: returns whether a row was.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    cohort: &CohortRef,
    number: &str,
    state: &str,
) -> Result<bool, Error> {
    let written = sqlx::query!(
        "INSERT INTO enrolment (cohort_uid, employee_number, course_id, state, waitlist_seq)
         VALUES ($1, $2, $3, $4, CASE WHEN $4 = 'waitlisted' THEN nextval('waitlist_seq') END)
         ON CONFLICT (cohort_uid, employee_number) DO UPDATE
             SET state = EXCLUDED.state, waitlist_seq = EXCLUDED.waitlist_seq
             WHERE enrolment.state = 'withdrawn'",
        cohort.uid,
        number,
        cohort.course_id,
        state,
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(written > 0)
}

/// A learner's enrolment state in a cohort, if they are on its roster.
pub(crate) async fn state_of(
    conn: &mut PgConnection,
    cohort_uid: Uuid,
    number: &str,
) -> Result<Option<String>, Error> {
    Ok(sqlx::query_scalar!(
        "SELECT state FROM enrolment WHERE cohort_uid = $1 AND employee_number = $2",
        cohort_uid,
        number,
    )
    .fetch_optional(&mut *conn)
    .await?)
}

/// Marks a learner withdrawn, leaving the waitlist if they were on it.
pub(crate) async fn withdraw(
    conn: &mut PgConnection,
    cohort_uid: Uuid,
    number: &str,
) -> Result<(), Error> {
    sqlx::query!(
        "UPDATE enrolment SET state = 'withdrawn', waitlist_seq = NULL
         WHERE cohort_uid = $1 AND employee_number = $2",
        cohort_uid,
        number,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Moves waitlisted learners, in order, into free places of a locked cohort; returns who.
pub(crate) async fn fill_places(
    conn: &mut PgConnection,
    cohort_uid: Uuid,
) -> Result<Vec<String>, Error> {
    Ok(sqlx::query_scalar!(
        "WITH free AS (
             SELECT greatest(c.capacity - (SELECT count(*) FROM enrolment e
                    WHERE e.cohort_uid = c.uid AND e.state = 'enrolled'), 0) AS n
             FROM cohort c WHERE c.uid = $1
         ),
         next AS (
             SELECT employee_number FROM enrolment
             WHERE cohort_uid = $1 AND state = 'waitlisted'
             ORDER BY waitlist_seq LIMIT (SELECT n FROM free)
         )
         UPDATE enrolment e SET state = 'enrolled', waitlist_seq = NULL
         FROM next WHERE e.cohort_uid = $1 AND e.employee_number = next.employee_number
         RETURNING e.employee_number",
        cohort_uid,
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// Whose enrolments a page lists.
#[derive(Debug)]
pub(crate) enum Cohorts<'a> {
    /// One cohort's roster.
    One(&'a CohortRef),
    /// Every cohort's: the trust-wide ones (`trust`), or those of `sites` (`None`: every site).
    Every {
        trust: bool,
        sites: Option<Vec<String>>,
    },
}

/// Which enrolments a page lists, beyond whose they are.
#[derive(Debug, Default)]
pub(crate) struct Wanted {
    /// In this state (stored form).
    pub(crate) state: Option<&'static str>,
    /// Last changed in this range (a nightly extract's).
    pub(crate) updated: Range<DateTime<Utc>>,
    /// The roster's order (one cohort only), or oldest change first.
    pub(crate) order: Order,
}

/// One page of enrolments `wanted` of `cohorts`. A site's cohort is its site's whole (a
/// learner who moved since stays on it); of a trust-wide cohort, which takes every site's
/// staff, only learners now at `learner_sites` (`None`: every site). In the roster's order
/// (one cohort): enrolled by name, the waitlist in order, then withdrawals; or oldest change
/// first (along `enrolment_update_time`).
pub(crate) async fn list(
    conn: &mut PgConnection,
    cohorts: &Cohorts<'_>,
    learner_sites: Option<Vec<String>>,
    wanted: &Wanted,
    page: &Page,
) -> Result<(Vec<pb::Enrolment>, String), Error> {
    let (updated, state) = (&wanted.updated, wanted.state);
    let (one, trust, sites) = match (cohorts, wanted.order) {
        (Cohorts::One(cohort), Order::Default) => {
            let after_rank: i32 = page.parsed_key(0)?.unwrap_or(-1);
            let rows = roster_rows!(
                "WHERE e.cohort_uid = $1
                   AND (c.site IS NOT NULL OR $6::text[] IS NULL OR s.site = ANY($6))
                   AND (o.rank, o.sort_key, e.employee_number) > ($2, $3, $4)
                   AND ($7::text IS NULL OR e.state = $7)
                   AND ($8::timestamptz IS NULL OR e.update_time >= $8)
                   AND ($9::timestamptz IS NULL OR e.update_time < $9)
                 ORDER BY o.rank, o.sort_key, e.employee_number
                 LIMIT $5",
                cohort.uid,
                after_rank,
                page.after_key(1).unwrap_or(""),
                page.after_key(2).unwrap_or(""),
                page.limit(),
                learner_sites.as_deref(),
                state,
                updated.from,
                updated.before,
            )
            .fetch_all(&mut *conn)
            .await?;
            let (rows, next) = page.finish(rows, |r| {
                vec![
                    r.rank.to_string(),
                    r.sort_key.clone(),
                    r.employee_number.clone(),
                ]
            });
            return to_proto(rows, next);
        }
        (Cohorts::One(cohort), Order::UpdateTime) => {
            (Some(cohort.uid), cohort.site.is_none(), None)
        }
        (Cohorts::Every { trust, sites }, _) => (None, *trust, sites.clone()),
    };
    // The keyset is the enrolment's key (its cohort's uid and the number) and `update_time`.
    let (after_uid, after_number) = extract::after_pair::<Uuid, String>(page)?.unzip();
    let order = Order::UpdateTime;
    let rows = roster_rows!(
        "WHERE ($1::uuid IS NULL OR e.cohort_uid = $1)
           AND CASE WHEN $2 THEN c.site IS NULL AND ($3::text[] IS NULL OR s.site = ANY($3))
                    ELSE c.site IS NOT NULL AND ($4::text[] IS NULL OR c.site = ANY($4)) END
           AND ($5::text IS NULL OR e.state = $5)
           AND ($6::timestamptz IS NULL OR e.update_time >= $6)
           AND ($7::timestamptz IS NULL OR e.update_time < $7)
           AND ($8::timestamptz IS NULL
                OR (e.update_time, e.cohort_uid, e.employee_number) > ($8, $9, $10))
         ORDER BY e.update_time, e.cohort_uid, e.employee_number
         LIMIT $11",
        one,
        trust,
        learner_sites.as_deref(),
        sites.as_deref(),
        state,
        updated.from,
        updated.before,
        order.after_time(page)?,
        after_uid.unwrap_or_default(),
        after_number.unwrap_or_default(),
        page.limit(),
    )
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| {
        order.key(
            extract::pair_key(r.cohort_uid, &r.employee_number),
            r.update_time,
        )
    });
    to_proto(rows, next)
}

fn to_proto(rows: Vec<EnrolmentRow>, next: String) -> Result<(Vec<pb::Enrolment>, String), Error> {
    let enrolments = rows
        .into_iter()
        .map(TryInto::try_into)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((enrolments, next))
}

/// Every enrolment of one person, newest cohort first.
pub(crate) async fn of_staff(
    conn: &mut PgConnection,
    number: &str,
) -> Result<Vec<pb::Enrolment>, Error> {
    let rows = roster_rows!(
        "WHERE e.employee_number = $1 ORDER BY c.start_date DESC, c.id",
        number,
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(TryInto::try_into).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cohorts::CohortState;
    use crate::testing::{cohort, course, page, site, staff, transaction};

    /// The course `lean`, the cohort `sites/BAS/cohorts/a` of `capacity`, and five people:
    /// 1 to 4 at BAS, 5 at SOU.
    async fn setup(conn: &mut PgConnection, capacity: i32) -> anyhow::Result<CohortRef> {
        course(conn, "lean", 1).await?;
        for (number, site, surname) in [
            ("1", "BAS", "Dee"),
            ("2", "BAS", "Cole"),
            ("3", "BAS", "Bell"),
            ("4", "BAS", "Ames"),
            ("5", "SOU", "Ezra"),
        ] {
            staff(conn, number, site, surname, "Pat").await?;
        }
        cohort(conn, site("BAS"), "a", "lean", capacity).await
    }

    fn numbers(es: &[pb::Enrolment]) -> Vec<&str> {
        es.iter()
            .map(|e| e.name.rsplit('/').next().unwrap_or_default())
            .collect()
    }

    #[tokio::test]
    async fn an_enrolment_reads_back_and_only_a_withdrawal_may_return() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let c = setup(&mut conn, 2).await?;
        assert!(insert(&mut conn, &c, "1", "enrolled").await?);
        assert!(!insert(&mut conn, &c, "1", "waitlisted").await?);
        let got = read_one(&mut conn, c.uid, "1").await?;
        assert_eq!(got.name, "sites/BAS/cohorts/a/enrolments/1");
        assert_eq!(got.staff, "staff/1");
        assert_eq!(got.staff_display_name, "Pat Dee");
        assert_eq!(got.state, pb::EnrolmentState::Enrolled as i32);
        assert_eq!((got.waitlist_position, got.completion_date), (0, None));
        assert!(got.attendance.is_empty());
        assert_eq!(enrolled_count(&mut conn, c.uid).await?, 1);
        assert_eq!(state_of(&mut conn, c.uid, "2").await?, None);
        withdraw(&mut conn, c.uid, "1").await?;
        assert_eq!(
            state_of(&mut conn, c.uid, "1").await?.as_deref(),
            Some("withdrawn")
        );
        assert_eq!(enrolled_count(&mut conn, c.uid).await?, 0);
        assert!(insert(&mut conn, &c, "1", "waitlisted").await?);
        let back = read_one(&mut conn, c.uid, "1").await?;
        assert_eq!(
            (back.state, back.waitlist_position),
            (pb::EnrolmentState::Waitlisted as i32, 1)
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_learner_on_an_unfinished_cohort_of_the_course_is_found_there() -> anyhow::Result<()>
    {
        let mut conn = transaction().await?;
        let a = setup(&mut conn, 2).await?;
        let b = cohort(&mut conn, Owner::Trust, "b", "lean", 2).await?;
        insert(&mut conn, &a, "1", "waitlisted").await?;
        assert_eq!(
            elsewhere(&mut conn, "1", "lean", b.uid).await?.as_deref(),
            Some("sites/BAS/cohorts/a")
        );
        // Not the cohort asked about, nor another course, nor someone not on it.
        assert_eq!(elsewhere(&mut conn, "1", "lean", a.uid).await?, None);
        assert_eq!(elsewhere(&mut conn, "1", "qsir-fund", b.uid).await?, None);
        assert_eq!(elsewhere(&mut conn, "2", "lean", b.uid).await?, None);
        // A finished cohort holds no one.
        cohorts::store::set_state(&mut conn, a.uid, CohortState::Completed, None).await?;
        assert_eq!(elsewhere(&mut conn, "1", "lean", b.uid).await?, None);
        Ok(())
    }

    #[tokio::test]
    async fn free_places_go_to_the_waitlist_in_order() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let c = setup(&mut conn, 2).await?;
        for (number, state) in [
            ("1", "enrolled"),
            ("2", "enrolled"),
            ("3", "waitlisted"),
            ("4", "waitlisted"),
            ("5", "waitlisted"),
        ] {
            insert(&mut conn, &c, number, state).await?;
        }
        assert_eq!(read_one(&mut conn, c.uid, "4").await?.waitlist_position, 2);
        assert!(fill_places(&mut conn, c.uid).await?.is_empty());
        withdraw(&mut conn, c.uid, "1").await?;
        withdraw(&mut conn, c.uid, "3").await?;
        // One place, and 3 left the waitlist: 4 is next.
        assert_eq!(fill_places(&mut conn, c.uid).await?, ["4"]);
        assert_eq!(read_one(&mut conn, c.uid, "5").await?.waitlist_position, 1);
        let counted = cohorts::store::reread(&mut conn, &c).await?;
        assert_eq!((counted.enrolled_count, counted.waitlist_count), (2, 1));
        withdraw(&mut conn, c.uid, "2").await?;
        withdraw(&mut conn, c.uid, "4").await?;
        assert_eq!(fill_places(&mut conn, c.uid).await?, ["5"]);
        assert_eq!(enrolled_count(&mut conn, c.uid).await?, 1);
        Ok(())
    }

    #[tokio::test]
    async fn a_roster_pages_enrolled_by_name_then_the_waitlist_then_withdrawals()
    -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let c = setup(&mut conn, 3).await?;
        for (number, state) in [
            ("1", "enrolled"),
            ("5", "enrolled"),
            ("2", "enrolled"),
            ("4", "waitlisted"),
            ("3", "waitlisted"),
        ] {
            insert(&mut conn, &c, number, state).await?;
        }
        withdraw(&mut conn, c.uid, "5").await?;
        let (all, _) = list(
            &mut conn,
            &Cohorts::One(&c),
            None,
            &Wanted::default(),
            &page(50, "")?,
        )
        .await?;
        assert_eq!(numbers(&all), ["2", "1", "4", "3", "5"]);
        let (first, next) = list(
            &mut conn,
            &Cohorts::One(&c),
            None,
            &Wanted::default(),
            &page(2, "")?,
        )
        .await?;
        let (second, then) = list(
            &mut conn,
            &Cohorts::One(&c),
            None,
            &Wanted::default(),
            &page(2, &next)?,
        )
        .await?;
        let (third, end) = list(
            &mut conn,
            &Cohorts::One(&c),
            None,
            &Wanted::default(),
            &page(2, &then)?,
        )
        .await?;
        assert_eq!(numbers(&first), ["2", "1"]);
        assert_eq!(numbers(&second), ["4", "3"]);
        assert_eq!(numbers(&third), ["5"]);
        assert!(end.is_empty());
        // A site's cohort is its site's whole, a learner who has moved since included; of a
        // trust-wide cohort, a one-site caller sees only the people now at its site.
        let (bas, _) = list(
            &mut conn,
            &Cohorts::One(&c),
            Some(vec!["BAS".into()]),
            &Wanted::default(),
            &page(50, "")?,
        )
        .await?;
        assert_eq!(numbers(&bas), ["2", "1", "4", "3", "5"]);
        let t = cohort(&mut conn, Owner::Trust, "t", "lean", 3).await?;
        for number in ["1", "5"] {
            insert(&mut conn, &t, number, "enrolled").await?;
        }
        let (sou, _) = list(
            &mut conn,
            &Cohorts::One(&t),
            Some(vec!["SOU".into()]),
            &Wanted::default(),
            &page(50, "")?,
        )
        .await?;
        assert_eq!(numbers(&sou), ["5"]);
        Ok(())
    }

    #[tokio::test]
    async fn a_persons_enrolments_come_newest_cohort_first() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let a = setup(&mut conn, 2).await?;
        let mut later = crate::testing::new_cohort(Owner::Trust, "b", "lean", "2026-09-07");
        later.capacity = 2;
        cohorts::store::insert(&mut conn, &later).await?;
        let b = cohorts::store::locate(&mut conn, &Owner::Trust, "b", false)
            .await?
            .expect("cohort b");
        insert(&mut conn, &a, "1", "enrolled").await?;
        insert(&mut conn, &b, "1", "waitlisted").await?;
        insert(&mut conn, &b, "2", "enrolled").await?;
        let mine = of_staff(&mut conn, "1").await?;
        let names: Vec<_> = mine.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "trust/cohorts/b/enrolments/1",
                "sites/BAS/cohorts/a/enrolments/1"
            ]
        );
        Ok(())
    }
}
