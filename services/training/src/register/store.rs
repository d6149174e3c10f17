//! The completion table (the register) and its change history: SQL and row mapping.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use qi_filter::Range;
use qi_platform::Error;
use qi_platform::convert::{date, timestamp};
use qi_platform::extract::Order;
use qi_platform::names::Owner;
use qi_platform::names::OwnerAccess as _;
use qi_platform::paging::Page;
use qi_proto::training as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use super::filter::Filter;
use super::import::{Existing, Found, Row, Source, Upsert};
use super::reconcile::{EsrRecord, Held, Resolved};
use super::{COLLECTION, Outcome};
use crate::{cohorts, courses};

/// The advisory lock key that serializes register writers (any constant unique to it).
const REGISTER_LOCK: i64 = 0x5157_5245_4749; // "QWREGI"

/// `sqlx::$which!` (`query` or `query_as`, with its row type) of `$head`, the register
/// filter's conditions on the learner (`s`, `staff`), `$mid`, its conditions on the
/// completion (`k`), then `$tail`: the filter is written once, bound from `$f` (a
/// [`Filter`]) and the learners' `$sites` (`None`: every site) as `$1` to `$15`; `$more`
/// bind from `$16`. An absent term (`NULL`, `'{}'`) is no condition.
macro_rules! filtered {
    ($which:ident($($ty:path)?), $head:literal, $mid:literal, $tail:literal, $f:expr,
     $sites:expr $(, $more:expr)* $(,)?) => {{
        let f: &Filter = $f;
        sqlx::$which!(
            $($ty,)?
            $head
                + " ($1::text[] IS NULL OR s.site = ANY($1))
                    AND ($2::text IS NULL OR s.staff_group = $2) AND s.staff_group <> ALL($3)
                    AND ($4::text IS NULL OR s.pay_band = $4) AND s.pay_band <> ALL($5)
                    AND ($6::text IS NULL OR s.department = $6) AND s.department <> ALL($7)
                    AND ($8::text IS NULL OR s.ward = $8) AND s.ward <> ALL($9) "
                + $mid
                + " ($10::text IS NULL OR k.course_id = $10) AND k.course_id <> ALL($11)
                    AND ($12::text IS NULL OR k.source = $12) AND k.source <> ALL($13)
                    AND ($14::date IS NULL OR k.completion_date >= $14)
                    AND ($15::date IS NULL OR k.completion_date < $15) "
                + $tail,
            $sites,
            f.staff_group.is.as_deref(),
            f.staff_group.not.as_slice(),
            f.pay_band.is.as_deref(),
            f.pay_band.not.as_slice(),
            f.department.is.as_deref(),
            f.department.not.as_slice(),
            f.ward.is.as_deref(),
            f.ward.not.as_slice(),
            f.course.is.as_deref(),
            f.course.not.as_slice(),
            f.source.is.as_deref(),
            f.source.not.as_slice(),
            f.completed.from,
            f.completed.before,
            $($more),*
        )
    }};
}

