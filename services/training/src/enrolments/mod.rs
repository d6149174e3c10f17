//! Enrolment (`{cohort}/enrolments/{employee_number}`): places up to the cohort's capacity,
//! then a waitlist promoted in order when a place frees. Every change locks the cohort's row
//! first, so concurrent enrolments never overfill it.

use qi_platform::convert::{date, timestamp};
use qi_platform::names::{self, Owner};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error};
use qi_proto::training as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::cohorts::{self, CohortRef};
use crate::staff;

/// The collection id in enrolment names.
pub(crate) const COLLECTION: &str = "enrolments";

/// Parses `{cohort}/enrolments/{employee_number}` into the cohort's owner and id and the number.
pub(crate) fn parse_name(field: &str, value: &str) -> Result<(Owner, String, String), Error> {
    let (owner, ids) = names::parse_nested(field, value, &[cohorts::COLLECTION, COLLECTION])?;
    let [cohort, number]: [String; 2] = ids
        .try_into()
        .map_err(|_| Error::invalid(field, "expected a cohort and an employee number"))?;
    names::validate_id(field, &cohort)?;
    let number = staff::employee_number(field, &number)?;
    Ok((owner, cohort, number))
}

#[derive(sqlx::FromRow)]
struct EnrolmentRow {
    site: Option<String>,
    cohort_id: String,
    employee_number: String,
    staff_site: String,
    forename: String,
    surname: String,
    state: String,
    waitlist_position: Option<i64>,
    completion_date: Option<chrono::NaiveDate>,
    create_time: chrono::DateTime<chrono::Utc>,
    update_time: chrono::DateTime<chrono::Utc>,
    attendance: Vec<String>,
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
            staff: format!(
                "sites/{}/{}/{}",
                r.staff_site,
                staff::COLLECTION,
                r.employee_number
            ),
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

/// The roster query: enrolments with learner, waitlist position, attendance and completion.
/// `$1` is the cohort uid (or NULL) and `$2` an employee number (or NULL).
const ROSTER: &str = "
    SELECT c.site, c.id AS cohort_id, e.employee_number, s.site AS staff_site, s.forename, s.surname,
           e.state,
           CASE WHEN e.state = 'waitlisted' THEN
               (SELECT count(*) FROM enrolment w WHERE w.cohort_uid = e.cohort_uid
                  AND w.state = 'waitlisted' AND w.waitlist_seq <= e.waitlist_seq) END AS waitlist_position,
           (SELECT k.completion_date FROM completion k WHERE k.cohort_uid = e.cohort_uid
              AND k.employee_number = e.employee_number AND NOT k.revoked) AS completion_date,
           e.create_time, e.update_time,
           coalesce((SELECT array_agg(a.session_number || ':' || a.status ORDER BY a.session_number)
                     FROM attendance a WHERE a.cohort_uid = e.cohort_uid
                       AND a.employee_number = e.employee_number), '{}') AS attendance,
           CASE e.state WHEN 'enrolled' THEN 0 WHEN 'waitlisted' THEN 1 ELSE 2 END AS rank,
           CASE WHEN e.state = 'waitlisted' THEN lpad(e.waitlist_seq::text, 20, '0')
                ELSE lower(s.surname || ' ' || s.forename) END AS sort_key
    FROM enrolment e
    JOIN cohort c ON c.uid = e.cohort_uid
    JOIN staff s ON s.employee_number = e.employee_number";

async fn read_one(
    conn: &mut PgConnection,
    cohort_uid: Uuid,
    number: &str,
) -> Result<pb::Enrolment, Error> {
    let row: EnrolmentRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{ROSTER} WHERE e.cohort_uid = $1 AND e.employee_number = $2"
    )))
    .bind(cohort_uid)
    .bind(number)
    .fetch_one(&mut *conn)
    .await?;
    row.try_into()
}

