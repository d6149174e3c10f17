//! The sync's SQL: a temporary table the extract is copied into (and the `COPY` text it is
//! sent as), and the set-based statements that merge it into `staff` and keep each person's
//! site history (`site_since`, and an ended spell in `staff_site_spell` per move). A row
//! without a site is placed by the ESR mapping, joined in the merging statements
//! ([`placed_rows!`]); the rows it cannot place are found by one statement ([`unmapped`]).
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

/// `sync_row` with each row's place, as a subquery: `placed_site` is the row's own site,
/// else its location's mapped site, else its organisation's (NULL: unmapped, refused), and
/// `placed_ward` the ward of the first of those two mappings that is at `placed_site` and
/// names one (empty: none). The mapping is small, so this is a hash join per statement.
macro_rules! placed_rows {
    () => {
        "(SELECT r.*, p.site AS placed_site,
                 CASE WHEN l.site = p.site AND l.ward <> '' THEN l.ward
                      WHEN o.site = p.site AND o.ward <> '' THEN o.ward
                      ELSE '' END AS placed_ward
          FROM sync_row AS r
          LEFT JOIN esr_mapping AS l ON l.kind = 'location' AND l.code = r.location
          LEFT JOIN esr_mapping AS o ON o.kind = 'organisation' AND o.code = r.organisation
          CROSS JOIN LATERAL (SELECT coalesce(nullif(r.site, ''), l.site, o.site) AS site) AS p)"
    };
}

/// Every column but `other_assignments`, in the order [`write_copy`] writes them.
const COPY_ROWS: &str = "COPY sync_row (employee_number, site, assignment_number, forename,
    surname, work_email, staff_group, job_role, occupation_code, area_of_work, position_title,
    pay_band, department, organisation, location, assignment_status, person_type, hire_date,
    leave_date, active, data_hash, source_update_time, row_number) FROM STDIN";

