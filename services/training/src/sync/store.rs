//! The sync's SQL: the locks and what the sync reads before the rows come (the ESR mapping,
//! and everyone stored: [`known`]), a temporary table the changed and new rows are copied
//! into (and the `COPY` text they are sent as), and the set-based statements that merge it
//! into `staff` and keep each person's site history (`site_since`, and an ended spell in
//! `staff_site_spell` per move).
//!
//! The statements that read or write `sync_row` stay unchecked `sqlx::query` of constant
//! text: a temporary table exists only in the sync's own session, so the build-time check
//! cannot describe them. Nothing is interpolated into them; every value is bound.

use std::io::Write as _;

use chrono::{DateTime, Datelike as _, NaiveDate, Utc};
use qi_platform::Error;
use sqlx::PgConnection;
use sqlx::postgres::PgCopyIn;
use tokio_stream::StreamExt as _;

use super::{Header, Row};

/// Takes the sync's locks, first thing: `staff` against another sync (readers are not
/// blocked), so what the sync reads of it stays true until it commits; and the ESR mapping
/// against changes (reads go on), so every row is placed by one mapping.
pub(super) async fn lock(conn: &mut PgConnection) -> Result<(), Error> {
    // The joins below may hash a whole extract: let them do it in memory.
    sqlx::query!("SET LOCAL work_mem = '64MB'")
        .execute(&mut *conn)
        .await?;
    sqlx::query!("LOCK TABLE staff IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *conn)
        .await?;
    sqlx::query!("LOCK TABLE esr_mapping IN SHARE MODE")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A mapping: (kind, code, site, ward).
pub(super) type Mapping = (String, String, String, String);

/// The whole ESR mapping (a few thousand codes at most).
pub(super) async fn mapping(conn: &mut PgConnection) -> Result<Vec<Mapping>, Error> {
    Ok(
        sqlx::query!("SELECT kind, code, site, ward FROM esr_mapping")
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .map(|m| (m.kind, m.code, m.site, m.ward))
            .collect(),
    )
}

/// About how many people `staff` holds, as the planner last counted (0 when it never has):
/// what the sync reserves for them.
pub(super) async fn staff_estimate(conn: &mut PgConnection) -> Result<usize, Error> {
    let rows = sqlx::query_scalar!("SELECT reltuples FROM pg_class WHERE oid = 'staff'::regclass")
        .fetch_one(&mut *conn)
        .await?;
    Ok(rows.max(0.0) as usize)
}

/// What the sync needs of a stored person to tell whether a row changes them.
#[derive(Debug)]
pub(super) struct Stored {
    pub(super) employee_number: String,
    pub(super) data_hash: i64,
    pub(super) site: String,
    pub(super) ward: String,
    pub(super) active: bool,
    pub(super) several: bool,
}

/// Everyone stored, streamed to `each` one at a time (a national workforce is never held
/// as rows).
pub(super) async fn known(
    conn: &mut PgConnection,
    mut each: impl FnMut(Stored),
) -> Result<(), Error> {
    let mut rows = sqlx::query_as!(
        Stored,
        r#"SELECT employee_number, data_hash, site, ward, active,
                  cardinality(other_assignments) > 0 AS "several!"
           FROM staff"#
    )
    .fetch(&mut *conn);
    while let Some(row) = rows.next().await {
        each(row?);
    }
    Ok(())
}

/// Every column but `other_assignments`, in the order [`write_copy`] writes them.
const COPY_ROWS: &str = "COPY sync_row (employee_number, placed_site, placed_ward,
    assignment_number, forename, surname, work_email, staff_group, job_role, occupation_code,
    area_of_work, position_title, pay_band, department, organisation, location,
    assignment_status, person_type, hire_date, leave_date, active, data_hash,
    source_update_time, row_number, is_primary, is_new) FROM STDIN";

/// Creates the sync's temporary table, the rows that may change `staff` as they arrive
/// (each placed, and marked new when its person is not stored), and starts copying into it
/// by [`COPY_ROWS`].
pub(super) async fn copy_in(conn: &mut PgConnection) -> Result<PgCopyIn<&mut PgConnection>, Error> {
    sqlx::query!(
        "CREATE TEMPORARY TABLE sync_row (
            employee_number text NOT NULL, placed_site text NOT NULL, placed_ward text NOT NULL,
            assignment_number text NOT NULL,
            forename text NOT NULL, surname text NOT NULL, work_email text NOT NULL,
            staff_group text NOT NULL, job_role text NOT NULL, occupation_code text NOT NULL,
            area_of_work text NOT NULL, position_title text NOT NULL, pay_band text NOT NULL,
            department text NOT NULL, organisation text NOT NULL, location text NOT NULL,
            assignment_status text NOT NULL,
            person_type text NOT NULL, hire_date date, leave_date date, active boolean NOT NULL,
            data_hash bigint NOT NULL, source_update_time timestamptz NOT NULL,
            row_number bigint NOT NULL, is_primary boolean NOT NULL, is_new boolean NOT NULL,
            other_assignments text[] NOT NULL DEFAULT '{}'
        ) ON COMMIT DROP"
    )
    .execute(&mut *conn)
    .await?;
    Ok(conn.copy_in_raw(COPY_ROWS).await?)
}