/// Enrols a learner (or waitlists them) on a locked cohort.
pub(crate) async fn create(
    conn: &mut PgConnection,
    ctx: &AccessContext,
    cohort: &CohortRef,
    staff_field: &str,
    staff_name: &str,
) -> Result<pb::Enrolment, Error> {
    let state = cohort.state()?;
    if !state.takes_enrolments() {
        return Err(Error::FailedPrecondition {
            reason: "COHORT_CLOSED",
            message: format!(
                "{} is {}: it takes no more learners",
                cohort.name()?,
                state.column()
            ),
        });
    }
    let parsed = staff::parse_name(staff_field, staff_name)?;
    let learner =
        staff::get(conn, ctx, &parsed)
            .await?
            .ok_or_else(|| Error::FailedPrecondition {
                reason: "STAFF_NOT_FOUND",
                message: format!("{staff_field}: {staff_name} does not exist"),
            })?;
    if !learner.active {
        return Err(Error::FailedPrecondition {
            reason: "STAFF_INACTIVE",
            message: format!("{staff_field}: {} has left the trust", learner.name()),
        });
    }
    if let Some(site) = &cohort.site
        && *site != learner.site
    {
        return Err(Error::FailedPrecondition {
            reason: "OTHER_SITE_LEARNER",
            message: format!(
                "{staff_field}: {} works at {}; a {site} cohort takes {site} staff (enrol other sites' staff in a trust-wide cohort)",
                learner.name(),
                learner.site
            ),
        });
    }
    // One unfinished cohort of a course at a time.
    let elsewhere: Option<String> = sqlx::query_scalar(
        "SELECT coalesce('sites/' || c.site, 'trust') || '/cohorts/' || c.id
         FROM enrolment e JOIN cohort c ON c.uid = e.cohort_uid
         WHERE e.employee_number = $1 AND e.course_id = $2 AND e.cohort_uid <> $3
           AND e.state IN ('enrolled', 'waitlisted')
           AND c.state IN ('planned', 'open', 'running')
         LIMIT 1",
    )
    .bind(&learner.employee_number)
    .bind(&cohort.course_id)
    .bind(cohort.uid)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(other) = elsewhere {
        return Err(Error::FailedPrecondition {
            reason: "ALREADY_ON_COURSE",
            message: format!(
                "{staff_field}: {} is already on {other}, an unfinished cohort of the same course",
                learner.name()
            ),
        });
    }
    let enrolled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM enrolment WHERE cohort_uid = $1 AND state = 'enrolled'",
    )
    .bind(cohort.uid)
    .fetch_one(&mut *conn)
    .await?;
    let has_place = enrolled < i64::from(cohort.capacity);
    // A withdrawn learner may come back; anyone else on the roster is already there.
    let written = sqlx::query(
        "INSERT INTO enrolment (cohort_uid, employee_number, course_id, state, waitlist_seq)
         VALUES ($1, $2, $3, $4, CASE WHEN $4 = 'waitlisted' THEN nextval('waitlist_seq') END)
         ON CONFLICT (cohort_uid, employee_number) DO UPDATE
             SET state = EXCLUDED.state, waitlist_seq = EXCLUDED.waitlist_seq
             WHERE enrolment.state = 'withdrawn'",
    )
    .bind(cohort.uid)
    .bind(&learner.employee_number)
    .bind(&cohort.course_id)
    .bind(if has_place { "enrolled" } else { "waitlisted" })
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if written == 0 {
        return Err(Error::AlreadyExists {
            name: format!(
                "{}/{COLLECTION}/{}",
                cohort.name()?,
                learner.employee_number
            ),
        });
    }
    read_one(conn, cohort.uid, &learner.employee_number).await
}