/// Creates the sync's temporary table, the extract's rows as they arrive (those that describe
/// a person), and starts copying into it by [`COPY_ROWS`].
pub(super) async fn copy_in(conn: &mut PgConnection) -> Result<PgCopyIn<&mut PgConnection>, Error> {
    sqlx::query!(
        "CREATE TEMPORARY TABLE sync_row (
            employee_number text NOT NULL, site text NOT NULL, assignment_number text NOT NULL,
            forename text NOT NULL, surname text NOT NULL, work_email text NOT NULL,
            staff_group text NOT NULL, job_role text NOT NULL, occupation_code text NOT NULL,
            area_of_work text NOT NULL, position_title text NOT NULL, pay_band text NOT NULL,
            department text NOT NULL, organisation text NOT NULL, location text NOT NULL,
            assignment_status text NOT NULL,
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

/// Readies the copied rows for the merge: drops the `displaced` rows and corrects the rows
/// of people with several assignments (`others`). Takes the merge's locks first: `staff`
/// against another sync, and, when rows are to be placed by the mapping (`unplaced`), the
/// mapping against changes, so the rows found unmapped are exactly those left unplaced.
pub(super) async fn prepare(
    conn: &mut PgConnection,
    displaced: &[i64],
    others: Others,
    unplaced: bool,
) -> Result<(), Error> {
    // The joins below hash a whole extract: let them do it in memory.
    sqlx::query!("SET LOCAL work_mem = '64MB'")
        .execute(&mut *conn)
        .await?;
    // Only the sync writes `staff`: one merging at a time (readers are not blocked) lets
    // new people be inserted plainly, without a per-row conflict check.
    sqlx::query!("LOCK TABLE staff IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *conn)
        .await?;
    if unplaced {
        // Mapping writes wait for the merge (seconds); reads of it do not.
        sqlx::query!("LOCK TABLE esr_mapping IN SHARE MODE")
            .execute(&mut *conn)
            .await?;
    }
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
    Ok(())
}

/// A copied row the mapping cannot place: no site, and neither code mapped.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct UnmappedRow {
    pub(super) row_number: i64,
    pub(super) employee_number: String,
    pub(super) location: String,
    pub(super) organisation: String,
}

/// The rows the mapping cannot place: how many, the first of them (up to a limit), and
/// their codes as (kind, code, rows), most rows first.
#[derive(Debug, Default)]
pub(super) struct Unmapped {
    pub(super) total: i64,
    pub(super) listed: Vec<UnmappedRow>,
    pub(super) codes: Vec<(String, String, i64)>,
}

/// Finds the rows no site places, in one pass over the extract (kept aside in a temporary
/// table, usually empty, that the counts read); lists the first `limit` of them. The same
/// [`placed_rows!`] as the merge's, so the refused are exactly the rows it leaves out; and
/// no filter on `sync_row` before the joins: a temporary table has no statistics, and a
/// filter's default estimate (a few rows) would have the planner loop over the mapping
/// once per row instead of hashing it.
pub(super) async fn unmapped(conn: &mut PgConnection, limit: i64) -> Result<Unmapped, Error> {
    sqlx::query(concat!(
        "CREATE TEMPORARY TABLE sync_unmapped ON COMMIT DROP AS
         SELECT r.row_number, r.employee_number, r.location, r.organisation
         FROM ",
        placed_rows!(),
        " AS r WHERE r.placed_site IS NULL"
    ))
    .execute(&mut *conn)
    .await?;
    let (total,): (i64,) = sqlx::query_as("SELECT count(*) FROM sync_unmapped")
        .fetch_one(&mut *conn)
        .await?;
    if total == 0 {
        return Ok(Unmapped::default());
    }
    let listed = sqlx::query_as(
        "SELECT row_number, employee_number, location, organisation FROM sync_unmapped
         ORDER BY row_number LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let codes = sqlx::query_as(
        "SELECT c.kind, c.code, count(*) AS n
         FROM sync_unmapped AS u
         CROSS JOIN LATERAL (VALUES ('location', u.location), ('organisation', u.organisation))
             AS c(kind, code)
         WHERE c.code <> ''
         GROUP BY c.kind, c.code
         ORDER BY n DESC, c.kind, c.code",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(Unmapped {
        total,
        listed,
        codes,
    })
}

/// Merges the prepared rows into `staff`: updates the people already known, for a FULL
/// sync deactivates the absent (never the `refused`, nor those whose rows were unmapped:
/// their rows are still in `sync_row`), inserts the new ones, and keeps their site history
/// (a move seen `today` ends one spell and starts the next). Unmapped rows change nothing.
pub(super) async fn merge(
    conn: &mut PgConnection,
    header: &Header,
    today: NaiveDate,
    refused: &[String],
) -> Result<Merged, Error> {
    let (updated, mut deactivated): (i64, i64) = sqlx::query_as(UPDATE_KNOWN)
        .bind(&header.extract_id)
        .bind(today)
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

/// Updates the people already in `staff` whose rows are newer; returns (updated: the data
/// changed, deactivated). `old` is the record as it was before the statement. A person whose
/// site changed starts a spell there today (`$2`, never before the last began), and the
/// spell that ended is kept: one more row per move, none for anyone else. A change of
/// place (site or ward, as the mapping now gives it) counts as an update.
const UPDATE_KNOWN: &str = concat!(
    "WITH changed AS (
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
             site_since = CASE WHEN r.placed_site <> old.site
                               THEN greatest(old.site_since, $2) ELSE old.site_since END
         FROM ",
    placed_rows!(),
    " AS r JOIN staff AS old ON old.employee_number = r.employee_number
         WHERE s.employee_number = r.employee_number
           AND r.placed_site IS NOT NULL
           -- Only newer data changes a record, so a late or repeated extract changes nothing.
           AND s.source_update_time < r.source_update_time
         RETURNING old.data_hash <> s.data_hash OR old.site <> s.site OR old.ward <> s.ward
                       AS updated,
                   old.active AND NOT s.active AS deactivated,
                   s.employee_number, old.site AS old_site, old.site_since AS old_since,
                   s.site_since AS new_since, s.site <> old.site AS moved
     ), ended AS (
         INSERT INTO staff_site_spell (employee_number, site, start_date, end_date)
         SELECT employee_number, old_site, old_since, new_since FROM changed WHERE moved
         ORDER BY employee_number
     )
     SELECT count(*) FILTER (WHERE updated), count(*) FILTER (WHERE deactivated) FROM changed"
);

/// Inserts the people new to `staff` whom a site places, at their site since their hire
/// date (else today, `$2`).
const INSERT_NEW: &str = concat!(
    "INSERT INTO staff (employee_number, site, assignment_number,
         other_assignments, forename, surname, work_email, staff_group, job_role,
         occupation_code, area_of_work, position_title, pay_band, department, organisation,
         location, ward, assignment_status, person_type, hire_date, leave_date, active,
         data_hash, source_update_time, extract_id, site_since)
     SELECT r.employee_number, r.placed_site, r.assignment_number, r.other_assignments,
            r.forename, r.surname, r.work_email, r.staff_group, r.job_role, r.occupation_code,
            r.area_of_work, r.position_title, r.pay_band, r.department, r.organisation,
            r.location, r.placed_ward, r.assignment_status, r.person_type, r.hire_date,
            r.leave_date, r.active, r.data_hash, r.source_update_time, $1,
            coalesce(r.hire_date, $2)
     FROM ",
    placed_rows!(),
    " AS r
     WHERE r.placed_site IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM staff AS s WHERE s.employee_number = r.employee_number)"
);

