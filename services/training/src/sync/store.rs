//! The sync's SQL: a temporary table the extract is copied into (and the `COPY` text it is
//! sent as), and the set-based statements that merge it into `staff` and keep each person's
//! site history (`staff_site_spell`).
//!
//! The statements that read or write `sync_row` stay unchecked `sqlx::query` of constant
//! text: a temporary table exists only in the sync's own session, so the build-time check
//! cannot describe them. Nothing is interpolated into them; every value is bound.

use std::io::Write as _;

use chrono::{Datelike as _, NaiveDate};
use qi_platform::Error;
use sqlx::PgConnection;
use sqlx::postgres::PgCopyIn;

use super::{Header, Others, Row};

/// Every column but `other_assignments`, in the order [`write_copy`] writes them.
const COPY_ROWS: &str = "COPY sync_row (employee_number, site, assignment_number, forename,
    surname, work_email, staff_group, job_role, occupation_code, area_of_work, position_title,
    pay_band, department, organisation, assignment_status, person_type, hire_date, leave_date,
    active, data_hash, source_update_time, row_number) FROM STDIN";

/// Creates the sync's temporary table, the extract's rows as they arrive (those that describe
/// a person), and starts copying into it by [`COPY_ROWS`].
pub(super) async fn copy_in(conn: &mut PgConnection) -> Result<PgCopyIn<&mut PgConnection>, Error> {
    sqlx::query!(
        "CREATE TEMPORARY TABLE sync_row (
            employee_number text NOT NULL, site text NOT NULL, assignment_number text NOT NULL,
            forename text NOT NULL, surname text NOT NULL, work_email text NOT NULL,
            staff_group text NOT NULL, job_role text NOT NULL, occupation_code text NOT NULL,
            area_of_work text NOT NULL, position_title text NOT NULL, pay_band text NOT NULL,
            department text NOT NULL, organisation text NOT NULL, assignment_status text NOT NULL,
            person_type text NOT NULL, hire_date date, leave_date date, active boolean NOT NULL,
            data_hash bigint NOT NULL, source_update_time timestamptz NOT NULL,
            row_number bigint NOT NULL, other_assignments text[] NOT NULL DEFAULT '{}'
        ) ON COMMIT DROP"
    )
    .execute(&mut *conn)
    .await?;
    Ok(conn.copy_in_raw(COPY_ROWS).await?)
}