/// Withdraws a learner from a locked cohort and gives any freed place to the waitlist.
/// Returns the withdrawn enrolment and the promoted one, if any.
pub(crate) async fn withdraw(
    conn: &mut PgConnection,
    cohort: &CohortRef,
    number: &str,
    name: &str,
) -> Result<(pb::Enrolment, Option<pb::Enrolment>), Error> {
    let before: Option<String> = sqlx::query_scalar(
        "SELECT state FROM enrolment WHERE cohort_uid = $1 AND employee_number = $2",
    )
    .bind(cohort.uid)
    .bind(number)
    .fetch_optional(&mut *conn)
    .await?;
    match before.as_deref() {
        None => return Err(Error::not_found(name)),
        Some("withdrawn") => {
            return Err(Error::FailedPrecondition {
                reason: "ALREADY_WITHDRAWN",
                message: format!("{name} was already withdrawn"),
            });
        }
        Some(_) => {}
    }
    sqlx::query(
        "UPDATE enrolment SET state = 'withdrawn', waitlist_seq = NULL
         WHERE cohort_uid = $1 AND employee_number = $2",
    )
    .bind(cohort.uid)
    .bind(number)
    .execute(&mut *conn)
    .await?;
    let promoted = fill_places(conn, cohort.uid).await?;
    let withdrawn = read_one(conn, cohort.uid, number).await?;
    let promoted = match promoted.first() {
        Some(p) => Some(read_one(conn, cohort.uid, p).await?),
        None => None,
    };
    Ok((withdrawn, promoted))
}

/// Moves waitlisted learners, in order, into free places of a locked cohort; returns who.
pub(crate) async fn fill_places(
    conn: &mut PgConnection,
    cohort_uid: Uuid,
) -> Result<Vec<String>, Error> {
    Ok(sqlx::query_scalar(
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
    )
    .bind(cohort_uid)
    .fetch_all(&mut *conn)
    .await?)
}

/// One page of a cohort's roster: enrolled by name, the waitlist in order, then withdrawals;
/// only learners of `sites` (`None`: every site). A trust-wide cohort takes every site's
/// staff, and a one-site caller sees only its own site's people in it.
pub(crate) async fn list(
    conn: &mut PgConnection,
    cohort: &CohortRef,
    page: &Page,
    sites: Option<Vec<String>>,
) -> Result<(Vec<pb::Enrolment>, String), Error> {
    let after_rank: i32 = page.after_key(0).and_then(|r| r.parse().ok()).unwrap_or(-1);
    let rows: Vec<(EnrolmentRow, i32, String)> =
        sqlx::query_as::<_, RosterRow>(sqlx::AssertSqlSafe(format!(
            "SELECT * FROM ({ROSTER} WHERE e.cohort_uid = $1
                AND ($6::text[] IS NULL OR s.site = ANY($6))) r
         WHERE (rank, sort_key, employee_number) > ($2, $3, $4)
         ORDER BY rank, sort_key, employee_number
         LIMIT $5"
        )))
        .bind(cohort.uid)
        .bind(after_rank)
        .bind(page.after_key(1).unwrap_or(""))
        .bind(page.after_key(2).unwrap_or(""))
        .bind(page.limit())
        .bind(sites)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|r| (r.row, r.rank, r.sort_key))
        .collect();
    let (rows, next) = page.finish(rows, |(r, rank, key)| {
        vec![rank.to_string(), key.clone(), r.employee_number.clone()]
    });
    let enrolments = rows
        .into_iter()
        .map(|(r, _, _)| r.try_into())
        .collect::<Result<Vec<_>, _>>()?;
    Ok((enrolments, next))
}

#[derive(sqlx::FromRow)]
struct RosterRow {
    #[sqlx(flatten)]
    row: EnrolmentRow,
    rank: i32,
    sort_key: String,
}

/// Every enrolment of one person, newest cohort first.
pub(crate) async fn of_staff(
    conn: &mut PgConnection,
    number: &str,
) -> Result<Vec<pb::Enrolment>, Error> {
    let rows: Vec<EnrolmentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{ROSTER} WHERE e.employee_number = $1 ORDER BY c.start_date DESC, c.id"
    )))
    .bind(number)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(TryInto::try_into).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrolment_names_nest_under_their_cohort() {
        let (owner, cohort, number) =
            parse_name("name", "trust/cohorts/spring-27/enrolments/12345678").unwrap();
        assert_eq!(
            (owner, cohort.as_str(), number.as_str()),
            (Owner::Trust, "spring-27", "12345678")
        );
        assert!(parse_name("name", "trust/cohorts/spring-27/enrolments/abc").is_err());
    }
}
