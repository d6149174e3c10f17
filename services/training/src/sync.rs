//! HR sync in: an ESR extract streamed by `SyncStaff`, validated row by row as it arrives
//! and applied in ONE transaction when the stream ends. So a stream cut midway changes
//! nothing (no half rows, no half extracts), and re-sending converges: a row changes a
//! record only when its `source_update_time` is newer than the stored one.
//!
//! One person may have several assignments (one row each); the primary assignment's row
//! describes the person, the others' numbers are kept. Writes are set-based (`UNNEST`
//! arrays, in chunks), never a round trip per row.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use qi_platform::convert::required_text;
use qi_platform::{Error, SiteCode};
use qi_proto::google::r#type::Date;
use qi_proto::training as pb;
use sqlx::PgConnection;

use crate::staff::employee_number;

/// People written per statement.
const CHUNK: usize = 10_000;
/// The most rows one sync may carry.
pub(crate) const MAX_ROWS: i64 = 1_000_000;

/// A row that passed validation.
#[derive(Debug, Clone)]
struct Row {
    number: i64,
    employee_number: String,
    assignment_number: String,
    primary: bool,
    site: String,
    forename: String,
    surname: String,
    work_email: String,
    staff_group: String,
    job_role: String,
    occupation_code: String,
    area_of_work: String,
    position_title: String,
    pay_band: String,
    department: String,
    organisation: String,
    assignment_status: String,
    person_type: String,
    hire_date: Option<NaiveDate>,
    leave_date: Option<NaiveDate>,
    source_update_time: DateTime<Utc>,
}

/// The extract's header, from the first message.
#[derive(Debug, Clone)]
struct Header {
    full: bool,
    extract_id: String,
    extract_time: DateTime<Utc>,
}

/// A sync being received.
#[derive(Debug)]
pub(crate) struct SyncBatch {
    sites: Vec<SiteCode>,
    today: NaiveDate,
    header: Option<Header>,
    complete: bool,
    received: i64,
    rows: Vec<Row>,
    rejected: Vec<pb::RejectedRow>,
    /// Every well-formed employee number sent, valid row or not: a FULL sync never
    /// deactivates someone whose row was merely refused.
    seen: HashSet<String>,
}