/// `query_as!` into [`CompletionRow`] of the completions with learner, course and cohort
/// (none for a completion from elsewhere), [`filtered!`] by `$f` and `$sites`, then
/// `$tail` (`AND …`): the columns are written once, and every statement is still checked at build
/// time.
macro_rules! completion_rows {
    ($f:expr, $sites:expr, $tail:literal $(, $more:expr)* $(,)?) => {
        filtered!(
            query_as(CompletionRow),
            r#"SELECT k.id, k.employee_number, s.forename, s.surname,
                    k.course_id, co.display_name AS course_display_name,
                    c.site AS "cohort_site?", c.id AS "cohort_id?", k.completion_date,
                    k.expiry_date, k.source, k.source_reference, k.previous_organisation,
                    k.imported_by, k.create_time, k.update_time, s.site AS learner_site
             FROM completion k
             JOIN staff s ON s.employee_number = k.employee_number
             JOIN course co ON co.id = k.course_id
             LEFT JOIN cohort c ON c.uid = k.cohort_uid
             WHERE "#,
            " AND ",
            $tail,
            $f,
            $sites
            $(, $more)*
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

/// A completion achieved (or moved) by a register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Achieved {
    pub(super) id: Uuid,
    /// Whether it is new to the register's readers: inserted, or restored after a
    /// revocation (else re-dated).
    pub(super) appeared: bool,
}

/// Records the completions of those who meet the rule in a cohort of `course_id`: new,
/// restored or re-dated ones take a new place in the history. Returns them.
pub(super) async fn achieve(
    conn: &mut PgConnection,
    course_id: &str,
    cohort_uid: Uuid,
    outcome: &Outcome,
) -> Result<Vec<Achieved>, Error> {
    // The subquery reads the table as it was before the statement (a statement never sees
    // its own changes): no completion in force there, it appeared now.
    Ok(sqlx::query_as!(
        Achieved,
        r#"INSERT INTO completion (id, employee_number, course_id, cohort_uid,
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
         RETURNING id, NOT EXISTS (SELECT 1 FROM completion o
                                   WHERE o.id = completion.id AND NOT o.revoked) AS "appeared!""#,
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

/// A completion revoked: its learner, id, and the learner's current site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Revoked {
    pub(super) employee_number: String,
    pub(super) id: Uuid,
    pub(super) site: String,
}

/// Revokes the completions in a cohort of those who no longer meet the rule; returns them.
pub(super) async fn revoke(
    conn: &mut PgConnection,
    cohort_uid: Uuid,
    numbers: &[String],
) -> Result<Vec<Revoked>, Error> {
    Ok(sqlx::query_as!(
        Revoked,
        r#"UPDATE completion k SET revoked = true, change_seq = nextval('register_change_seq')
           FROM staff s
           WHERE k.cohort_uid = $1 AND k.employee_number = ANY($2) AND NOT k.revoked
             AND s.employee_number = k.employee_number
           RETURNING k.employee_number AS "employee_number!", k.id AS "id!", s.site AS "site!""#,
        cohort_uid,
        numbers,
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// For each checked import row: whether its person is at one of `sites` (`None`: any
/// site), its course (by id or code) with its validity, and whether the person has
/// completed that course here. One statement, whatever the number of rows.
pub(super) async fn import_lookup(
    conn: &mut PgConnection,
    rows: &[Row],
    sites: Option<&[String]>,
) -> Result<Vec<Found>, Error> {
    let indexes: Vec<i32> = rows.iter().map(|r| r.index).collect();
    let numbers: Vec<&str> = rows.iter().map(|r| r.employee_number.as_str()).collect();
    let courses: Vec<&str> = rows.iter().map(|r| r.course.as_str()).collect();
    let found = sqlx::query!(
        r#"SELECT m.idx AS "idx!", s.employee_number IS NOT NULL AS "in_scope!",
                  s.site AS "site?",
                  co.id AS "course_id?", co.validity_months AS "validity_months?",
                  EXISTS (SELECT 1 FROM completion k
                          WHERE k.employee_number = s.employee_number AND k.course_id = co.id
                            AND k.cohort_uid IS NOT NULL AND NOT k.revoked) AS "earned_here!"
           FROM unnest($1::int4[], $2::text[], $3::text[]) AS m(idx, employee_number, course)
           LEFT JOIN staff s ON s.employee_number = m.employee_number
                            AND ($4::text[] IS NULL OR s.site = ANY($4))
           LEFT JOIN LATERAL (SELECT c.id, c.validity_months FROM course c
                              WHERE c.id = m.course OR c.code = m.course
                              ORDER BY c.id = m.course DESC LIMIT 1) co ON true"#,
        &indexes,
        &numbers as &[&str],
        &courses as &[&str],
        sites,
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(found
        .into_iter()
        .map(|r| Found {
            index: r.idx,
            in_scope: r.in_scope,
            site: r.site.unwrap_or_default(),
            course: r.course_id.zip(r.validity_months),
            earned_here: r.earned_here,
        })
        .collect())
}

/// The completions from elsewhere held for these people, by (person, course id, date).
/// A statement of one table: planned for an empty register (a first import), a join
/// with it rescanned the growing table once per row and call.
pub(super) async fn import_held(
    conn: &mut PgConnection,
    numbers: &[&str],
) -> Result<HashMap<(String, String, NaiveDate), Existing>, Error> {
    let held = sqlx::query!(
        "SELECT id, employee_number, course_id, completion_date, expiry_date, source,
                source_reference, previous_organisation, revoked
         FROM completion WHERE cohort_uid IS NULL AND employee_number = ANY($1)",
        numbers as &[&str],
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(held
        .into_iter()
        .map(|h| {
            let key = (h.employee_number, h.course_id, h.completion_date);
            let existing = Existing {
                id: h.id,
                expiry_date: h.expiry_date,
                source: h.source,
                source_reference: h.source_reference,
                previous_organisation: h.previous_organisation,
                revoked: h.revoked,
            };
            (key, existing)
        })
        .collect())
}

/// Inserts imported completions none is held for (the caller looked, under the register
/// writers' lock): each takes a place in the history. A plain insert: no conflict check
/// per row, which cost a third of an import. Returns their ids.
pub(super) async fn import_insert(
    conn: &mut PgConnection,
    rows: &[&Upsert<'_>],
    imported_by: &str,
) -> Result<Vec<Uuid>, Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = rows.iter().map(|_| Uuid::now_v7()).collect();
    let numbers: Vec<&str> = rows
        .iter()
        .map(|u| u.row.employee_number.as_str())
        .collect();
    let courses: Vec<&str> = rows.iter().map(|u| u.course_id.as_str()).collect();
    let dates: Vec<NaiveDate> = rows.iter().map(|u| u.row.completion_date).collect();
    let expiries: Vec<Option<NaiveDate>> = rows.iter().map(|u| u.expiry_date).collect();
    let sources: Vec<&str> = rows.iter().map(|u| u.row.source.as_str()).collect();
    let references: Vec<&str> = rows
        .iter()
        .map(|u| u.row.source_reference.as_str())
        .collect();
    let organisations: Vec<&str> = rows
        .iter()
        .map(|u| u.row.previous_organisation.as_str())
        .collect();
    sqlx::query!(
        "INSERT INTO completion (id, employee_number, course_id, cohort_uid, completion_date,
                                 expiry_date, change_seq, source, source_reference,
                                 previous_organisation, imported_by)
         SELECT m.id, m.employee_number, m.course_id, NULL, m.completion_date, m.expiry_date,
                nextval('register_change_seq'), m.source, m.source_reference,
                m.previous_organisation, $9
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::date[], $5::date[], $6::text[],
                     $7::text[], $8::text[])
              AS m(id, employee_number, course_id, completion_date, expiry_date, source,
                   source_reference, previous_organisation)
         ORDER BY m.employee_number, m.course_id, m.completion_date",
        &ids,
        &numbers as &[&str],
        &courses as &[&str],
        &dates,
        &expiries as &[Option<NaiveDate>],
        &sources as &[&str],
        &references as &[&str],
        &organisations as &[&str],
        imported_by,
    )
    .execute(&mut *conn)
    .await?;
    Ok(ids)
}

/// Updates held completions whose source, evidence or expiry changed (or that were
/// revoked): each takes a new place in the history. Returns how many.
pub(super) async fn import_update(
    conn: &mut PgConnection,
    rows: &[&Upsert<'_>],
) -> Result<usize, Error> {
    let ids: Vec<Uuid> = rows
        .iter()
        .filter_map(|u| u.held.as_ref().map(|h| h.id))
        .collect();
    if ids.is_empty() {
        return Ok(0);
    }
    let expiries: Vec<Option<NaiveDate>> = rows.iter().map(|u| u.expiry_date).collect();
    let sources: Vec<&str> = rows.iter().map(|u| u.row.source.as_str()).collect();
    let references: Vec<&str> = rows
        .iter()
        .map(|u| u.row.source_reference.as_str())
        .collect();
    let organisations: Vec<&str> = rows
        .iter()
        .map(|u| u.row.previous_organisation.as_str())
        .collect();
    let done = sqlx::query!(
        "UPDATE completion AS k SET expiry_date = m.expiry_date, source = m.source,
                source_reference = m.source_reference,
                previous_organisation = m.previous_organisation, revoked = false,
                change_seq = nextval('register_change_seq')
         FROM (SELECT * FROM unnest($1::uuid[], $2::date[], $3::text[], $4::text[], $5::text[])
                   AS m(id, expiry_date, source, source_reference, previous_organisation)
               ORDER BY id) AS m
         WHERE k.id = m.id",
        &ids,
        &expiries as &[Option<NaiveDate>],
        &sources as &[&str],
        &references as &[&str],
        &organisations as &[&str],
    )
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() as usize)
}

/// The register of the staff now at `sites` (`None`: every site), for a reconciliation.
pub(super) async fn held(
    conn: &mut PgConnection,
    sites: Option<&[String]>,
) -> Result<Vec<Held>, Error> {
    let rows = sqlx::query!(
        "SELECT k.employee_number, s.forename, s.surname, k.course_id, co.code,
                k.completion_date, k.source
         FROM completion k
         JOIN staff s ON s.employee_number = k.employee_number
         JOIN course co ON co.id = k.course_id
         WHERE NOT k.revoked AND ($1::text[] IS NULL OR s.site = ANY($1))",
        sites,
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Held {
            employee_number: r.employee_number,
            display_name: format!("{} {}", r.forename, r.surname),
            course_id: r.course_id,
            course_code: r.code,
            completion_date: r.completion_date,
            source: Source::from_column(&r.source),
        })
        .collect())
}

/// Each ESR record, in order, resolved to a person now at `sites` (`None`: any site) and
/// to the course whose ESR competence id or name, code or id it gives. One statement.
pub(super) async fn resolve_esr(
    conn: &mut PgConnection,
    records: &[EsrRecord],
    sites: Option<&[String]>,
) -> Result<Vec<Resolved>, Error> {
    let indexes: Vec<i32> = records.iter().map(|r| r.index).collect();
    let numbers: Vec<&str> = records.iter().map(|r| r.employee_number.as_str()).collect();
    let competences: Vec<&str> = records.iter().map(|r| r.competence.as_str()).collect();
    let rows = sqlx::query!(
        r#"SELECT m.idx AS "idx!", s.forename AS "forename?", s.surname AS "surname?",
                  co.id AS "course_id?", co.code AS "code?"
           FROM unnest($1::int4[], $2::text[], $3::text[]) AS m(idx, employee_number, competence)
           LEFT JOIN staff s ON s.employee_number = m.employee_number
                            AND ($4::text[] IS NULL OR s.site = ANY($4))
           LEFT JOIN LATERAL (
               SELECT c.id, c.code FROM course c
               WHERE c.esr_competence_id = m.competence OR c.esr_competence_name = m.competence
                  OR c.code = m.competence OR c.id = m.competence
               ORDER BY c.esr_competence_id = m.competence DESC,
                        c.esr_competence_name = m.competence DESC, c.code = m.competence DESC
               LIMIT 1) co ON true
           ORDER BY m.idx"#,
        &indexes,
        &numbers as &[&str],
        &competences as &[&str],
        sites,
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| match (r.course_id, r.code, r.forename, r.surname) {
            (None, _, _, _) | (Some(_), None, _, _) => Resolved::OtherCompetence,
            (Some(course_id), Some(course_code), Some(f), Some(s)) => Resolved::Course {
                display_name: format!("{f} {s}"),
                course_id,
                course_code,
            },
            (Some(_), Some(_), _, _) => Resolved::NotAtSites,
        })
        .collect())
}

/// A completion with its id and its learner's current site (whose callers read it).
#[derive(Debug, Clone)]
pub(crate) struct Located {
    pub(crate) id: Uuid,
    pub(crate) site: String,
    pub(crate) completion: pb::Completion,
}

/// These completions, by learner: one statement however many.
pub(crate) async fn by_ids(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<Located>, Error> {
    let rows = completion_rows!(
        &Filter::default(),
        None::<&[String]>,
        "AND k.id = ANY($16) ORDER BY s.surname, s.forename, k.id",
        ids
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(Located {
                id: r.id,
                site: r.learner_site.clone(),
                completion: r.try_into()?,
            })
        })
        .collect()
}

struct CompletionRow {
    id: Uuid,
    employee_number: String,
    forename: String,
    surname: String,
    course_id: String,
    course_display_name: String,
    cohort_site: Option<String>,
    cohort_id: Option<String>,
    completion_date: NaiveDate,
    expiry_date: Option<NaiveDate>,
    source: String,
    source_reference: String,
    previous_organisation: String,
    imported_by: String,
    create_time: chrono::DateTime<chrono::Utc>,
    update_time: chrono::DateTime<chrono::Utc>,
    learner_site: String,
}

/// A completion's cohort name, or empty for one from elsewhere (no cohort).
fn cohort_name(site: Option<String>, id: Option<String>) -> Result<String, Error> {
    match id {
        Some(id) => Ok(Owner::from_column(site)?.child(cohorts::COLLECTION, &id)),
        None => Ok(String::new()),
    }
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
            cohort: cohort_name(r.cohort_site, r.cohort_id)?,
            completion_date: Some(date(r.completion_date)),
            expiry_date: r.expiry_date.map(date),
            source: Source::from_column(&r.source).to_pb() as i32,
            source_reference: r.source_reference,
            previous_organisation: r.previous_organisation,
            imported_by: r.imported_by,
            create_time: Some(timestamp(r.create_time)),
            update_time: Some(timestamp(r.update_time)),
        })
    }
}

/// What a register page asks, beyond whose it is.
#[derive(Debug)]
pub(super) struct Wanted<'a> {
    /// The filter's terms and the request's own course and dates.
    pub(super) filter: &'a Filter,
    /// Last changed in this range (a nightly extract's).
    pub(super) updated: Range<DateTime<Utc>>,
    /// Newest completion first, or oldest change first.
    pub(super) order: Order,
}

/// One page of the register of learners now at `sites` (`None`: every site), or of one
/// `person`'s: newest first, or oldest change first (along `completion_update_time`).
pub(super) async fn list(
    conn: &mut PgConnection,
    sites: Option<Vec<String>>,
    person: Option<&str>,
    wanted: &Wanted<'_>,
    page: &Page,
) -> Result<(Vec<pb::Completion>, String), Error> {
    let (from, before) = (wanted.updated.from, wanted.updated.before);
    let rows = match wanted.order {
        Order::Default => {
            let after_date = page.parsed_key::<NaiveDate>(0)?;
            let after_id = page.parsed_key::<Uuid>(1)?;
            completion_rows!(
                wanted.filter,
                sites.as_deref(),
                "AND NOT k.revoked
                   AND ($16::date IS NULL OR k.completion_date < $16
                        OR (k.completion_date = $16 AND k.id > $17))
                   AND ($19::text IS NULL OR k.employee_number = $19)
                   AND ($20::timestamptz IS NULL OR k.update_time >= $20)
                   AND ($21::timestamptz IS NULL OR k.update_time < $21)
                 ORDER BY k.completion_date DESC, k.id
                 LIMIT $18",
                after_date,
                after_id,
                page.limit(),
                person,
                from,
                before,
            )
            .fetch_all(&mut *conn)
            .await?
        }
        Order::UpdateTime => {
            // The keyset is (id, update_time): `Order::key`'s.
            let after_id = page.parsed_key::<Uuid>(0)?;
            let after_time = wanted.order.after_time(page)?;
            completion_rows!(
                wanted.filter,
                sites.as_deref(),
                "AND NOT k.revoked
                   AND ($16::timestamptz IS NULL OR (k.update_time, k.id) > ($16, $17))
                   AND ($19::text IS NULL OR k.employee_number = $19)
                   AND ($20::timestamptz IS NULL OR k.update_time >= $20)
                   AND ($21::timestamptz IS NULL OR k.update_time < $21)
                 ORDER BY k.update_time, k.id
                 LIMIT $18",
                after_time,
                after_id,
                page.limit(),
                person,
                from,
                before,
            )
            .fetch_all(&mut *conn)
            .await?
        }
    };
    let order = wanted.order;
    let (rows, next) = page.finish(rows, |r| match order {
        Order::Default => vec![r.completion_date.to_string(), r.id.to_string()],
        Order::UpdateTime => order.key(r.id.to_string(), r.update_time),
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
        &Filter::default(),
        None::<&[String]>,
        "AND k.employee_number = $16 AND NOT k.revoked ORDER BY k.completion_date DESC, k.id",
        number,
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(TryInto::try_into).collect()
}

/// What the summary's breakdown groups by.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Dimensions {
    pub(super) course: bool,
    pub(super) site: bool,
    pub(super) period: bool,
    pub(super) staff_group: bool,
    pub(super) pay_band: bool,
    pub(super) department: bool,
    pub(super) ward: bool,
}

/// The most groups a breakdown may have: its answer stays well under a client's 4 MiB.
pub(super) const MAX_GROUPS: i64 = 10_000;

/// The training summary of learners at `sites` (`None`: every site) as `filter` narrows
/// it: completions per course, site and period, totals per course, the people trained, and
/// the breakdown by `by` with each group's headcount.
pub(super) async fn summary(
    conn: &mut PgConnection,
    sites: Option<Vec<String>>,
    period: pb::SummaryPeriod,
    filter: &Filter,
    by: Dimensions,
) -> Result<pb::GetTrainingSummaryResponse, Error> {
    // A financial year (April to March) is a calendar year shifted by three months.
    let (unit, shift) = match period {
        pb::SummaryPeriod::Unspecified | pb::SummaryPeriod::Year => ("year", 0),
        pb::SummaryPeriod::Quarter => ("quarter", 0),
        pb::SummaryPeriod::Month => ("month", 0),
        pb::SummaryPeriod::FinancialYear => ("year", 3),
    };
    let sites = sites.as_deref();
    let rows = filtered!(
        query(),
        r#"SELECT co.code, s.site,
                  (date_trunc($16::text, k.completion_date - make_interval(months => $17))
                   + make_interval(months => $17))::date AS "period!",
                  count(*) AS "completions!"
           FROM completion k JOIN staff s ON s.employee_number = k.employee_number
           JOIN course co ON co.id = k.course_id
           WHERE NOT k.revoked AND "#,
        " AND ",
        "GROUP BY 1, 2, 3 ORDER BY 3, 1, 2",
        filter,
        sites,
        unit,
        shift
    )
    .fetch_all(&mut *conn)
    .await?;
    let totals = filtered!(
        query(),
        r#"SELECT co.code, count(*) AS "completions!",
                  count(DISTINCT k.employee_number) AS "staff!"
           FROM completion k JOIN staff s ON s.employee_number = k.employee_number
           JOIN course co ON co.id = k.course_id
           WHERE NOT k.revoked AND "#,
        " AND ",
        "GROUP BY 1 ORDER BY 1",
        filter,
        sites
    )
    .fetch_all(&mut *conn)
    .await?;
    let staff_trained = filtered!(
        query(),
        r#"SELECT count(DISTINCT k.employee_number) AS "staff!"
           FROM completion k JOIN staff s ON s.employee_number = k.employee_number
           WHERE NOT k.revoked AND "#,
        " AND ",
        "",
        filter,
        sites
    )
    .fetch_one(&mut *conn)
    .await?
    .staff;
    // One statement: each dimension not grouped by is a constant ('' or NULL), so one
    // GROUP BY serves every choice. `people` are the staff in scope (headcount: the active
    // ones now); every group of them appears, with or without completions.
    let groups = filtered!(
        query(),
        r#"WITH people AS MATERIALIZED (
               SELECT s.employee_number, s.active,
                      CASE WHEN $18 THEN s.site ELSE '' END AS site,
                      CASE WHEN $19 THEN s.staff_group ELSE '' END AS staff_group,
                      CASE WHEN $20 THEN s.pay_band ELSE '' END AS pay_band,
                      CASE WHEN $21 THEN s.department ELSE '' END AS department,
                      CASE WHEN $22 THEN s.ward ELSE '' END AS ward
               FROM staff s WHERE "#,
        r#"), done AS (
               SELECT p.site, p.staff_group, p.pay_band, p.department, p.ward, p.active,
                      p.employee_number,
                      CASE WHEN $23 THEN co.code ELSE '' END AS course,
                      CASE WHEN $24 THEN
                          (date_trunc($16::text, k.completion_date - make_interval(months => $17))
                           + make_interval(months => $17))::date END AS period
               FROM completion k JOIN people p ON p.employee_number = k.employee_number
               JOIN course co ON co.id = k.course_id
               WHERE NOT k.revoked AND "#,
        r#"), trained AS (
               SELECT site, staff_group, pay_band, department, ward, course, period,
                      count(*) AS completions,
                      count(DISTINCT employee_number) FILTER (WHERE active) AS staff_trained
               FROM done GROUP BY 1, 2, 3, 4, 5, 6, 7
           ), heads AS (
               SELECT site, staff_group, pay_band, department, ward,
                      count(*) FILTER (WHERE active) AS headcount
               FROM people GROUP BY 1, 2, 3, 4, 5
           )
           SELECT site AS "site!", staff_group AS "staff_group!", pay_band AS "pay_band!",
                  department AS "department!", ward AS "ward!",
                  coalesce(t.course, '') AS "course!", t.period,
                  coalesce(t.completions, 0) AS "completions!",
                  coalesce(t.staff_trained, 0) AS "staff_trained!",
                  coalesce(h.headcount, 0) AS "headcount!",
                  (SELECT count(*) FILTER (WHERE active) FROM people) AS "everyone!"
           FROM heads h FULL JOIN trained t
               USING (site, staff_group, pay_band, department, ward)
           WHERE h.headcount > 0 OR t.completions IS NOT NULL
           ORDER BY t.period NULLS LAST, 6, 1, 2, 3, 4, 5
           LIMIT $25"#,
        filter,
        sites,
        unit,
        shift,
        by.site,
        by.staff_group,
        by.pay_band,
        by.department,
        by.ward,
        by.course,
        by.period,
        MAX_GROUPS + 1
    )
    .fetch_all(&mut *conn)
    .await?;
    if groups.len() as i64 > MAX_GROUPS {
        return Err(Error::invalid(
            "group_by",
            format!(
                "makes more than {MAX_GROUPS} groups: group by fewer fields, or narrow the \
                 summary with `filter`"
            ),
        ));
    }
    let headcount = groups.first().map_or(0, |g| g.everyone);
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
        breakdown: groups
            .into_iter()
            .map(|g| pb::TrainingBreakdownRow {
                course_code: g.course,
                site: g.site,
                period_start: g.period.map(date),
                staff_group: g.staff_group,
                pay_band: g.pay_band,
                department: g.department,
                ward: g.ward,
                completions: g.completions,
                staff_trained: g.staff_trained,
                headcount: g.headcount,
                coverage_percent: if g.headcount > 0 {
                    g.staff_trained as f64 * 100.0 / g.headcount as f64
                } else {
                    0.0
                },
            })
            .collect(),
        headcount,
    })
}