/// How a copied row is placed and marked: its site and ward, and whether its person is new.
pub(super) struct Placed<'a> {
    pub(super) site: &'a str,
    pub(super) ward: &'a str,
    pub(super) active: bool,
    pub(super) data_hash: i64,
    pub(super) new: bool,
}

/// Appends `row` as a line of `COPY` text in `sync_row`'s column order.
pub(super) fn write_copy(row: &Row, placed: &Placed<'_>, out: &mut Vec<u8>) {
    let fields = std::iter::once(row.employee_number.as_str())
        .chain([placed.site, placed.ward])
        .chain(row.text_fields().into_iter().skip(1).map(String::as_str));
    for s in fields {
        copy_text(s, out);
        out.push(b'\t');
    }
    for d in [row.hire_date, row.leave_date] {
        match d {
            Some(d) => {
                let _ = write!(out, "{:04}-{:02}-{:02}\t", d.year(), d.month(), d.day());
            }
            None => out.extend_from_slice(b"\\N\t"),
        }
    }
    let flag = |b: bool| if b { "t" } else { "f" };
    let _ = writeln!(
        out,
        "{}\t{}\t{}\t{}\t{}\t{}",
        flag(placed.active),
        placed.data_hash,
        row.source_update_time.format("%Y-%m-%d %H:%M:%S%.6f+00"),
        row.number,
        flag(row.primary),
        flag(placed.new)
    );
}