/// Appends `row` as a line of `COPY` text in `sync_row`'s column order.
pub(super) fn write_copy(row: &Row, active: bool, data_hash: i64, out: &mut Vec<u8>) {
    for s in std::iter::once(&row.employee_number).chain(row.text_fields()) {
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
    let _ = writeln!(
        out,
        "{}\t{data_hash}\t{}\t{}",
        if active { "t" } else { "f" },
        row.source_update_time.format("%Y-%m-%d %H:%M:%S%.6f+00"),
        row.number
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

/// Merges the copied rows into `staff`: drops the `displaced` rows, corrects the rows of
/// people with several assignments (`others`), updates the people already known, for a
/// FULL sync deactivates the absent (never the `refused`), inserts the new ones, and keeps
/// their site history (a move seen `today` ends one spell and starts the next).
pub(super) async fn merge(
    conn: &mut PgConnection,
    header: &Header,
    today: NaiveDate,
    displaced: &[i64],
    others: Others,
    refused: &[String],
) -> Result<Merged, Error> {
    // The joins below hash a whole extract: let them do it in memory.
    sqlx::query!("SET LOCAL work_mem = '64MB'")
        .execute(&mut *conn)
        .await?;
    // Only the sync writes `staff`: one merging at a time (readers are not blocked) lets
    // new people be inserted plainly, without a per-row conflict check.
    sqlx::query!("LOCK TABLE staff IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *conn)
        .await?;
    if !displaced.is_empty() {
        sqlx::query(
            "DELETE FROM sync_row r USING unnest($1::bigint[]) AS d(row_number)
             WHERE r.row_number = d.row_number",
        )
        .bind(displaced)
        .execute(&mut *conn)
        .await?;
    }
    if !others.row.is_empty() {
        sqlx::query(
            "UPDATE sync_row r SET other_assignments = string_to_array(o.others, ','),
                                   data_hash = o.data_hash
             FROM unnest($1::bigint[], $2::text[], $3::bigint[])
                 AS o(row_number, others, data_hash)
             WHERE r.row_number = o.row_number",
        )
        .bind(others.row)
        .bind(others.others)
        .bind(others.data_hash)
        .execute(&mut *conn)
        .await?;
    }
    let (updated, mut deactivated): (i64, i64) = sqlx::query_as(UPDATE_KNOWN)
        .bind(&header.extract_id)
        .fetch_one(&mut *conn)
        .await?;
    // Before the insert, so it scans only the people known before this sync (the new
    // ones are in the extract by definition).
    if header.full {
        deactivated += sqlx::query(DEACTIVATE_ABSENT)
            .bind(header.extract_time)
            .bind(refused)
            .execute(&mut *conn)
            .await?
            .rows_affected() as i64;
    }
    let inserted = sqlx::query(INSERT_NEW)
        .bind(&header.extract_id)
        .execute(&mut *conn)
        .await?
        .rows_affected() as i64;
    // Two statements, not one: the open spell must be closed before the next one opens
    // (one open spell per person), and a statement's parts run in no set order.
    sqlx::query(CLOSE_SPELLS)
        .bind(today)
        .execute(&mut *conn)
        .await?;
    sqlx::query(OPEN_SPELLS)
        .bind(today)
        .execute(&mut *conn)
        .await?;
    Ok(Merged {
        updated,
        deactivated,
        inserted,
    })
}

/// Updates the people already in `staff` whose rows are newer; returns (updated: the data
/// changed, deactivated). `old` is the record as it was before the statement.
const UPDATE_KNOWN: &str = "WITH changed AS (
         UPDATE staff AS s SET
             site = r.site, assignment_number = r.assignment_number,
             other_assignments = r.other_assignments, forename = r.forename,
             surname = r.surname, work_email = r.work_email, staff_group = r.staff_group,
             job_role = r.job_role, occupation_code = r.occupation_code,
             area_of_work = r.area_of_work, position_title = r.position_title,
             pay_band = r.pay_band, department = r.department, organisation = r.organisation,
             assignment_status = r.assignment_status, person_type = r.person_type,
             hire_date = r.hire_date, leave_date = r.leave_date, active = r.active,
             data_hash = r.data_hash, source_update_time = r.source_update_time,
             extract_id = $1
         FROM sync_row AS r JOIN staff AS old ON old.employee_number = r.employee_number
         WHERE s.employee_number = r.employee_number
           -- Only newer data changes a record, so a late or repeated extract changes nothing.
           AND s.source_update_time < r.source_update_time
         RETURNING old.data_hash <> s.data_hash AS updated, old.active AND NOT s.active AS deactivated
     )
     SELECT count(*) FILTER (WHERE updated), count(*) FILTER (WHERE deactivated) FROM changed";

/// Inserts the people new to `staff`.
const INSERT_NEW: &str = "INSERT INTO staff (employee_number, site, assignment_number,
         other_assignments, forename, surname, work_email, staff_group, job_role,
         occupation_code, area_of_work, position_title, pay_band, department, organisation,
         assignment_status, person_type, hire_date, leave_date, active, data_hash,
         source_update_time, extract_id)
     SELECT r.employee_number, r.site, r.assignment_number, r.other_assignments, r.forename,
            r.surname, r.work_email, r.staff_group, r.job_role, r.occupation_code,
            r.area_of_work, r.position_title, r.pay_band, r.department, r.organisation,
            r.assignment_status, r.person_type, r.hire_date, r.leave_date, r.active,
            r.data_hash, r.source_update_time, $1
     FROM sync_row AS r
     WHERE NOT EXISTS (SELECT 1 FROM staff AS s WHERE s.employee_number = r.employee_number)";

/// Ends the open spell of each person in the extract whose site is no longer its site, on
/// `$1` (today; never before the spell began). A re-sent extract finds every open spell at
/// its person's site and changes nothing.
const CLOSE_SPELLS: &str = "UPDATE staff_site_spell AS h SET end_date = greatest(h.start_date, $1)
     FROM sync_row AS r JOIN staff AS s ON s.employee_number = r.employee_number
     WHERE h.employee_number = r.employee_number AND h.end_date IS NULL AND h.site <> s.site";

/// Opens a spell at their site for each person in the extract without an open one: a new
/// person (since their hire date when known) or one whose spell [`CLOSE_SPELLS`] ended
/// (since `$1`, today).
const OPEN_SPELLS: &str = "INSERT INTO staff_site_spell (employee_number, site, start_date)
     SELECT s.employee_number, s.site,
            CASE WHEN EXISTS (SELECT 1 FROM staff_site_spell AS p
                              WHERE p.employee_number = s.employee_number)
                 THEN $1 ELSE coalesce(s.hire_date, $1) END
     FROM sync_row AS r JOIN staff AS s ON s.employee_number = r.employee_number
     WHERE NOT EXISTS (SELECT 1 FROM staff_site_spell AS h
                       WHERE h.employee_number = s.employee_number AND h.end_date IS NULL)
     ORDER BY s.employee_number";

/// For a FULL sync: active staff the extract does not name (valid or refused) and not
/// updated since it was taken are deactivated.
const DEACTIVATE_ABSENT: &str = "UPDATE staff SET active = false
     WHERE active AND source_update_time < $1
       AND NOT EXISTS (SELECT 1 FROM sync_row AS r WHERE r.employee_number = staff.employee_number)
       AND NOT EXISTS (SELECT 1 FROM unnest($2::text[]) AS refused(e)
                       WHERE refused.e = staff.employee_number)";

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