/// Up to `limit` register changes after `cursor`, oldest first, as ESR competence records:
/// each with its course's competence as it is now (the title when the course names none).
pub(super) async fn changes_since(
    conn: &mut PgConnection,
    cursor: i64,
    limit: i64,
) -> Result<Vec<pb::TrainingRecordChange>, Error> {
    let rows = sqlx::query_as!(
        ChangeRow,
        r#"SELECT k.change_seq, k.revoked, k.employee_number, s.assignment_number,
                co.esr_competence_id AS competence_id,
                coalesce(nullif(co.esr_competence_name, ''), co.display_name) AS "competence_name!",
                co.code AS course_code,
                k.completion_date, k.expiry_date, c.site AS "cohort_site?", c.id AS "cohort_id?",
                k.source, k.source_reference, k.previous_organisation
         FROM completion k
         JOIN staff s ON s.employee_number = k.employee_number
         JOIN course co ON co.id = k.course_id
         LEFT JOIN cohort c ON c.uid = k.cohort_uid
         WHERE k.change_seq > $1
         ORDER BY k.change_seq
         LIMIT $2"#,
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
            let provenance = Source::from_column(&r.source);
            let source = match provenance {
                Source::Course => cohort_name(r.cohort_site, r.cohort_id)?,
                Source::Historic | Source::Esr | Source::Transfer => {
                    imported_source(provenance, &r.previous_organisation, &r.source_reference)
                }
            };
            Ok(pb::TrainingRecordChange {
                cursor: r.change_seq.to_string(),
                kind: kind as i32,
                employee_number: r.employee_number,
                assignment_number: r.assignment_number,
                competence_name: r.competence_name,
                course_code: r.course_code,
                competence_id: r.competence_id,
                achieved_date: Some(date(r.completion_date)),
                expiry_date: r.expiry_date.map(date),
                source,
                provenance: provenance.to_pb() as i32,
            })
        })
        .collect()
}