/// Writes `s` as a `COPY` text field (backslash escapes; validation already refused
/// control characters, but a field must never break the format).
fn copy_text(s: &str, out: &mut Vec<u8>) {
    for b in s.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

/// People whose first row was unchanged, so not copied, and who then sent another: that
/// first row, as stored, goes into `sync_row` for [`assignments`] to sort out with the rest.
#[derive(Debug, Default)]
pub(super) struct Revived {
    pub(super) employee_number: Vec<String>,
    pub(super) row_number: Vec<i64>,
    pub(super) is_primary: Vec<bool>,
    pub(super) source_update_time: Vec<DateTime<Utc>>,
}

/// Copies the [`Revived`] rows back from `staff`, each with its row number, primary flag and
/// time as the extract sent it.
pub(super) async fn revive(conn: &mut PgConnection, r: Revived) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO sync_row (employee_number, placed_site, placed_ward, assignment_number,
             forename, surname, work_email, staff_group, job_role, occupation_code,
             area_of_work, position_title, pay_band, department, organisation, location,
             assignment_status, person_type, hire_date, leave_date, active, data_hash,
             source_update_time, row_number, is_primary, is_new)
         SELECT s.employee_number, s.site, s.ward, s.assignment_number, s.forename, s.surname,
                s.work_email, s.staff_group, s.job_role, s.occupation_code, s.area_of_work,
                s.position_title, s.pay_band, s.department, s.organisation, s.location,
                s.assignment_status, s.person_type, s.hire_date, s.leave_date, s.active,
                s.data_hash, v.source_update_time, v.row_number, v.is_primary, false
         FROM unnest($1::text[], $2::bigint[], $3::boolean[], $4::timestamptz[])
             AS v(employee_number, row_number, is_primary, source_update_time)
         JOIN staff AS s ON s.employee_number = v.employee_number",
    )
    .bind(r.employee_number)
    .bind(r.row_number)
    .bind(r.is_primary)
    .bind(r.source_update_time)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A row of a person with several, refused: `field` is `assignment_number` (it repeats
/// row `earlier`'s) or `primary_assignment` (row `earlier` is the person's primary one).
#[derive(Debug, sqlx::FromRow)]
pub(super) struct Refusal {
    pub(super) row_number: i64,
    pub(super) employee_number: String,
    pub(super) field: String,
    pub(super) earlier: i64,
}

/// Sorts out the rows of the people with `several`: a row repeating an earlier row's
/// assignment is refused, then a primary row after the person's first primary one; of
/// the rest, the first primary row (else the first row) describes the person and carries
/// the others' numbers, in extract order, and the others are deleted. Returns how many rows
/// were refused and the first `limit` of them. Statements over those people's rows alone
/// (kept aside in `sync_assignment`), but for the one scan of `sync_row` that finds them.
pub(super) async fn assignments(
    conn: &mut PgConnection,
    several: &[String],
    limit: i64,
) -> Result<(i64, Vec<Refusal>), Error> {
    sqlx::query(
        "CREATE TEMPORARY TABLE sync_assignment ON COMMIT DROP AS
         WITH rows AS (
             SELECT row_number, employee_number, assignment_number, is_primary,
                    min(row_number) OVER (PARTITION BY employee_number, assignment_number)
                        AS same
             FROM sync_row WHERE employee_number = ANY($1)
         ), person AS (
             SELECT employee_number, min(row_number) FILTER (WHERE is_primary) AS primary_row,
                    coalesce(min(row_number) FILTER (WHERE is_primary), min(row_number))
                        AS describing
             FROM rows WHERE row_number = same GROUP BY employee_number
         )
         SELECT r.row_number, r.employee_number, r.assignment_number,
                CASE WHEN r.row_number <> r.same THEN 'assignment_number'
                     WHEN r.is_primary AND r.row_number <> p.primary_row
                         THEN 'primary_assignment' END AS refused,
                CASE WHEN r.row_number <> r.same THEN r.same ELSE p.primary_row END AS earlier,
                r.row_number = p.describing AS describes
         FROM rows AS r JOIN person AS p USING (employee_number)",
    )
    .bind(several)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE sync_row AS r SET other_assignments = o.others
         FROM (SELECT max(row_number) FILTER (WHERE describes) AS describing,
                      array_agg(assignment_number ORDER BY row_number)
                          FILTER (WHERE NOT describes AND refused IS NULL) AS others
               FROM sync_assignment GROUP BY employee_number) AS o
         WHERE r.row_number = o.describing AND o.others IS NOT NULL",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM sync_row AS r USING sync_assignment AS a
         WHERE r.row_number = a.row_number AND NOT a.describes",
    )
    .execute(&mut *conn)
    .await?;
    let (total,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM sync_assignment WHERE refused IS NOT NULL")
            .fetch_one(&mut *conn)
            .await?;
    let listed = sqlx::query_as(
        "SELECT row_number, employee_number, refused AS field, earlier FROM sync_assignment
         WHERE refused IS NOT NULL ORDER BY row_number LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok((total, listed))
}

/// What a merge changed in `staff`.
#[derive(Debug)]
pub(super) struct Merged {
    /// Known people whose data changed.
    pub(super) updated: i64,
    /// People who became inactive.
    pub(super) deactivated: i64,
    /// People new to `staff`.
    pub(super) inserted: i64,
}

/// Merges the copied rows into `staff`: updates the people already known, for a FULL
/// sync deactivates the `absent` (active people stored whom the extract does not name,
/// refused rows included), inserts the new ones, and keeps their site history (a move seen
/// `today` ends one spell and starts the next).
pub(super) async fn merge(
    conn: &mut PgConnection,
    header: &Header,
    today: NaiveDate,
    absent: &[String],
) -> Result<Merged, Error> {
    sqlx::query!(
        "CREATE TEMPORARY TABLE sync_changed (
            employee_number text NOT NULL, site text NOT NULL, kind text NOT NULL,
            verb text NOT NULL, old_site text
        ) ON COMMIT DROP"
    )
    .execute(&mut *conn)
    .await?;
    let (updated, mut deactivated): (i64, i64) = sqlx::query_as(UPDATE_KNOWN)
        .bind(&header.extract_id)
        .bind(today)
        .fetch_one(&mut *conn)
        .await?;
    if header.full && !absent.is_empty() {
        deactivated += sqlx::query(DEACTIVATE_ABSENT)
            .bind(absent)
            .bind(header.extract_time)
            .execute(&mut *conn)
            .await?
            .rows_affected() as i64;
    }
    let inserted = sqlx::query(INSERT_NEW)
        .bind(&header.extract_id)
        .bind(today)
        .execute(&mut *conn)
        .await?
        .rows_affected() as i64;
    Ok(Merged {
        updated,
        deactivated,
        inserted,
    })
}

/// Updates the people already in `staff` whose copied rows are newer and say something
/// new; returns (updated, deactivated). Only rows that differed from the stored person were
/// copied, so a re-sent extract brings nothing here. `todo` keeps what the changed were
/// (PostgreSQL 15's `RETURNING` sees only the new row). A person whose site changed starts
/// a spell there today (`$2`, never before the last began), and the spell that ended is
/// kept: one more row per move, none for anyone else. Each person changed is noted in
/// `sync_changed` with their change for the feed: `leave` for one no longer active,
/// `rejoin` for one active again, `move` for one at another site, else `updated`.
const UPDATE_KNOWN: &str = "WITH todo AS MATERIALIZED (
         SELECT r.*, s.site AS old_site, s.site_since AS old_since, s.active AS old_active
         FROM sync_row AS r JOIN staff AS s ON s.employee_number = r.employee_number
         WHERE NOT r.is_new
           -- Only newer data changes a record, so a late or repeated extract changes nothing.
           AND s.source_update_time < r.source_update_time
           AND (s.data_hash <> r.data_hash OR s.other_assignments <> r.other_assignments
                OR s.active <> r.active OR s.site <> r.placed_site OR s.ward <> r.placed_ward)
     ), changed AS (
         UPDATE staff AS s SET
             site = r.placed_site, ward = r.placed_ward, location = r.location,
             assignment_number = r.assignment_number,
             other_assignments = r.other_assignments, forename = r.forename,
             surname = r.surname, work_email = r.work_email, staff_group = r.staff_group,
             job_role = r.job_role, occupation_code = r.occupation_code,
             area_of_work = r.area_of_work, position_title = r.position_title,
             pay_band = r.pay_band, department = r.department, organisation = r.organisation,
             assignment_status = r.assignment_status, person_type = r.person_type,
             hire_date = r.hire_date, leave_date = r.leave_date, active = r.active,
             data_hash = r.data_hash, source_update_time = r.source_update_time,
             extract_id = $1,
             site_since = CASE WHEN r.placed_site <> r.old_site
                               THEN greatest(r.old_since, $2) ELSE r.old_since END
         FROM todo AS r
         WHERE s.employee_number = r.employee_number
         RETURNING r.old_active AND NOT s.active AS deactivated,
                   NOT r.old_active AND s.active AS rejoined,
                   s.employee_number, s.site, r.old_site, r.old_since,
                   s.site_since AS new_since, s.site <> r.old_site AS moved
     ), ended AS (
         INSERT INTO staff_site_spell (employee_number, site, start_date, end_date)
         SELECT employee_number, old_site, old_since, new_since FROM changed WHERE moved
         ORDER BY employee_number
     ), noted AS (
         INSERT INTO sync_changed (employee_number, site, kind, verb, old_site)
         SELECT employee_number, site,
                CASE WHEN deactivated OR rejoined OR moved THEN 'state_changed'
                     ELSE 'updated' END,
                CASE WHEN deactivated THEN 'leave' WHEN rejoined THEN 'rejoin'
                     WHEN moved THEN 'move' ELSE '' END,
                old_site
         FROM changed
     )
     SELECT count(*), count(*) FILTER (WHERE deactivated) FROM changed";