impl SyncBatch {
    /// A new sync for a trust with these sites.
    pub(crate) fn new(sites: &[SiteCode], today: NaiveDate) -> Self {
        SyncBatch {
            sites: sites.to_vec(),
            today,
            header: None,
            complete: false,
            received: 0,
            rows: Vec::new(),
            rejected: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// Takes one message of the stream.
    pub(crate) fn push(&mut self, msg: pb::SyncStaffRequest) -> Result<(), Error> {
        let pb::SyncStaffRequest {
            mode,
            extract_id,
            extract_time,
            rows,
            complete,
        } = msg;
        if self.complete {
            return Err(Error::invalid(
                "complete",
                "a message followed the one marked complete",
            ));
        }
        self.complete = complete;
        match &self.header {
            None => {
                let extract_time = extract_time
                    .and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
                    .ok_or_else(|| {
                        Error::invalid(
                            "extract_time",
                            "the first message must say when the extract was taken",
                        )
                    })?;
                let full = match pb::SyncMode::try_from(mode) {
                    Ok(pb::SyncMode::Full) => true,
                    Ok(pb::SyncMode::Delta | pb::SyncMode::Unspecified) => false,
                    Err(_) => return Err(Error::invalid("mode", "choose DELTA or FULL")),
                };
                if extract_id.chars().count() > 200 {
                    return Err(Error::invalid(
                        "extract_id",
                        "is longer than 200 characters",
                    ));
                }
                self.header = Some(Header {
                    full,
                    extract_id,
                    extract_time,
                });
            }
            Some(h) => {
                let differs = (mode != 0 && (mode == pb::SyncMode::Full as i32) != h.full)
                    || (!extract_id.is_empty() && extract_id != h.extract_id);
                if differs {
                    return Err(Error::invalid(
                        "mode",
                        "only the first message carries the header; later ones differ from it",
                    ));
                }
            }
        }
        let default_time = self
            .header
            .as_ref()
            .map_or_else(Utc::now, |h| h.extract_time);
        for row in rows {
            self.received += 1;
            if self.received > MAX_ROWS {
                return Err(Error::ResourceExhausted {
                    message: format!("a sync carries at most {MAX_ROWS} rows; split the extract"),
                });
            }
            let sent_number = qi_platform::names::clip(&row.employee_number);
            if employee_number("employee_number", &row.employee_number).is_ok() {
                self.seen.insert(row.employee_number.clone());
            }
            match self.validate(self.received, row, default_time) {
                Ok(valid) => self.rows.push(valid),
                Err((field, reason)) => self.rejected.push(pb::RejectedRow {
                    row_number: self.received,
                    employee_number: sent_number,
                    field: field.to_owned(),
                    reason,
                }),
            }
        }
        Ok(())
    }

    fn validate(
        &self,
        number: i64,
        r: pb::EsrRow,
        default_time: DateTime<Utc>,
    ) -> Result<Row, (&'static str, String)> {
        fn text(
            field: &'static str,
            v: &str,
            max: usize,
        ) -> Result<String, (&'static str, String)> {
            let v = v.trim();
            if v.chars().count() > max {
                return Err((field, format!("is longer than {max} characters")));
            }
            if v.chars().any(char::is_control) {
                return Err((field, "contains control characters".into()));
            }
            Ok(v.to_owned())
        }
        fn required(field: &'static str, v: &str) -> Result<String, (&'static str, String)> {
            required_text(field, v, 100).map_err(|e| (field, reason(e)))
        }
        fn reason(e: Error) -> String {
            if let Error::InvalidArgument { violations } = e {
                violations
                    .into_iter()
                    .map(|v| v.description)
                    .collect::<Vec<_>>()
                    .join("; ")
            } else {
                e.to_string()
            }
        }
        fn optional_date(
            field: &'static str,
            d: Option<&Date>,
        ) -> Result<Option<NaiveDate>, (&'static str, String)> {
            match d {
                None => Ok(None),
                Some(d) if d.year == 0 && d.month == 0 && d.day == 0 => Ok(None),
                Some(d) => qi_platform::convert::required_date(field, Some(d))
                    .map(Some)
                    .map_err(|e| (field, reason(e))),
            }
        }
        let pb::EsrRow {
            employee_number: emp,
            assignment_number,
            primary_assignment,
            forename,
            surname,
            work_email,
            staff_group,
            job_role,
            occupation_code,
            area_of_work,
            position_title,
            pay_band,
            organisation,
            site,
            department,
            assignment_status,
            person_type,
            hire_date,
            assignment_start_date,
            termination_date,
            source_update_time,
        } = r;
        let emp =
            employee_number("employee_number", &emp).map_err(|e| ("employee_number", reason(e)))?;
        let assignment_ok = assignment_number
            .split_once('-')
            .map_or(Some((assignment_number.as_str(), None)), |(a, s)| {
                Some((a, Some(s)))
            })
            .is_some_and(|(a, suffix)| {
                (5..=12).contains(&a.len())
                    && a.bytes().all(|b| b.is_ascii_digit())
                    && suffix.is_none_or(|s| {
                        (1..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
                    })
            });
        if !assignment_ok {
            return Err((
                "assignment_number",
                "expected digits with an optional suffix, e.g. 12345678 or 12345678-02".into(),
            ));
        }
        let site_code = SiteCode::parse(site.trim())
            .ok()
            .filter(|s| self.sites.contains(s))
            .ok_or_else(|| {
                (
                    "site",
                    format!(
                        "`{}` is not one of the trust's sites",
                        qi_platform::names::clip(&site)
                    ),
                )
            })?;
        let work_email = text("work_email", &work_email, 254)?;
        if !work_email.is_empty()
            && (!work_email.contains('@') || work_email.contains(char::is_whitespace))
        {
            return Err(("work_email", "is not an email address".into()));
        }
        let staff_group = text("staff_group", &staff_group, 2)?;
        if !staff_group.is_empty()
            && !matches!(staff_group.parse::<u8>(), Ok(1..=10) if staff_group.len() == 2)
        {
            return Err((
                "staff_group",
                "expected a national staff group code, 01 to 10".into(),
            ));
        }
        // The assignment start is validated (a bad date is a bad row) but not stored.
        optional_date("assignment_start_date", assignment_start_date.as_ref())?;
        let source_update_time = match source_update_time {
            None => default_time,
            Some(t) => u32::try_from(t.nanos)
                .ok()
                .and_then(|n| DateTime::from_timestamp(t.seconds, n))
                .ok_or(("source_update_time", "is not a valid time".to_owned()))?,
        };
        Ok(Row {
            number,
            employee_number: emp,
            assignment_number,
            primary: primary_assignment,
            site: site_code.to_string(),
            forename: required("forename", &forename)?,
            surname: required("surname", &surname)?,
            work_email,
            staff_group,
            job_role: text("job_role", &job_role, 200)?,
            occupation_code: text("occupation_code", &occupation_code, 20)?,
            area_of_work: text("area_of_work", &area_of_work, 200)?,
            position_title: text("position_title", &position_title, 200)?,
            pay_band: text("pay_band", &pay_band, 50)?,
            department: text("department", &department, 200)?,
            organisation: text("organisation", &organisation, 200)?,
            assignment_status: text("assignment_status", &assignment_status, 100)?,
            person_type: text("person_type", &person_type, 100)?,
            hire_date: optional_date("hire_date", hire_date.as_ref())?,
            leave_date: optional_date("termination_date", termination_date.as_ref())?,
            source_update_time,
        })
    }

    /// Applies the whole extract inside the caller's transaction.
    pub(crate) async fn apply(
        mut self,
        tx: &mut PgConnection,
    ) -> Result<pb::SyncStaffResponse, Error> {
        let header = self
            .header
            .clone()
            .ok_or_else(|| Error::invalid("extract_time", "the sync sent no message"))?;
        // A cancelled stream can look like a clean end: only the marker says the extract is whole.
        if !self.complete {
            return Err(Error::Aborted {
                message: "the sync stream ended before a message marked `complete`: it was cut, and nothing was applied".into(),
            });
        }
        let people = self.people();
        if header.full && people.is_empty() {
            return Err(Error::FailedPrecondition {
                reason: "EMPTY_FULL_SYNC",
                message:
                    "a FULL sync with no valid rows would deactivate everyone; nothing was changed"
                        .into(),
            });
        }
        let mut response = pb::SyncStaffResponse {
            received_rows: self.received,
            ..Default::default()
        };
        let total = people.len() as i64;
        let mut people = people;
        while !people.is_empty() {
            let rest = people.split_off(people.len().min(CHUNK));
            let chunk = std::mem::replace(&mut people, rest);
            let columns = Columns::from_people(chunk, self.today);
            let (inserted, updated, deactivated) = upsert(tx, columns, &header.extract_id).await?;
            response.inserted += inserted;
            response.updated += updated;
            response.deactivated += deactivated;
        }
        response.unchanged = total - response.inserted - response.updated;
        if header.full {
            let seen: Vec<String> = self.seen.into_iter().collect();
            let done = sqlx::query(
                "UPDATE staff SET active = false
                 WHERE active AND source_update_time < $2
                   AND NOT EXISTS (SELECT 1 FROM unnest($1::text[]) AS seen(e)
                                   WHERE seen.e = staff.employee_number)",
            )
            .bind(&seen)
            .bind(header.extract_time)
            .execute(&mut *tx)
            .await?;
            response.deactivated += done.rows_affected() as i64;
        }
        self.rejected.sort_by_key(|r| r.row_number);
        response.rejected = self.rejected;
        Ok(response)
    }

    /// Groups valid rows into people: duplicates and second primaries are refused; the
    /// primary row (or the first, when none is marked) describes the person.
    fn people(&mut self) -> Vec<Person> {
        let mut by_key: HashMap<(String, String), i64> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut groups: HashMap<String, Vec<Row>> = HashMap::new();
        for row in std::mem::take(&mut self.rows) {
            let key = (row.employee_number.clone(), row.assignment_number.clone());
            if let Some(first) = by_key.get(&key) {
                self.rejected.push(pb::RejectedRow {
                    row_number: row.number,
                    employee_number: row.employee_number,
                    field: "assignment_number".into(),
                    reason: format!("duplicates row {first}"),
                });
                continue;
            }
            by_key.insert(key, row.number);
            let group = groups.entry(row.employee_number.clone()).or_default();
            if group.is_empty() {
                order.push(row.employee_number.clone());
            }
            if row.primary
                && let Some(first) = group.iter().find(|r| r.primary)
            {
                self.rejected.push(pb::RejectedRow {
                    row_number: row.number,
                    employee_number: row.employee_number,
                    field: "primary_assignment".into(),
                    reason: format!(
                        "row {} is already this person's primary assignment",
                        first.number
                    ),
                });
                continue;
            }
            group.push(row);
        }
        order
            .into_iter()
            .filter_map(|emp| groups.remove(&emp))
            .filter_map(|rows| {
                let main = rows.iter().position(|r| r.primary).unwrap_or(0);
                let others: Vec<String> = rows
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != main)
                    .map(|(_, r)| r.assignment_number.clone())
                    .collect();
                let row = rows.into_iter().nth(main)?;
                Some(Person { row, others })
            })
            .collect()
    }
}

/// One person of the extract.
#[derive(Debug)]
struct Person {
    row: Row,
    others: Vec<String>,
}

impl Person {
    fn active(&self, today: NaiveDate) -> bool {
        !self.row.person_type.eq_ignore_ascii_case("ex-employee")
            && self.row.leave_date.is_none_or(|d| d >= today)
    }

    /// A stable hash (FNV-1a) of everything stored about the person, so a repeat of the
    /// same data is told apart from a change without comparing every column in SQL.
    fn data_hash(&self, today: NaiveDate) -> i64 {
        let r = &self.row;
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut feed = |s: &str| {
            for b in s.bytes().chain([0x1f]) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        for s in [
            &r.site,
            &r.assignment_number,
            &self.others.join(","),
            &r.forename,
            &r.surname,
            &r.work_email,
            &r.staff_group,
            &r.job_role,
            &r.occupation_code,
            &r.area_of_work,
            &r.position_title,
            &r.pay_band,
            &r.department,
            &r.organisation,
            &r.assignment_status,
            &r.person_type,
            &r.hire_date.map(|d| d.to_string()).unwrap_or_default(),
            &r.leave_date.map(|d| d.to_string()).unwrap_or_default(),
        ] {
            feed(s);
        }
        feed(if self.active(today) { "1" } else { "0" });
        h as i64
    }
}

/// A chunk of people as the columns the upsert binds, moved out of the rows (no copies).
#[derive(Default)]
struct Columns {
    employee_number: Vec<String>,
    site: Vec<String>,
    assignment_number: Vec<String>,
    others: Vec<String>,
    forename: Vec<String>,
    surname: Vec<String>,
    work_email: Vec<String>,
    staff_group: Vec<String>,
    job_role: Vec<String>,
    occupation_code: Vec<String>,
    area_of_work: Vec<String>,
    position_title: Vec<String>,
    pay_band: Vec<String>,
    department: Vec<String>,
    organisation: Vec<String>,
    assignment_status: Vec<String>,
    person_type: Vec<String>,
    hire_date: Vec<Option<NaiveDate>>,
    leave_date: Vec<Option<NaiveDate>>,
    active: Vec<bool>,
    data_hash: Vec<i64>,
    source_update_time: Vec<DateTime<Utc>>,
}

impl Columns {
    fn from_people(people: Vec<Person>, today: NaiveDate) -> Self {
        let mut c = Columns::default();
        for p in people {
            c.active.push(p.active(today));
            c.data_hash.push(p.data_hash(today));
            c.others.push(p.others.join(","));
            let r = p.row;
            c.employee_number.push(r.employee_number);
            c.site.push(r.site);
            c.assignment_number.push(r.assignment_number);
            c.forename.push(r.forename);
            c.surname.push(r.surname);
            c.work_email.push(r.work_email);
            c.staff_group.push(r.staff_group);
            c.job_role.push(r.job_role);
            c.occupation_code.push(r.occupation_code);
            c.area_of_work.push(r.area_of_work);
            c.position_title.push(r.position_title);
            c.pay_band.push(r.pay_band);
            c.department.push(r.department);
            c.organisation.push(r.organisation);
            c.assignment_status.push(r.assignment_status);
            c.person_type.push(r.person_type);
            c.hire_date.push(r.hire_date);
            c.leave_date.push(r.leave_date);
            c.source_update_time.push(r.source_update_time);
        }
        c
    }
}

/// Upserts a chunk of people; returns (inserted, updated, deactivated).
async fn upsert(
    tx: &mut PgConnection,
    c: Columns,
    extract_id: &str,
) -> Result<(i64, i64, i64), Error> {
    let counts: (i64, i64, i64) = sqlx::query_as(
        "WITH input AS (
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                  $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                                  $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
                                  $16::text[], $17::text[], $18::date[], $19::date[], $20::bool[],
                                  $21::bigint[], $22::timestamptz[])
                 AS i(employee_number, site, assignment_number, other_assignments, forename,
                      surname, work_email, staff_group, job_role, occupation_code, area_of_work,
                      position_title, pay_band, department, organisation, assignment_status,
                      person_type, hire_date, leave_date, active, data_hash, source_update_time)
         ),
         prior AS (
             SELECT s.employee_number, s.data_hash, s.active
             FROM staff s JOIN input i ON i.employee_number = s.employee_number
         ),
         up AS (
             INSERT INTO staff AS s (employee_number, site, assignment_number, other_assignments,
                 forename, surname, work_email, staff_group, job_role, occupation_code,
                 area_of_work, position_title, pay_band, department, organisation,
                 assignment_status, person_type, hire_date, leave_date, active, data_hash,
                 source_update_time, extract_id)
             SELECT employee_number, site, assignment_number,
                    coalesce(string_to_array(nullif(other_assignments, ''), ','), '{}'),
                    forename, surname, work_email, staff_group, job_role, occupation_code,
                    area_of_work, position_title, pay_band, department, organisation,
                    assignment_status, person_type, hire_date, leave_date, active, data_hash,
                    source_update_time, $23
             FROM input
             ON CONFLICT (employee_number) DO UPDATE SET
                 site = EXCLUDED.site, assignment_number = EXCLUDED.assignment_number,
                 other_assignments = EXCLUDED.other_assignments, forename = EXCLUDED.forename,
                 surname = EXCLUDED.surname, work_email = EXCLUDED.work_email,
                 staff_group = EXCLUDED.staff_group, job_role = EXCLUDED.job_role,
                 occupation_code = EXCLUDED.occupation_code, area_of_work = EXCLUDED.area_of_work,
                 position_title = EXCLUDED.position_title, pay_band = EXCLUDED.pay_band,
                 department = EXCLUDED.department, organisation = EXCLUDED.organisation,
                 assignment_status = EXCLUDED.assignment_status, person_type = EXCLUDED.person_type,
                 hire_date = EXCLUDED.hire_date, leave_date = EXCLUDED.leave_date,
                 active = EXCLUDED.active, data_hash = EXCLUDED.data_hash,
                 source_update_time = EXCLUDED.source_update_time, extract_id = EXCLUDED.extract_id
             -- Only newer data changes a record, so a late or repeated extract changes nothing.
             WHERE s.source_update_time < EXCLUDED.source_update_time
             RETURNING s.employee_number, s.data_hash, s.active, (xmax = 0) AS inserted
         )
         SELECT count(*) FILTER (WHERE up.inserted),
                count(*) FILTER (WHERE NOT up.inserted AND up.data_hash <> prior.data_hash),
                count(*) FILTER (WHERE NOT up.inserted AND prior.active AND NOT up.active)
         FROM up LEFT JOIN prior ON prior.employee_number = up.employee_number",
    )
    .bind(c.employee_number)
    .bind(c.site)
    .bind(c.assignment_number)
    .bind(c.others)
    .bind(c.forename)
    .bind(c.surname)
    .bind(c.work_email)
    .bind(c.staff_group)
    .bind(c.job_role)
    .bind(c.occupation_code)
    .bind(c.area_of_work)
    .bind(c.position_title)
    .bind(c.pay_band)
    .bind(c.department)
    .bind(c.organisation)
    .bind(c.assignment_status)
    .bind(c.person_type)
    .bind(c.hire_date)
    .bind(c.leave_date)
    .bind(c.active)
    .bind(c.data_hash)
    .bind(c.source_update_time)
    .bind(extract_id)
    .fetch_one(&mut *tx)
    .await?;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(emp: &str, assignment: &str, primary: bool) -> pb::EsrRow {
        pb::EsrRow {
            employee_number: emp.into(),
            assignment_number: assignment.into(),
            primary_assignment: primary,
            forename: "Ada".into(),
            surname: "Lovelace".into(),
            site: "BAS".into(),
            staff_group: "03".into(),
            ..Default::default()
        }
    }

    fn batch(rows: Vec<pb::EsrRow>) -> SyncBatch {
        let sites = ["BAS", "BRM", "SOU"].map(|s| SiteCode::parse(s).unwrap());
        let mut b = SyncBatch::new(&sites, NaiveDate::from_ymd_opt(2026, 11, 26).unwrap());
        b.push(pb::SyncStaffRequest {
            mode: pb::SyncMode::Delta as i32,
            extract_id: "x".into(),
            extract_time: Some(prost_types::Timestamp {
                seconds: 1_800_000_000,
                nanos: 0,
            }),
            rows,
            complete: true,
        })
        .unwrap();
        b
    }

    #[test]
    fn bad_rows_are_refused_with_their_field_and_the_rest_kept() {
        let mut bad_site = row("10000002", "10000002", true);
        bad_site.site = "XYZ".into();
        let mut bad_group = row("10000003", "10000003", true);
        bad_group.staff_group = "3".into();
        let mut no_name = row("10000004", "10000004", true);
        no_name.surname = " ".into();
        let mut bad_email = row("10000005", "10000005", true);
        bad_email.work_email = "not an email".into();
        let b = batch(vec![
            row("10000001", "10000001", true),
            bad_site,
            bad_group,
            no_name,
            bad_email,
            row("12ab", "12ab", true),
        ]);
        assert_eq!(b.rows.len(), 1);
        let fields: Vec<_> = b
            .rejected
            .iter()
            .map(|r| (r.row_number, r.field.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                (2, "site"),
                (3, "staff_group"),
                (4, "surname"),
                (5, "work_email"),
                (6, "employee_number")
            ]
        );
        // Refused rows still count as present for a FULL sync.
        assert!(b.seen.contains("10000003"));
    }

    #[test]
    fn assignments_group_into_people_and_duplicates_are_refused() {
        let mut b = batch(vec![
            row("10000001", "10000001-02", false),
            row("10000001", "10000001", true),
            row("10000001", "10000001", true),
            row("10000002", "10000002-03", true),
            row("10000002", "10000002", true),
        ]);
        let people = b.people();
        assert_eq!(people.len(), 2);
        assert_eq!(people[0].row.assignment_number, "10000001");
        assert_eq!(people[0].others, ["10000001-02"]);
        let refused: Vec<_> = b
            .rejected
            .iter()
            .map(|r| (r.row_number, r.field.as_str()))
            .collect();
        assert_eq!(
            refused,
            [(3, "assignment_number"), (5, "primary_assignment")]
        );
    }

    #[test]
    fn leavers_are_inactive_and_the_hash_sees_every_change() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        let mut leaver = row("10000001", "10000001", true);
        leaver.termination_date = Some(Date {
            year: 2026,
            month: 1,
            day: 31,
        });
        let mut b = batch(vec![leaver, row("10000002", "10000002", true)]);
        let people = b.people();
        assert!(!people[0].active(today));
        assert!(people[1].active(today));
        let mut changed = batch(vec![row("10000002", "10000002", true)]);
        let mut p = changed.people();
        let before = p[0].data_hash(today);
        p[0].row.job_role = "Ward Sister".into();
        assert_ne!(before, p[0].data_hash(today));
    }

    #[test]
    fn nothing_may_follow_the_message_marked_complete() {
        let mut b = batch(vec![]);
        let err = b.push(pb::SyncStaffRequest::default()).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }));
    }

    #[test]
    fn the_first_message_must_date_the_extract() {
        let sites = [SiteCode::parse("BAS").unwrap()];
        let mut b = SyncBatch::new(&sites, NaiveDate::from_ymd_opt(2026, 11, 26).unwrap());
        let err = b.push(pb::SyncStaffRequest::default()).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }));
    }
}