/// For a FULL sync: active staff the extract does not name (valid or refused) and not
/// updated since it was taken are deactivated.
const DEACTIVATE_ABSENT: &str = "UPDATE staff SET active = false
     WHERE active AND source_update_time < $1
       AND NOT EXISTS (SELECT 1 FROM sync_row AS r WHERE r.employee_number = staff.employee_number)
       AND NOT EXISTS (SELECT 1 FROM unnest($2::text[]) AS refused(e)
                       WHERE refused.e = staff.employee_number)";

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use sqlx::PgPool;

    use super::*;
    use crate::testing::{day, pool};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("a time")
    }

    /// Row `number` of an extract: person `emp` at `site`, as of `time`.
    fn row(number: i64, emp: &str, surname: &str, time: &str) -> Row {
        Row {
            number,
            employee_number: emp.into(),
            assignment_number: format!("{emp}-1"),
            primary: true,
            site: "BAS".into(),
            forename: "Pat".into(),
            surname: surname.into(),
            work_email: String::new(),
            staff_group: "03".into(),
            job_role: String::new(),
            occupation_code: String::new(),
            area_of_work: String::new(),
            position_title: String::new(),
            pay_band: String::new(),
            department: String::new(),
            organisation: String::new(),
            location: String::new(),
            assignment_status: String::new(),
            person_type: "Employee".into(),
            hire_date: Some(day("2020-01-06")),
            leave_date: None,
            source_update_time: at(time),
        }
    }

    fn header(full: bool, time: &str) -> Header {
        Header {
            full,
            extract_id: format!("x-{time}"),
            extract_time: at(time),
        }
    }

    /// Copies `rows` and merges them in a transaction of their own, as one sync does.
    async fn sync(
        pool: &PgPool,
        header: &Header,
        rows: &[Row],
        displaced: &[i64],
        others: Others,
        refused: &[String],
    ) -> anyhow::Result<(i64, i64, i64)> {
        let mut tx = qi_platform::db::begin(pool).await?;
        let mut data = Vec::new();
        for r in rows {
            let active = r.active(day("2026-11-26"));
            write_copy(r, active, r.data_hash(active).finish(""), &mut data);
        }
        let mut copy = copy_in(&mut tx).await?;
        copy.send(data.as_slice()).await?;
        copy.finish().await?;
        let unplaced = rows.iter().any(|r| r.site.is_empty());
        prepare(&mut tx, displaced, others, unplaced).await?;
        let m = merge(&mut tx, header, day("2026-11-26"), refused).await?;
        tx.commit().await?;
        Ok((m.updated, m.deactivated, m.inserted))
    }

    /// Everyone in `staff`: (employee number, surname, active, other assignments).
    async fn everyone(pool: &PgPool) -> anyhow::Result<Vec<(String, String, bool, Vec<String>)>> {
        let mut tx = qi_platform::db::begin(pool).await?;
        let rows = sqlx::query!(
            "SELECT employee_number, surname, active, other_assignments FROM staff
             ORDER BY employee_number"
        )
        .fetch_all(&mut *tx)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.employee_number, r.surname, r.active, r.other_assignments))
            .collect())
    }

    fn person(emp: &str, surname: &str, active: bool) -> (String, String, bool, Vec<String>) {
        (emp.into(), surname.into(), active, Vec::new())
    }

    #[tokio::test]
    async fn a_full_sync_inserts_the_new_updates_the_changed_and_deactivates_the_absent()
    -> anyhow::Result<()> {
        let pool = pool().await?;
        let t1 = "2026-01-01T00:00:00Z";
        let first = [
            row(1, "A", "Ames", t1),
            row(2, "B", "Bell", t1),
            row(3, "C", "Cole", t1),
        ];
        let got = sync(
            &pool,
            &header(true, t1),
            &first,
            &[],
            Others::default(),
            &[],
        )
        .await?;
        assert_eq!(got, (0, 0, 3), "(updated, deactivated, inserted)");
        let t2 = "2026-02-01T00:00:00Z";
        // A unchanged but newer, B renamed, C absent, D new.
        let second = [
            row(1, "A", "Ames", t2),
            row(2, "B", "Bird", t2),
            row(3, "D", "Dunn", t2),
        ];
        let full = header(true, t2);
        let got = sync(&pool, &full, &second, &[], Others::default(), &[]).await?;
        assert_eq!(got, (1, 1, 1));
        let after = vec![
            person("A", "Ames", true),
            person("B", "Bird", true),
            person("C", "Cole", false),
            person("D", "Dunn", true),
        ];
        assert_eq!(everyone(&pool).await?, after);
        // The same extract again changes nothing.
        let got = sync(&pool, &full, &second, &[], Others::default(), &[]).await?;
        assert_eq!(got, (0, 0, 0));
        assert_eq!(everyone(&pool).await?, after);
        Ok(())
    }

    #[tokio::test]
    async fn older_rows_change_nothing_and_only_a_full_sync_deactivates() -> anyhow::Result<()> {
        let pool = pool().await?;
        let t2 = "2026-02-01T00:00:00Z";
        let known = [
            row(1, "A", "Ames", t2),
            row(2, "B", "Bell", t2),
            row(3, "C", "Cole", t2),
        ];
        sync(
            &pool,
            &header(true, t2),
            &known,
            &[],
            Others::default(),
            &[],
        )
        .await?;
        let t1 = "2026-01-01T00:00:00Z";
        let late = [row(1, "A", "Old", t1)];
        let got = sync(
            &pool,
            &header(false, t1),
            &late,
            &[],
            Others::default(),
            &[],
        )
        .await?;
        assert_eq!(got, (0, 0, 0), "a late delta");
        // A FULL sync taken before the people were last updated deactivates none of them,
        // and one taken after spares those whose rows it refused.
        let got = sync(&pool, &header(true, t1), &late, &[], Others::default(), &[]).await?;
        assert_eq!(got, (0, 0, 0), "a late full sync");
        let t3 = "2026-03-01T00:00:00Z";
        let a = [row(1, "A", "Ames", t3)];
        let refused = ["B".to_owned()];
        let got = sync(
            &pool,
            &header(true, t3),
            &a,
            &[],
            Others::default(),
            &refused,
        )
        .await?;
        assert_eq!(got, (0, 1, 0));
        assert_eq!(
            everyone(&pool).await?,
            [
                person("A", "Ames", true),
                person("B", "Bell", true),
                person("C", "Cole", false)
            ]
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_displaced_row_is_dropped_and_a_persons_other_assignments_kept() -> anyhow::Result<()>
    {
        let pool = pool().await?;
        let t1 = "2026-01-01T00:00:00Z";
        // Row 1 was copied, then displaced by row 2, the person's primary assignment.
        let mut primary = row(2, "A", "Ames", t1);
        primary.assignment_number = "A-2".into();
        let rows = [row(1, "A", "Ames", t1), primary.clone()];
        let others = Others {
            row: vec![2],
            others: vec!["A-1".into()],
            data_hash: vec![primary.data_hash(true).finish("A-1")],
        };
        let got = sync(&pool, &header(false, t1), &rows, &[1], others, &[]).await?;
        assert_eq!(got, (0, 0, 1));
        let mut a = person("A", "Ames", true);
        a.3 = vec!["A-1".into()];
        assert_eq!(everyone(&pool).await?, [a]);
        Ok(())
    }

    #[test]
    fn copy_text_escapes_what_would_break_a_line() {
        let mut out = Vec::new();
        copy_text("a\\b\tc\nd\re", &mut out);
        assert_eq!(out, b"a\\\\b\\tc\\nd\\re");
    }
}
