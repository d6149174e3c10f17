//! The completion table (the register) and its change history: SQL and row mapping.

use chrono::NaiveDate;
use qi_platform::Error;
use qi_platform::convert::date;
use qi_platform::names::Owner;
use qi_platform::paging::Page;
use qi_proto::training as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{COLLECTION, Filter, Outcome};
use crate::{cohorts, courses};

/// The advisory lock key that serializes register writers (any constant unique to it).
const REGISTER_LOCK: i64 = 0x5157_5245_4749; // "QWREGI"

/// `query_as!` into [`CompletionRow`] of the completions with learner, course and cohort
/// then `$tail`: the columns are written once, and every statement is still checked at build
/// time.
macro_rules! completion_rows {
    ($tail:literal, $($arg:expr),+ $(,)?) => {
        sqlx::query_as!(
            CompletionRow,
            "SELECT k.id, k.employee_number, s.forename, s.surname,
                    k.course_id, co.display_name AS course_display_name, c.site AS cohort_site,
                    c.id AS cohort_id, k.completion_date, k.expiry_date
             FROM completion k
             JOIN staff s ON s.employee_number = k.employee_number
             JOIN course co ON co.id = k.course_id
             JOIN cohort c ON c.uid = k.cohort_uid "
                + $tail,
            $($arg),+
        )
    };
}

/// Each learner's attended session dates in a cohort, in date order.
pub(super) async fn attended(
    conn: &mut PgConnection,
    cohort_uid: Uuid,
    numbers: &[String],
) -> Result<Vec<(String, Vec<NaiveDate>)>, Error> {
    let rows = sqlx::query!(
        r#"SELECT n.employee_number AS "employee_number!",
                  coalesce(array_agg(s.date ORDER BY s.date, s.number)
                           FILTER (WHERE s.date IS NOT NULL), '{}') AS "dates!"
           FROM unnest($2::text[]) AS n(employee_number)
           LEFT JOIN attendance a ON a.cohort_uid = $1 AND a.employee_number = n.employee_number
                                 AND a.status IN ('attended', 'caught_up')
           LEFT JOIN session s ON s.cohort_uid = a.cohort_uid AND s.number = a.session_number
           GROUP BY n.employee_number"#,
        cohort_uid,
        numbers,
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.employee_number, r.dates))
        .collect())
}