/// A FULL sync's absent (`$1`), active and not newer than the extract (`$2`), leave; each
/// is noted in `sync_changed`.
const DEACTIVATE_ABSENT: &str = "WITH gone AS (
         UPDATE staff SET active = false
         WHERE employee_number = ANY($1) AND active AND source_update_time < $2
         RETURNING employee_number, site
     )
     INSERT INTO sync_changed (employee_number, site, kind, verb, old_site)
     SELECT employee_number, site, 'state_changed', 'leave', site FROM gone";

/// Inserts the people new to `staff`, at their site since their hire date (else today,
/// `$2`): every new row of `sync_row`. The sync knew who is stored before the rows came,
/// and `staff` has been locked against other syncs since: no anti-join, no conflict check.
const INSERT_NEW: &str = "INSERT INTO staff (employee_number, site, assignment_number,
         other_assignments, forename, surname, work_email, staff_group, job_role,
         occupation_code, area_of_work, position_title, pay_band, department, organisation,
         location, ward, assignment_status, person_type, hire_date, leave_date, active,
         data_hash, source_update_time, extract_id, site_since)
     SELECT employee_number, placed_site, assignment_number, other_assignments, forename,
            surname, work_email, staff_group, job_role, occupation_code, area_of_work,
            position_title, pay_band, department, organisation, location, placed_ward,
            assignment_status, person_type, hire_date, leave_date, active, data_hash,
            source_update_time, $1, coalesce(hire_date, $2)
     FROM sync_row WHERE is_new";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_what_would_break_a_line() {
        let mut out = Vec::new();
        copy_text("a\\b\tc\nd\re", &mut out);
        assert_eq!(out, b"a\\\\b\\tc\\nd\\re");
    }
}