struct ChangeRow {
    change_seq: i64,
    revoked: bool,
    employee_number: String,
    assignment_number: String,
    competence_id: String,
    competence_name: String,
    course_code: String,
    completion_date: NaiveDate,
    expiry_date: Option<NaiveDate>,
    cohort_site: Option<String>,
    cohort_id: Option<String>,
    source: String,
    source_reference: String,
    previous_organisation: String,
}

/// What the export names as an imported completion's source: where it comes from, the
/// organisation and the reference, e.g. `inter-authority transfer: Mid Essex (IAT 2231)`.
fn imported_source(source: Source, organisation: &str, reference: &str) -> String {
    let mut s = source.label().to_owned();
    let detail = match (organisation.is_empty(), reference.is_empty()) {
        (true, true) => String::new(),
        (false, true) => organisation.to_owned(),
        (true, false) => reference.to_owned(),
        (false, false) => format!("{organisation} ({reference})"),
    };
    if !detail.is_empty() {
        s.push_str(": ");
        s.push_str(&detail);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cohorts::CohortRef;
    use crate::testing::{cohort, course, day, page, site, staff, transaction};
    use crate::{courses, enrolments, sessions};

    /// The course `lean` of two sessions, the cohort `sites/BAS/cohorts/a` (sessions on
    /// 2026-03-02 and 03-09), and learners 1 (BAS) and 2 (SOU) enrolled on it.
    async fn setup(conn: &mut PgConnection) -> anyhow::Result<CohortRef> {
        course(conn, "lean", 2).await?;
        let c = cohort(conn, site("BAS"), "a", "lean", 5).await?;
        for (number, site, surname) in [("1", "BAS", "Bell"), ("2", "SOU", "Ames")] {
            staff(conn, number, site, surname, "Pat").await?;
            enrolments::store::insert(conn, &c, number, "enrolled").await?;
        }
        Ok(c)
    }

    /// The outcome of `numbers` completing on `date`.
    fn met(numbers: &[&str], date: &str) -> Outcome {
        let mut o = Outcome::default();
        for n in numbers {
            o.ids.push(Uuid::now_v7());
            o.met.push(n.to_string());
            o.days.push(day(date));
            o.expiries.push(None);
        }
        o
    }

    fn learners(cs: &[pb::Completion]) -> Vec<&str> {
        cs.iter()
            .map(|c| c.staff.rsplit('/').next().unwrap_or_default())
            .collect()
    }

    #[tokio::test]
    async fn attended_dates_come_in_date_order_and_absences_not_at_all() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let c = setup(&mut conn).await?;
        sessions::store::set_date(&mut conn, c.uid, 1, Some(day("2026-03-16"))).await?;
        let both = ["1", "2"].map(String::from);
        // What attendance::store::record writes (its store is private to attendance).
        for (session, number, status) in [
            (1, "1", "attended"),
            (2, "1", "caught_up"),
            (1, "2", "absent"),
        ] {
            sqlx::query!(
                "INSERT INTO attendance (cohort_uid, session_number, employee_number, status)
                 VALUES ($1, $2, $3, $4)",
                c.uid,
                session,
                number,
                status,
            )
            .execute(&mut *conn)
            .await?;
        }
        let mut got = attended(&mut conn, c.uid, &both).await?;
        got.sort();
        assert_eq!(
            got,
            [
                ("1".into(), vec![day("2026-03-09"), day("2026-03-16")]),
                ("2".into(), Vec::new())
            ]
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_completion_is_recorded_once_revoked_and_restored_in_the_history()
    -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let c = setup(&mut conn).await?;
        lock(&mut conn).await?;
        let first = achieve(&mut conn, "lean", c.uid, &met(&["1", "2"], "2026-03-09")).await?;
        // Returned in learner order, as inserted: both new.
        assert!(first.iter().all(|a| a.appeared));
        let first: Vec<Uuid> = first.into_iter().map(|a| a.id).collect();
        assert_eq!(first.len(), 2);
        let made = by_ids(&mut conn, &first).await?;
        assert_eq!(made[0].site, "SOU");
        let made: Vec<_> = made.into_iter().map(|l| l.completion).collect();
        // By learner's name: Ames (2) before Bell (1).
        assert_eq!(learners(&made), ["2", "1"]);
        assert_eq!(made[1].cohort, "sites/BAS/cohorts/a");
        assert_eq!(made[1].name, format!("staff/1/completions/{}", first[0]));
        // The same again is no change; a new date or a revocation is.
        let again = achieve(&mut conn, "lean", c.uid, &met(&["1"], "2026-03-09")).await?;
        assert!(again.is_empty());
        let redated = achieve(&mut conn, "lean", c.uid, &met(&["1"], "2026-03-16")).await?;
        let moved = Achieved {
            id: first[0],
            appeared: false,
        };
        assert_eq!(redated, [moved], "the completion keeps its id");
        let (achieved, revoked) = (
            pb::TrainingRecordChangeKind::Achieved as i32,
            pb::TrainingRecordChangeKind::Revoked as i32,
        );
        // The history holds each completion once, at its latest change, in change order.
        let history = async |conn: &mut PgConnection| -> anyhow::Result<Vec<(String, i32)>> {
            let changes = changes_since(conn, 0, 100).await?;
            Ok(changes
                .into_iter()
                .map(|c| (c.employee_number, c.kind))
                .collect())
        };
        let revoked_now = revoke(&mut conn, c.uid, &["2".into()]).await?;
        let gone = Revoked {
            employee_number: "2".into(),
            id: first[1],
            site: "SOU".into(),
        };
        assert_eq!(revoked_now, [gone]);
        assert!(revoke(&mut conn, c.uid, &["2".into()]).await?.is_empty());
        assert!(of_staff(&mut conn, "2").await?.is_empty());
        assert_eq!(
            history(&mut conn).await?,
            [("1".into(), achieved), ("2".into(), revoked)]
        );
        let restored = achieve(&mut conn, "lean", c.uid, &met(&["2"], "2026-03-09")).await?;
        let back = Achieved {
            id: first[1],
            appeared: true,
        };
        assert_eq!(restored, [back], "restored, it appears again");
        assert_eq!(
            history(&mut conn).await?,
            [("1".into(), achieved), ("2".into(), achieved)]
        );
        let changes = changes_since(&mut conn, 0, 100).await?;
        // A course naming no ESR competence exports its title, and no competence id.
        assert_eq!(changes[0].competence_name, "Course lean");
        assert_eq!(changes[0].competence_id, "");
        assert_eq!(changes[0].achieved_date, Some(date(day("2026-03-16"))));
        let cursor: i64 = changes[0].cursor.parse()?;
        assert_eq!(changes_since(&mut conn, cursor, 1).await?.len(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn each_change_carries_its_course_s_esr_competence_as_it_now_is() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let c = setup(&mut conn).await?;
        lock(&mut conn).await?;
        achieve(&mut conn, "lean", c.uid, &met(&["1"], "2026-03-09")).await?;
        let named = courses::Changes {
            esr_competence_id: Some("10492".into()),
            esr_competence_name: Some("123|LOCAL|Lean for Healthcare|".into()),
            ..Default::default()
        };
        courses::store::update(&mut conn, "lean", &named).await?;
        let changes = changes_since(&mut conn, 0, 100).await?;
        assert_eq!(
            (
                changes[0].competence_id.as_str(),
                changes[0].competence_name.as_str(),
                changes[0].course_code.as_str()
            ),
            ("10492", "123|LOCAL|Lean for Healthcare|", "LEAN")
        );
        Ok(())
    }

    /// An import row of `number` for `course` on `on`, from the historic register.
    fn historic(index: i32, number: &str, course: &str, on: &str) -> Row {
        Row {
            index,
            employee_number: number.into(),
            course: course.into(),
            completion_date: day(on),
            source: Source::Historic,
            source_reference: "Register 2019".into(),
            previous_organisation: String::new(),
            expiry_date: None,
        }
    }

    #[tokio::test]
    async fn an_imported_completion_counts_in_the_register_once_and_never_over_one_earned_here()
    -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let c = setup(&mut conn).await?;
        lock(&mut conn).await?;
        // 1 (BAS) completed `lean` here; 2 (SOU) did not.
        achieve(&mut conn, "lean", c.uid, &met(&["1"], "2026-03-09")).await?;
        let rows = [
            historic(0, "1", "LEAN", "2019-05-01"),
            historic(1, "2", "lean", "2019-05-01"),
            historic(2, "2", "NOPE", "2019-05-01"),
            historic(3, "9", "LEAN", "2019-05-01"),
        ];
        let bas_only = ["BAS".to_owned()];
        let found = import_lookup(&mut conn, &rows, Some(&bas_only)).await?;
        let seen: Vec<_> = found
            .iter()
            .map(|f| (f.index, f.in_scope, f.course.clone(), f.earned_here))
            .collect();
        assert_eq!(
            seen,
            [
                (0, true, Some(("lean".into(), 0)), true),
                (1, false, Some(("lean".into(), 0)), false),
                (2, false, None, false),
                (3, false, Some(("lean".into(), 0)), false),
            ]
        );
        // Trust-wide, 2 is in scope; the import of 2 lands once however often it is sent.
        let found = import_lookup(&mut conn, &rows[1..2], None).await?;
        assert!(found[0].in_scope && !found[0].earned_here);
        assert!(import_held(&mut conn, &["2"]).await?.is_empty());
        let upsert = Upsert {
            row: &rows[1],
            site: "BAS".into(),
            course_id: "lean".into(),
            expiry_date: None,
            held: None,
        };
        assert_eq!(import_insert(&mut conn, &[&upsert], "esr").await?.len(), 1);
        // Looked up again, it is held as sent: nothing to change.
        let mut held = import_held(&mut conn, &["2"]).await?;
        let held = held
            .remove(&("2".into(), "lean".into(), rows[1].completion_date))
            .expect("held now");
        let again = Upsert {
            held: Some(held.clone()),
            ..upsert.clone()
        };
        assert!(!again.changes(), "the same row again changes nothing");
        let mut changed = rows[1].clone();
        changed.source_reference = "Register 2019, p. 4".into();
        let update = Upsert {
            row: &changed,
            ..again
        };
        assert!(update.changes());
        assert_eq!(import_update(&mut conn, &[&update]).await?, 1);
        // In the register, the summary and the history, marked with its source.
        let mine = of_staff(&mut conn, "2").await?;
        assert_eq!(mine.len(), 1);
        assert_eq!(
            (
                mine[0].source,
                mine[0].cohort.as_str(),
                mine[0].source_reference.as_str()
            ),
            (
                pb::CompletionSource::HistoricRegister as i32,
                "",
                "Register 2019, p. 4"
            )
        );
        assert_eq!(mine[0].imported_by, "esr");
        let s = summary(
            &mut conn,
            None,
            pb::SummaryPeriod::Year,
            &Filter::default(),
            Dimensions::default(),
        )
        .await?;
        assert_eq!(s.staff_trained, 2);
        let changes = changes_since(&mut conn, 0, 100).await?;
        let last = changes.last().expect("a change");
        assert_eq!(
            (
                last.employee_number.as_str(),
                last.provenance,
                last.source.as_str()
            ),
            (
                "2",
                pb::CompletionSource::HistoricRegister as i32,
                "historic register: Register 2019, p. 4"
            )
        );
        Ok(())
    }

    #[tokio::test]
    async fn the_register_filters_pages_and_sums_by_site_course_and_date() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let c = setup(&mut conn).await?;
        staff(&mut conn, "3", "BAS", "Cole", "Pat").await?;
        enrolments::store::insert(&mut conn, &c, "3", "enrolled").await?;
        let fund = cohort(&mut conn, site("BAS"), "f", "qsir-fund", 5).await?;
        achieve(&mut conn, "lean", c.uid, &met(&["1"], "2026-03-09")).await?;
        achieve(&mut conn, "lean", c.uid, &met(&["2"], "2026-04-13")).await?;
        achieve(&mut conn, "lean", c.uid, &met(&["3"], "2026-05-11")).await?;
        achieve(&mut conn, "qsir-fund", fund.uid, &met(&["1"], "2026-05-11")).await?;
        revoke(&mut conn, c.uid, &["3".into()]).await?;
        let no_filter = Filter::default();
        let newest_first = |filter| Wanted {
            filter,
            updated: Range::default(),
            order: Order::Default,
        };
        let all = newest_first(&no_filter);
        let (every, _) = list(&mut conn, None, None, &all, &page(50, "")?).await?;
        let dated: Vec<_> = every
            .iter()
            .map(|c| (c.course.as_str(), learners(std::slice::from_ref(c))[0]))
            .collect();
        assert_eq!(
            dated,
            [
                ("trust/courses/qsir-fund", "1"),
                ("trust/courses/lean", "2"),
                ("trust/courses/lean", "1")
            ]
        );
        let (first, next) = list(&mut conn, None, None, &all, &page(2, "")?).await?;
        let (second, end) = list(&mut conn, None, None, &all, &page(2, &next)?).await?;
        assert_eq!([first, second].concat(), every);
        assert!(end.is_empty());
        let bas = Some(vec!["BAS".to_owned()]);
        let (at_bas, _) = list(&mut conn, bas.clone(), None, &all, &page(50, "")?).await?;
        assert_eq!(learners(&at_bas), ["1", "1"]);
        let mut lean_in_spring = Filter::default();
        lean_in_spring.course.is = Some("lean".into());
        lean_in_spring.completed.from = Some(day("2026-03-10"));
        lean_in_spring.completed.before = Some(day("2026-05-11"));
        let spring = newest_first(&lean_in_spring);
        let (spring, _) = list(&mut conn, None, None, &spring, &page(50, "")?).await?;
        assert_eq!(learners(&spring), ["2"]);
        // By change, a page at a time: the same completions (written in one transaction, so
        // at one time, in id order), the revoked one still left out.
        let by_change = Wanted {
            order: Order::UpdateTime,
            ..newest_first(&no_filter)
        };
        let (first, next) = list(&mut conn, None, None, &by_change, &page(2, "")?).await?;
        let (second, end) = list(&mut conn, None, None, &by_change, &page(2, &next)?).await?;
        let changed = [first, second].concat();
        assert!(end.is_empty());
        let mut ids: Vec<&str> = every.iter().map(|c| c.name.as_str()).collect();
        ids.sort_by_key(|n| n.rsplit('/').next().map(str::to_owned));
        assert_eq!(
            changed.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ids
        );
        // Changed from a time after these: none.
        let later = Wanted {
            updated: Range {
                from: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
                before: None,
            },
            ..by_change
        };
        assert!(
            list(&mut conn, None, None, &later, &page(50, "")?)
                .await?
                .0
                .is_empty()
        );
        let s = summary(
            &mut conn,
            None,
            pb::SummaryPeriod::Month,
            &Filter::default(),
            Dimensions::default(),
        )
        .await?;
        let rows: Vec<_> = s
            .rows
            .iter()
            .map(|r| {
                (
                    r.course_code.as_str(),
                    r.site.as_str(),
                    r.period_start,
                    r.completions,
                )
            })
            .collect();
        let month = |d| Some(date(day(d)));
        assert_eq!(
            rows,
            [
                ("LEAN", "BAS", month("2026-03-01"), 1),
                ("LEAN", "SOU", month("2026-04-01"), 1),
                ("QSIR-FUND", "BAS", month("2026-05-01"), 1)
            ]
        );
        let totals: Vec<_> = s
            .course_totals
            .iter()
            .map(|t| (t.course_code.as_str(), t.completions, t.staff))
            .collect();
        assert_eq!(totals, [("LEAN", 2, 2), ("QSIR-FUND", 1, 1)]);
        assert_eq!(s.staff_trained, 2);
        let mut before_may = Filter::default();
        before_may.completed.before = Some(day("2026-05-01"));
        let at_bas = summary(
            &mut conn,
            bas,
            pb::SummaryPeriod::Year,
            &before_may,
            Dimensions::default(),
        );
        let at_bas = at_bas.await?;
        assert_eq!(at_bas.rows.len(), 1);
        assert_eq!(at_bas.rows[0].period_start, month("2026-01-01"));
        assert_eq!(at_bas.staff_trained, 1);
        // Financial years start on 1 April: March 2026 is in 2025-26, April and May in 2026-27.
        let fy = summary(
            &mut conn,
            None,
            pb::SummaryPeriod::FinancialYear,
            &Filter::default(),
            Dimensions::default(),
        )
        .await?;
        let periods: Vec<_> = fy
            .rows
            .iter()
            .map(|r| (r.course_code.as_str(), r.period_start))
            .collect();
        assert_eq!(
            periods,
            [
                ("LEAN", month("2025-04-01")),
                ("LEAN", month("2026-04-01")),
                ("QSIR-FUND", month("2026-04-01"))
            ]
        );
        Ok(())
    }
}