/// Takes the register writers' lock until the transaction ends.
pub(super) async fn lock(conn: &mut PgConnection) -> Result<(), Error> {
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", REGISTER_LOCK)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records the completions of those who meet the rule in a cohort of `course_id`: new,
/// restored or re-dated ones take a new place in the history. Returns their ids.
pub(super) async fn achieve(
    conn: &mut PgConnection,
    course_id: &str,
    cohort_uid: Uuid,
    outcome: &Outcome,
) -> Result<Vec<Uuid>, Error> {
    Ok(sqlx::query_scalar!(
        "INSERT INTO completion (id, employee_number, course_id, cohort_uid,
                                 completion_date, expiry_date, change_seq)
         SELECT m.id, m.employee_number, $5, $6, m.completion_date, m.expiry_date,
                nextval('register_change_seq')
         FROM unnest($1::uuid[], $2::text[], $3::date[], $4::date[])
              AS m(id, employee_number, completion_date, expiry_date)
         ORDER BY m.employee_number
         ON CONFLICT (employee_number, cohort_uid) DO UPDATE
             SET completion_date = EXCLUDED.completion_date,
                 expiry_date = EXCLUDED.expiry_date, revoked = false,
                 change_seq = nextval('register_change_seq')
             WHERE completion.revoked
                OR completion.completion_date <> EXCLUDED.completion_date
         RETURNING id",
        &outcome.ids,
        &outcome.met,
        &outcome.days,
        &outcome.expiries as &[Option<NaiveDate>],
        course_id,
        cohort_uid,
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// Revokes the completions in a cohort of those who no longer meet the rule.
pub(super) async fn revoke(
    conn: &mut PgConnection,
    cohort_uid: Uuid,
    numbers: &[String],
) -> Result<(), Error> {
    sqlx::query!(
        "UPDATE completion SET revoked = true, change_seq = nextval('register_change_seq')
         WHERE cohort_uid = $1 AND employee_number = ANY($2) AND NOT revoked",
        cohort_uid,
        numbers,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// These completions, by learner.
pub(super) async fn by_ids(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<pb::Completion>, Error> {
    let rows = completion_rows!("WHERE k.id = ANY($1) ORDER BY s.surname, s.forename", ids)
        .fetch_all(&mut *conn)
        .await?;
    rows.into_iter().map(TryInto::try_into).collect()
}

struct CompletionRow {
    id: Uuid,
    employee_number: String,
    forename: String,
    surname: String,
    course_id: String,
    course_display_name: String,
    cohort_site: Option<String>,
    cohort_id: String,
    completion_date: NaiveDate,
    expiry_date: Option<NaiveDate>,
}

impl TryFrom<CompletionRow> for pb::Completion {
    type Error = Error;
    fn try_from(r: CompletionRow) -> Result<Self, Error> {
        let staff = crate::staff::name_of(&r.employee_number);
        Ok(pb::Completion {
            name: format!("{staff}/{COLLECTION}/{}", r.id),
            staff,
            staff_display_name: format!("{} {}", r.forename, r.surname),
            course: Owner::Trust.child(courses::COLLECTION, &r.course_id),
            course_display_name: r.course_display_name,
            cohort: Owner::from_column(r.cohort_site)?.child(cohorts::COLLECTION, &r.cohort_id),
            completion_date: Some(date(r.completion_date)),
            expiry_date: r.expiry_date.map(date),
        })
    }
}

/// One page of the register of learners now at `sites` (`None`: every site), or of one
/// `person`'s, newest first.
pub(super) async fn list(
    conn: &mut PgConnection,
    sites: Option<Vec<String>>,
    person: Option<&str>,
    filter: &Filter,
    page: &Page,
) -> Result<(Vec<pb::Completion>, String), Error> {
    let after_date = page
        .after_key(0)
        .map(str::parse::<NaiveDate>)
        .transpose()
        .map_err(|_| Error::invalid("page_token", "not a token this list returned"))?;
    let after_id = page
        .after_key(1)
        .map(Uuid::parse_str)
        .transpose()
        .map_err(|_| Error::invalid("page_token", "not a token this list returned"))?;
    let rows = completion_rows!(
        "WHERE NOT k.revoked AND ($1::text[] IS NULL OR s.site = ANY($1))
           AND ($2::text IS NULL OR k.course_id = $2)
           AND ($3::date IS NULL OR k.completion_date >= $3)
           AND ($4::date IS NULL OR k.completion_date < $4)
           AND ($5::date IS NULL OR k.completion_date < $5
                OR (k.completion_date = $5 AND k.id > $6))
           AND ($8::text IS NULL OR k.employee_number = $8)
         ORDER BY k.completion_date DESC, k.id
         LIMIT $7",
        sites.as_deref(),
        filter.course_id,
        filter.from,
        filter.before,
        after_date,
        after_id,
        page.limit(),
        person,
    )
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| {
        vec![r.completion_date.to_string(), r.id.to_string()]
    });
    rows.into_iter()
        .map(TryInto::try_into)
        .collect::<Result<Vec<_>, _>>()
        .map(|c| (c, next))
}

/// One person's completions, newest first.
pub(super) async fn of_staff(
    conn: &mut PgConnection,
    number: &str,
) -> Result<Vec<pb::Completion>, Error> {
    let rows = completion_rows!(
        "WHERE k.employee_number = $1 AND NOT k.revoked ORDER BY k.completion_date DESC, k.id",
        number,
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(TryInto::try_into).collect()
}

/// The training summary of learners at `sites` (`None`: every site): completions per
/// course, site and period, totals per course, and the people trained.
pub(super) async fn summary(
    conn: &mut PgConnection,
    sites: Option<Vec<String>>,
    period: pb::SummaryPeriod,
    from: Option<NaiveDate>,
    before: Option<NaiveDate>,
) -> Result<pb::GetTrainingSummaryResponse, Error> {
    let unit = match period {
        pb::SummaryPeriod::Unspecified | pb::SummaryPeriod::Year => "year",
        pb::SummaryPeriod::Quarter => "quarter",
        pb::SummaryPeriod::Month => "month",
    };
    // `query!` of `$head`, the summary's filter (`$1` to `$3`), then `$tail` (binding `$more`
    // from `$4`): the filter is written once.
    macro_rules! filtered {
        ($head:literal, $tail:literal $(, $more:expr)*) => {
            sqlx::query!(
                $head
                    + " WHERE NOT k.revoked AND ($1::text[] IS NULL OR s.site = ANY($1))
                          AND ($2::date IS NULL OR k.completion_date >= $2)
                          AND ($3::date IS NULL OR k.completion_date < $3) "
                    + $tail,
                sites.as_deref(),
                from,
                before,
                $($more),*
            )
        };
    }
    let rows = filtered!(
        r#"SELECT co.code, s.site, date_trunc($4::text, k.completion_date)::date AS "period!",
                  count(*) AS "completions!"
           FROM completion k JOIN staff s ON s.employee_number = k.employee_number
           JOIN course co ON co.id = k.course_id"#,
        "GROUP BY 1, 2, 3 ORDER BY 3, 1, 2",
        unit
    )
    .fetch_all(&mut *conn)
    .await?;
    let totals = filtered!(
        r#"SELECT co.code, count(*) AS "completions!",
                  count(DISTINCT k.employee_number) AS "staff!"
           FROM completion k JOIN staff s ON s.employee_number = k.employee_number
           JOIN course co ON co.id = k.course_id"#,
        "GROUP BY 1 ORDER BY 1"
    )
    .fetch_all(&mut *conn)
    .await?;
    let staff_trained = filtered!(
        r#"SELECT count(DISTINCT k.employee_number) AS "staff!"
           FROM completion k JOIN staff s ON s.employee_number = k.employee_number"#,
        ""
    )
    .fetch_one(&mut *conn)
    .await?
    .staff;
    Ok(pb::GetTrainingSummaryResponse {
        rows: rows
            .into_iter()
            .map(|r| pb::TrainingSummaryRow {
                course_code: r.code,
                site: r.site,
                period_start: Some(date(r.period)),
                completions: r.completions,
            })
            .collect(),
        course_totals: totals
            .into_iter()
            .map(|r| pb::CourseTotal {
                course_code: r.code,
                completions: r.completions,
                staff: r.staff,
            })
            .collect(),
        staff_trained,
    })
}

/// Up to `limit` register changes after `cursor`, oldest first, as ESR competence records.
pub(super) async fn changes_since(
    conn: &mut PgConnection,
    cursor: i64,
    limit: i64,
) -> Result<Vec<pb::TrainingRecordChange>, Error> {
    let rows = sqlx::query_as!(
        ChangeRow,
        "SELECT k.change_seq, k.revoked, k.employee_number, s.assignment_number,
                co.display_name AS competence_name, co.code AS course_code,
                k.completion_date, k.expiry_date, c.site AS cohort_site, c.id AS cohort_id
         FROM completion k
         JOIN staff s ON s.employee_number = k.employee_number
         JOIN course co ON co.id = k.course_id
         JOIN cohort c ON c.uid = k.cohort_uid
         WHERE k.change_seq > $1
         ORDER BY k.change_seq
         LIMIT $2",
        cursor,
        limit,
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            let kind = if r.revoked {
                pb::TrainingRecordChangeKind::Revoked
            } else {
                pb::TrainingRecordChangeKind::Achieved
            };
            Ok(pb::TrainingRecordChange {
                cursor: r.change_seq.to_string(),
                kind: kind as i32,
                employee_number: r.employee_number,
                assignment_number: r.assignment_number,
                competence_name: r.competence_name,
                course_code: r.course_code,
                achieved_date: Some(date(r.completion_date)),
                expiry_date: r.expiry_date.map(date),
                source: Owner::from_column(r.cohort_site)?.child(cohorts::COLLECTION, &r.cohort_id),
            })
        })
        .collect()
}

struct ChangeRow {
    change_seq: i64,
    revoked: bool,
    employee_number: String,
    assignment_number: String,
    competence_name: String,
    course_code: String,
    completion_date: NaiveDate,
    expiry_date: Option<NaiveDate>,
    cohort_site: Option<String>,
    cohort_id: String,
}
