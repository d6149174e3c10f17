//! HR sync in: an ESR extract streamed by `SyncStaff`, validated row by row as it arrives
//! and applied in ONE transaction, committed only after a message marked `complete`. So a
//! stream cut midway changes nothing (no half rows, no half extracts), and re-sending
//! converges: a row changes a record only when its `source_update_time` is newer than the
//! stored one.
//!
//! The transaction opens when the header has been read. Valid rows go straight on, as they
//! arrive, by `COPY` (sent in batches of about `COPY_BATCH` bytes) into a temporary table
//! (`sync_row`, dropped with the transaction), so an extract's size costs little memory
//! here: only what refuses duplicates and groups assignments (each person's row and
//! assignment numbers) is kept. When the `complete` message has come, the merge is
//! set-based, a few statements whatever the size: correct the rows of people with several
//! assignments, update the known people whose rows are newer, deactivate the absent (FULL),
//! insert the new people; then commit. Anything else — a broken stream, a stream ending
//! without `complete`, a refused message — aborts the `COPY` and rolls back, which also
//! drops the temporary table.
//!
//! One person may have several assignments (one row each); the primary assignment's row
//! (or the first, when none is marked) describes the person, the others' numbers are kept.
//! Only describing rows are copied; a row displaced by a later primary one is deleted
//! from `sync_row` before the merge.
//!
//! A row is placed at its own `site` when it has one, else through the ESR mapping
//! (`crate::esr_mappings`): its location's, else its organisation's. That is resolved in the
//! merge's SQL, by joining the mapping, not row by row here: a row whose codes are not
//! mapped is found by one set-based statement, refused naming its codes, and counted by
//! code in the answer, while the rest apply.
//!
//! Here: the handler, and the reading and checking of the extract; its SQL is in `store`.

mod store;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use qi_platform::convert::{instant, required_text};
use qi_platform::{AccessContext, Error, SiteCode};
use qi_proto::google::r#type::Date;
use qi_proto::training as pb;
use sqlx::postgres::PgCopyIn;
use sqlx::{PgConnection, PgPool};

use crate::TrainingApi;
use crate::esr_mappings::Kind;
use crate::staff::employee_number;
use store::{Merged, Unmapped, UnmappedRow};

/// The most rows one sync may carry.
pub(crate) const MAX_ROWS: i64 = 1_000_000;
/// `COPY` data gathered before each send to the database.
const COPY_BATCH: usize = 256 * 1024;
/// Refused rows listed in the answer; beyond this they are only counted, so an extract
/// refused wholesale (its mapping not loaded yet) still has an answer a client can decode.
pub(crate) const REJECTED_LISTED: usize = 10_000;

/// SyncStaff: the sync runs in its own task, so if the caller goes mid-stream it still ends
/// cleanly (the `COPY` aborted, the transaction rolled back) rather than being dropped
/// mid-`COPY`.
pub(crate) async fn run(
    api: &TrainingApi,
    _ctx: AccessContext,
    stream: tonic::Streaming<pb::SyncStaffRequest>,
) -> Result<pb::SyncStaffResponse, Error> {
    let sync = run_to_end(
        api.pool.clone(),
        api.sites.clone(),
        qi_platform::calendar::today(),
        stream,
    );
    // A spawned task is outside the call's deadline scope: carry it over.
    let deadline = qi_platform::deadline::CallDeadline::current();
    tokio::spawn(qi_platform::deadline::within(deadline, sync))
        .await
        .map_err(|e| Error::Internal(anyhow::anyhow!("the sync task failed: {e}")))?
}

/// Runs one sync to its end: reads the stream, copies valid rows as they come, and merges
/// them when the stream is complete.
async fn run_to_end(
    pool: PgPool,
    sites: Arc<[SiteCode]>,
    today: NaiveDate,
    mut stream: tonic::Streaming<pb::SyncStaffRequest>,
) -> Result<pb::SyncStaffResponse, Error> {
    let mut batch = SyncBatch::new(&sites, today);
    let mut data = Vec::with_capacity(COPY_BATCH);
    // Nothing touches the database until the header has been checked.
    let first = next(&mut stream)
        .await?
        .ok_or_else(|| Error::invalid("extract_time", "the sync sent no message"))?;
    batch.push(first, &mut data)?;
    let mut tx = qi_platform::db::begin(&pool).await?;
    let mut copy = store::copy_in(&mut tx).await?;
    match copy_rest(&mut copy, &mut batch, &mut stream, data).await {
        Ok(()) => {
            copy.finish().await?;
        }
        Err(e) => {
            // The transaction, dropped on return, rolls back what was copied.
            if let Err(abort) = copy.abort("the sync did not complete").await {
                tracing::warn!(error = %abort, "aborting a sync's COPY");
            }
            return Err(e);
        }
    }
    // The copy may have taken most of the call's budget: the merge gets what is left.
    qi_platform::db::tighten(&mut tx).await?;
    let response = batch.merge(&mut tx).await?;
    tx.commit().await?;
    Ok(response)
}

/// The next message; a broken stream is an error, never an early end. A message refused
/// before decoding (over a bound) is the caller's bad input, and says which field.
async fn next(
    stream: &mut tonic::Streaming<pb::SyncStaffRequest>,
) -> Result<Option<pb::SyncStaffRequest>, Error> {
    stream.message().await.map_err(|s| {
        Error::refused_message(&s).unwrap_or_else(|| Error::Aborted {
            message: format!(
                "the sync stream broke before it ended ({}); nothing was applied",
                s.message()
            ),
        })
    })
}

/// Copies the rest of the stream, in batches of about `COPY_BATCH` bytes.
async fn copy_rest(
    copy: &mut PgCopyIn<&mut PgConnection>,
    batch: &mut SyncBatch,
    stream: &mut tonic::Streaming<pb::SyncStaffRequest>,
    mut data: Vec<u8>,
) -> Result<(), Error> {
    while let Some(msg) = next(stream).await? {
        batch.push(msg, &mut data)?;
        if data.len() >= COPY_BATCH {
            copy.send(data.as_slice()).await?;
            data.clear();
        }
    }
    // A cancelled stream can look like a clean end: only the marker says the extract is whole.
    if !batch.complete {
        return Err(Error::Aborted {
            message: "the sync stream ended before a message marked `complete`: it was cut, and nothing was applied".into(),
        });
    }
    if !data.is_empty() {
        copy.send(data.as_slice()).await?;
    }
    Ok(())
}

/// A row that passed validation.
#[derive(Debug, Clone)]
struct Row {
    number: i64,
    employee_number: String,
    assignment_number: String,
    primary: bool,
    /// The site the row names, or empty: then the mapping places it.
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
    location: String,
    assignment_status: String,
    person_type: String,
    hire_date: Option<NaiveDate>,
    leave_date: Option<NaiveDate>,
    source_update_time: DateTime<Utc>,
}

impl Row {
    fn active(&self, today: NaiveDate) -> bool {
        !self.person_type.eq_ignore_ascii_case("ex-employee")
            && self.leave_date.is_none_or(|d| d >= today)
    }

    /// The person's text columns after the employee number, in `sync_row`'s order (the hash
    /// and the `COPY` line both follow it).
    fn text_fields(&self) -> [&String; 16] {
        [
            &self.site,
            &self.assignment_number,
            &self.forename,
            &self.surname,
            &self.work_email,
            &self.staff_group,
            &self.job_role,
            &self.occupation_code,
            &self.area_of_work,
            &self.position_title,
            &self.pay_band,
            &self.department,
            &self.organisation,
            &self.location,
            &self.assignment_status,
            &self.person_type,
        ]
    }

    /// The hash of everything stored about the person but the other assignments, which
    /// are known only when the extract is whole (see `DataHash`).
    fn data_hash(&self, active: bool) -> DataHash {
        let mut h = DataHash::new();
        for s in self.text_fields() {
            h.feed(s);
        }
        for d in [self.hire_date, self.leave_date] {
            h.feed(&d.map(|d| d.to_string()).unwrap_or_default());
        }
        h.feed(if active { "1" } else { "0" });
        h
    }
}

/// A stable hash (FNV-1a) of everything stored about a person, so a repeat of the same
/// data is told apart from a change without comparing every column in SQL. The other
/// assignments go in last, so the describing row's part can be hashed when it arrives.
#[derive(Debug, Clone, Copy)]
struct DataHash(u64);

impl DataHash {
    fn new() -> Self {
        DataHash(0xcbf2_9ce4_8422_2325)
    }

    fn feed(&mut self, s: &str) {
        for b in s.bytes().chain([0x1f]) {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// The stored value, given the other assignments (comma-separated).
    fn finish(mut self, others: &str) -> i64 {
        self.feed(others);
        self.0 as i64
    }
}

/// The extract's header, from the first message.
#[derive(Debug, Clone)]
struct Header {
    full: bool,
    extract_id: String,
    extract_time: DateTime<Utc>,
}

/// What is kept of one person while the extract streams in.
#[derive(Debug)]
struct Person {
    /// The row that describes the person.
    main: i64,
    main_primary: bool,
    /// The describing row's hash, the other assignments not yet in it.
    hash: DataHash,
    /// The person's accepted rows: (row number, assignment number), in order.
    assignments: Vec<(i64, Box<str>)>,
}

/// A sync being received.
#[derive(Debug)]
pub(crate) struct SyncBatch {
    sites: Vec<SiteCode>,
    today: NaiveDate,
    header: Option<Header>,
    complete: bool,
    received: i64,
    /// The first [`REJECTED_LISTED`] rows refused here.
    rejected: Vec<pb::RejectedRow>,
    /// Every row refused here, listed or not.
    rejected_rows: i64,
    /// Whether a copied row names no site, so the mapping must place it.
    unplaced: bool,
    people: HashMap<Box<str>, Person>,
    /// Rows copied, then displaced by a later primary row of the same person.
    displaced: Vec<i64>,
    /// The well-formed employee numbers of refused rows: a FULL sync never deactivates
    /// someone whose row was merely refused.
    refused: Vec<String>,
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
            rejected: Vec::new(),
            rejected_rows: 0,
            unplaced: false,
            people: HashMap::new(),
            displaced: Vec::new(),
            refused: Vec::new(),
        }
    }

    /// Takes one message of the stream, appending its rows to copy to `out`.
    pub(crate) fn push(
        &mut self,
        msg: pb::SyncStaffRequest,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
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
                let extract_time = match extract_time {
                    None => Err(Error::invalid(
                        "extract_time",
                        "the first message must say when the extract was taken",
                    )),
                    Some(t) => instant(&t).ok_or_else(|| {
                        Error::invalid("extract_time", "is not a valid time between 1900 and 2999")
                    }),
                }?;
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
                    retry_after: None,
                });
            }
            let sent_number = qi_platform::names::clip(&row.employee_number);
            let well_formed = employee_number("employee_number", &row.employee_number).is_ok();
            match self.validate(self.received, row, default_time) {
                Ok(valid) => self.accept(valid, out),
                Err((field, reason)) => {
                    if well_formed {
                        self.refused.push(sent_number.clone());
                    }
                    self.reject(pb::RejectedRow {
                        row_number: self.received,
                        employee_number: sent_number,
                        field: field.to_owned(),
                        reason,
                    });
                }
            }
        }
        Ok(())
    }

    /// Counts a refused row, listing it while fewer than [`REJECTED_LISTED`] are.
    fn reject(&mut self, row: pb::RejectedRow) {
        self.rejected_rows += 1;
        if self.rejected.len() < REJECTED_LISTED {
            self.rejected.push(row);
        }
    }

    /// Groups a valid row into its person, copying it when it describes the person:
    /// duplicates and second primaries are refused.
    fn accept(&mut self, row: Row, out: &mut Vec<u8>) {
        let active = row.active(self.today);
        let hash = row.data_hash(active);
        let person = match self.people.entry(row.employee_number.as_str().into()) {
            Entry::Vacant(v) => {
                self.unplaced |= row.site.is_empty();
                store::write_copy(&row, active, hash.finish(""), out);
                v.insert(Person {
                    main: row.number,
                    main_primary: row.primary,
                    hash,
                    assignments: vec![(row.number, row.assignment_number.into())],
                });
                return;
            }
            Entry::Occupied(o) => o.into_mut(),
        };
        let refusal = if let Some((first, _)) = person
            .assignments
            .iter()
            .find(|(_, a)| **a == *row.assignment_number)
        {
            Some(("assignment_number", format!("duplicates row {first}")))
        } else if row.primary && person.main_primary {
            Some((
                "primary_assignment",
                format!(
                    "row {} is already this person's primary assignment",
                    person.main
                ),
            ))
        } else {
            None
        };
        if let Some((field, reason)) = refusal {
            self.reject(pb::RejectedRow {
                row_number: row.number,
                employee_number: row.employee_number,
                field: field.into(),
                reason,
            });
            return;
        }
        if row.primary {
            self.displaced.push(person.main);
            person.main = row.number;
            person.main_primary = true;
            person.hash = hash;
            self.unplaced |= row.site.is_empty();
            store::write_copy(&row, active, hash.finish(""), out);
        }
        person
            .assignments
            .push((row.number, row.assignment_number.into()));
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
            location,
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
        let organisation = text("organisation", &organisation, 200)?;
        let location = text("location", &location, 200)?;
        // An explicit site wins; without one the merge places the row by its codes.
        let site = if site.trim().is_empty() {
            if location.is_empty() && organisation.is_empty() {
                return Err((
                    "site",
                    "is required: give a site, or a location or organisation code the ESR \
                     mapping maps to a site"
                        .into(),
                ));
            }
            String::new()
        } else {
            SiteCode::parse(site.trim())
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
                })?
                .to_string()
        };
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
            // The same years as dates, so the database takes every time that passes here.
            Some(t) => instant(&t).ok_or((
                "source_update_time",
                "is not a valid time between 1900 and 2999".to_owned(),
            ))?,
        };
        Ok(Row {
            number,
            employee_number: emp,
            assignment_number,
            primary: primary_assignment,
            site,
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
            organisation,
            location,
            assignment_status: text("assignment_status", &assignment_status, 100)?,
            person_type: text("person_type", &person_type, 100)?,
            hire_date: optional_date("hire_date", hire_date.as_ref())?,
            leave_date: optional_date("termination_date", termination_date.as_ref())?,
            source_update_time,
        })
    }

    /// Merges the copied rows into `staff` inside the sync's transaction: corrects the
    /// rows of people with several assignments, updates the people already known, inserts
    /// the new ones, and for a FULL sync deactivates the absent — each one set-based statement.
    async fn merge(mut self, tx: &mut PgConnection) -> Result<pb::SyncStaffResponse, Error> {
        let header = self
            .header
            .take()
            .ok_or_else(|| Error::invalid("extract_time", "the sync sent no message"))?;
        if header.full && self.people.is_empty() {
            return Err(Error::FailedPrecondition {
                reason: "EMPTY_FULL_SYNC",
                message:
                    "a FULL sync with no valid rows would deactivate everyone; nothing was changed"
                        .into(),
            });
        }
        store::prepare(tx, &self.displaced, self.others(), self.unplaced).await?;
        let unmapped = if self.unplaced {
            let room = REJECTED_LISTED.saturating_sub(self.rejected.len());
            store::unmapped(tx, room as i64).await?
        } else {
            Unmapped::default()
        };
        if header.full && self.people.len() as i64 == unmapped.total {
            return Err(Error::FailedPrecondition {
                reason: "EMPTY_FULL_SYNC",
                message: format!(
                    "a FULL sync with no placeable rows would deactivate everyone; nothing was \
                     changed. No row names a site, and none of their codes is in the ESR \
                     mapping ({} codes, e.g. {}): load the mapping first (`qi hr map import`)",
                    unmapped.codes.len(),
                    unmapped
                        .codes
                        .iter()
                        .take(3)
                        .map(|(kind, code, _)| format!("{kind} {code}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        let Merged {
            updated,
            deactivated,
            inserted,
        } = store::merge(tx, &header, self.today, &self.refused).await?;
        self.rejected
            .extend(unmapped.listed.into_iter().map(UnmappedRow::rejection));
        self.rejected.sort_by_key(|r| r.row_number);
        Ok(pb::SyncStaffResponse {
            received_rows: self.received,
            inserted,
            updated,
            unchanged: self.people.len() as i64 - inserted - updated - unmapped.total,
            deactivated,
            rejected: self.rejected,
            unmapped_codes: unmapped
                .codes
                .into_iter()
                .map(|(kind, code, rows)| pb::UnmappedCode {
                    kind: Kind::parse(&kind).map_or(pb::EsrCodeKind::Unspecified, Kind::to_pb)
                        as i32,
                    code,
                    rows,
                })
                .collect(),
            rejected_rows: self.rejected_rows + unmapped.total,
        })
    }

    /// The other assignments, and so the final hash, of the people with several.
    fn others(&self) -> Others {
        let mut o = Others::default();
        for p in self.people.values().filter(|p| p.assignments.len() > 1) {
            let others = p
                .assignments
                .iter()
                .filter(|(row, _)| *row != p.main)
                .map(|(_, a)| &**a)
                .collect::<Vec<_>>()
                .join(",");
            o.row.push(p.main);
            o.data_hash.push(p.hash.finish(&others));
            o.others.push(others);
        }
        o
    }
}

impl UnmappedRow {
    /// The row's refusal, naming the codes the mapping lacks.
    fn rejection(self) -> pb::RejectedRow {
        let UnmappedRow {
            row_number,
            employee_number,
            location,
            organisation,
        } = self;
        let clip = qi_platform::names::clip;
        let (field, what) = match (location.is_empty(), organisation.is_empty()) {
            (false, false) => (
                "location",
                format!(
                    "neither location `{}` nor organisation `{}` is",
                    clip(&location),
                    clip(&organisation)
                ),
            ),
            (false, true) => ("location", format!("location `{}` is", clip(&location))),
            (true, _) => (
                "organisation",
                format!("organisation `{}` is", clip(&organisation)),
            ),
        };
        pb::RejectedRow {
            row_number,
            employee_number,
            field: field.into(),
            reason: format!(
                "{what} mapped to a site, and the row names no site: add the code to the ESR \
                 mapping (`qi hr map import`)"
            ),
        }
    }
}

/// The other assignments of people with several, as the columns bound to correct their rows.
#[derive(Debug, Default)]
struct Others {
    row: Vec<i64>,
    others: Vec<String>,
    data_hash: Vec<i64>,
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

    /// A batch that took `rows`, and the `COPY` text it produced.
    fn batch(rows: Vec<pb::EsrRow>) -> (SyncBatch, String) {
        let sites = ["BAS", "BRM", "SOU"].map(|s| SiteCode::parse(s).unwrap());
        let mut b = SyncBatch::new(&sites, NaiveDate::from_ymd_opt(2026, 11, 26).unwrap());
        let mut out = Vec::new();
        b.push(
            pb::SyncStaffRequest {
                mode: pb::SyncMode::Delta as i32,
                extract_id: "x".into(),
                extract_time: Some(prost_types::Timestamp {
                    seconds: 1_800_000_000,
                    nanos: 0,
                }),
                rows,
                complete: true,
            },
            &mut out,
        )
        .unwrap();
        (b, String::from_utf8(out).unwrap())
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
        let mut bad_time = row("10000006", "10000006", true);
        bad_time.source_update_time = Some(prost_types::Timestamp {
            seconds: -70_000_000_000,
            nanos: 0,
        });
        let (b, copied) = batch(vec![
            row("10000001", "10000001", true),
            bad_site,
            bad_group,
            no_name,
            bad_email,
            row("12ab", "12ab", true),
            bad_time,
        ]);
        assert_eq!(b.people.len(), 1);
        assert_eq!(copied.lines().count(), 1);
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
                (6, "employee_number"),
                (7, "source_update_time")
            ]
        );
        // Refused rows still count as present for a FULL sync.
        assert!(b.refused.contains(&"10000003".to_owned()));
        assert!(!b.refused.contains(&"12ab".to_owned()));
    }

    #[test]
    fn assignments_group_into_people_and_duplicates_are_refused() {
        let (b, copied) = batch(vec![
            row("10000001", "10000001-02", false),
            row("10000001", "10000001", true),
            row("10000001", "10000001", true),
            row("10000002", "10000002-03", true),
            row("10000002", "10000002", true),
            row("10000002", "10000002-04", false),
        ]);
        assert_eq!(b.people.len(), 2);
        // Person 1's first row was copied, then displaced by the primary row 2.
        let copied_rows: Vec<_> = copied
            .lines()
            .map(|l| l.rsplit('\t').next().unwrap())
            .collect();
        assert_eq!(copied_rows, ["1", "2", "4"]);
        assert_eq!(b.displaced, [1]);
        let others = b.others();
        let mut corrected: Vec<_> = others
            .row
            .iter()
            .zip(&others.others)
            .map(|(r, o)| (*r, o.as_str()))
            .collect();
        corrected.sort();
        assert_eq!(corrected, [(2, "10000001-02"), (4, "10000002-04")]);
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
        let mut leaver = row("10000001", "10000001", true);
        leaver.termination_date = Some(Date {
            year: 2026,
            month: 1,
            day: 31,
        });
        let (_, copied) = batch(vec![leaver, row("10000002", "10000002", true)]);
        let active: Vec<_> = copied.lines().map(|l| l.split('\t').nth(19)).collect();
        assert_eq!(active, [Some("f"), Some("t")]);
        let hash = |r: pb::EsrRow| {
            let (b, _) = batch(vec![r]);
            b.people.values().next().unwrap().hash.finish("")
        };
        let base = row("10000002", "10000002", true);
        let mut changed = base.clone();
        changed.job_role = "Ward Sister".into();
        assert_eq!(hash(base.clone()), hash(base.clone()));
        assert_ne!(hash(base.clone()), hash(changed));
        let one = batch(vec![base.clone()])
            .0
            .people
            .values()
            .next()
            .unwrap()
            .hash;
        assert_ne!(one.finish(""), one.finish("10000002-02"));
    }

    #[test]
    fn nothing_may_follow_the_message_marked_complete() {
        let (mut b, _) = batch(vec![]);
        let err = b
            .push(pb::SyncStaffRequest::default(), &mut Vec::new())
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }));
    }

    #[test]
    fn the_first_message_must_date_the_extract() {
        let sites = [SiteCode::parse("BAS").unwrap()];
        let mut b = SyncBatch::new(&sites, NaiveDate::from_ymd_opt(2026, 11, 26).unwrap());
        let err = b
            .push(pb::SyncStaffRequest::default(), &mut Vec::new())
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }));
    }

    /// Applies a delta of `rows` taken at `seconds` and merged on `today`, committed in its
    /// own transaction as a sync is; the spells of person `number` after it, newest first.
    async fn apply(
        pool: &PgPool,
        rows: Vec<pb::EsrRow>,
        seconds: i64,
        today: &str,
    ) -> anyhow::Result<(pb::SyncStaffResponse, Vec<(String, String, Option<String>)>)> {
        let sites = ["BAS", "BRM", "SOU"].map(|s| SiteCode::parse(s).unwrap());
        let mut b = SyncBatch::new(&sites, crate::testing::day(today));
        let number = rows[0].employee_number.clone();
        let mut data = Vec::new();
        b.push(
            pb::SyncStaffRequest {
                extract_time: Some(prost_types::Timestamp { seconds, nanos: 0 }),
                rows,
                complete: true,
                ..Default::default()
            },
            &mut data,
        )?;
        let mut tx = qi_platform::db::begin(pool).await?;
        let mut copy = store::copy_in(&mut tx).await?;
        copy.send(data.as_slice()).await?;
        copy.finish().await?;
        let response = b.merge(&mut tx).await?;
        tx.commit().await?;
        let spells = sqlx::query!(
            r#"SELECT site AS "site!", start_date AS "start_date!", end_date FROM (
                   SELECT site, site_since AS start_date, NULL::date AS end_date,
                          9223372036854775807 AS id
                   FROM staff WHERE employee_number = $1
                   UNION ALL
                   SELECT site, start_date, end_date, id FROM staff_site_spell
                   WHERE employee_number = $1) AS spells
               ORDER BY id DESC"#,
            number,
        )
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| {
            (
                r.site,
                r.start_date.to_string(),
                r.end_date.map(|d| d.to_string()),
            )
        })
        .collect();
        Ok((response, spells))
    }

    /// Maps `id` (`location.X`, `organisation.Y`) to `site` and `ward`, committed.
    async fn map(pool: &PgPool, site: &str, id: &str, ward: &str) -> anyhow::Result<()> {
        let mut tx = qi_platform::db::begin(pool).await?;
        let m = crate::esr_mappings::NewMapping {
            site: SiteCode::parse(site).map_err(anyhow::Error::msg)?,
            id: crate::esr_mappings::MappingId::parse("id", id)?,
            ward: ward.into(),
            display_name: String::new(),
        };
        crate::esr_mappings::store::insert(&mut tx, &m).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Syncs `rows` as one extract (FULL when `full`) taken at `seconds`, committed as a
    /// sync is; the answer, or the error the whole sync ended with.
    async fn sync_rows(
        pool: &PgPool,
        full: bool,
        rows: Vec<pb::EsrRow>,
        seconds: i64,
    ) -> anyhow::Result<Result<pb::SyncStaffResponse, Error>> {
        let sites = ["BAS", "BRM", "SOU"].map(|s| SiteCode::parse(s).unwrap());
        let mut b = SyncBatch::new(&sites, crate::testing::day("2026-11-26"));
        let mut data = Vec::new();
        b.push(
            pb::SyncStaffRequest {
                mode: if full {
                    pb::SyncMode::Full
                } else {
                    pb::SyncMode::Delta
                } as i32,
                extract_time: Some(prost_types::Timestamp { seconds, nanos: 0 }),
                rows,
                complete: true,
                ..Default::default()
            },
            &mut data,
        )?;
        let mut tx = qi_platform::db::begin(pool).await?;
        let mut copy = store::copy_in(&mut tx).await?;
        copy.send(data.as_slice()).await?;
        copy.finish().await?;
        match b.merge(&mut tx).await {
            Ok(r) => {
                tx.commit().await?;
                Ok(Ok(r))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    /// Everyone's (employee number, site, ward, active), by number.
    async fn places(pool: &PgPool) -> anyhow::Result<Vec<(String, String, String, bool)>> {
        Ok(sqlx::query!(
            "SELECT employee_number, site, ward, active FROM staff ORDER BY employee_number"
        )
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| (r.employee_number, r.site, r.ward, r.active))
        .collect())
    }

    fn place(emp: &str, site: &str, ward: &str, active: bool) -> (String, String, String, bool) {
        (emp.into(), site.into(), ward.into(), active)
    }

    /// A row of person `emp` naming these site, location and organisation.
    fn coded(emp: &str, site: &str, location: &str, organisation: &str) -> pb::EsrRow {
        pb::EsrRow {
            site: site.into(),
            location: location.into(),
            organisation: organisation.into(),
            ..row(emp, emp, true)
        }
    }

    #[tokio::test]
    async fn rows_without_a_site_are_placed_by_the_mapping_and_the_unmapped_refused_by_code()
    -> anyhow::Result<()> {
        let pool = crate::testing::pool().await?;
        map(&pool, "BAS", "location.BAS-MAIN", "").await?;
        map(&pool, "BAS", "organisation.CC-ASH", "sites/BAS/wards/ash").await?;
        map(&pool, "SOU", "organisation.CC-ELM", "sites/SOU/wards/elm").await?;
        let rows = vec![
            // The location places the person; the organisation, at the same site, the ward.
            coded("10000001", "", "BAS-MAIN", "CC-ASH"),
            // An organisation's ward at another site than the location's is not taken.
            coded("10000002", "", "BAS-MAIN", "CC-ELM"),
            coded("10000003", "", "", "CC-ELM"),
            // An explicit site wins over both codes.
            coded("10000004", "BRM", "BAS-MAIN", "CC-ASH"),
            // An unmapped location falls back to the organisation.
            coded("10000005", "", "NOWHERE", "CC-ASH"),
            coded("10000006", "", "NOWHERE", "NOPE"),
            coded("10000007", "", "", "NOPE"),
        ];
        let r = sync_rows(&pool, false, rows.clone(), 1_800_000_000).await??;
        assert_eq!((r.inserted, r.unchanged, r.rejected_rows), (5, 0, 2));
        let refused: Vec<_> = r
            .rejected
            .iter()
            .map(|x| (x.row_number, x.field.as_str(), x.employee_number.as_str()))
            .collect();
        assert_eq!(
            refused,
            [(6, "location", "10000006"), (7, "organisation", "10000007")]
        );
        assert!(
            r.rejected[0].reason.contains("`NOWHERE`"),
            "{:?}",
            r.rejected
        );
        assert!(r.rejected[0].reason.contains("`NOPE`"), "{:?}", r.rejected);
        let codes: Vec<_> = r
            .unmapped_codes
            .iter()
            .map(|c| (c.kind, c.code.as_str(), c.rows))
            .collect();
        let (org, loc) = (
            pb::EsrCodeKind::Organisation as i32,
            pb::EsrCodeKind::Location as i32,
        );
        assert_eq!(codes, [(org, "NOPE", 2), (loc, "NOWHERE", 1)]);
        assert_eq!(
            places(&pool).await?,
            [
                place("10000001", "BAS", "sites/BAS/wards/ash", true),
                place("10000002", "BAS", "", true),
                place("10000003", "SOU", "sites/SOU/wards/elm", true),
                place("10000004", "BRM", "", true),
                place("10000005", "BAS", "sites/BAS/wards/ash", true),
            ]
        );
        // Mapped now, the refused two go in when sent again; the rest are unchanged.
        map(&pool, "BRM", "organisation.NOPE", "").await?;
        let r = sync_rows(&pool, false, rows, 1_800_000_000).await??;
        assert_eq!((r.inserted, r.unchanged, r.rejected_rows), (2, 5, 0));
        assert!(r.unmapped_codes.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn a_newer_row_follows_a_changed_mapping_and_an_unmapped_one_deactivates_no_one()
    -> anyhow::Result<()> {
        let pool = crate::testing::pool().await?;
        map(&pool, "BAS", "organisation.CC-ASH", "sites/BAS/wards/ash").await?;
        let first = vec![
            coded("10000001", "", "", "CC-ASH"),
            coded("10000002", "", "", "CC-ASH"),
        ];
        sync_rows(&pool, true, first.clone(), 1_800_000_000).await??;
        // The cost centre's ward changes: a newer extract re-places its people (an update).
        sqlx::query!("UPDATE esr_mapping SET ward = 'sites/BAS/wards/elm' WHERE code = 'CC-ASH'")
            .execute(&pool)
            .await?;
        // In a FULL sync, a person whose row is refused as unmapped is not taken for absent.
        let second = vec![
            coded("10000001", "", "", "CC-ASH"),
            coded("10000002", "", "", "CC-GONE"),
        ];
        let r = sync_rows(&pool, true, second, 1_800_100_000).await??;
        assert_eq!((r.updated, r.deactivated, r.rejected_rows), (1, 0, 1));
        assert_eq!(
            places(&pool).await?,
            [
                place("10000001", "BAS", "sites/BAS/wards/elm", true),
                place("10000002", "BAS", "sites/BAS/wards/ash", true),
            ]
        );
        // A FULL sync whose every row is unmapped would deactivate everyone else: refused.
        let none = vec![coded("10000003", "", "NOWHERE", "")];
        let e = sync_rows(&pool, true, none, 1_800_200_000)
            .await?
            .unwrap_err();
        assert!(
            matches!(&e, Error::FailedPrecondition { reason: "EMPTY_FULL_SYNC", message } if message.contains("location NOWHERE")),
            "{e:?}"
        );
        assert_eq!(places(&pool).await?.len(), 2);
        Ok(())
    }

    #[test]
    fn a_row_needs_a_site_or_a_code_to_be_placed_by() {
        let (b, copied) = batch(vec![
            coded("10000001", "", "", ""),
            coded("10000002", "", "L1", ""),
            coded("10000003", "", "", "O1"),
        ]);
        assert_eq!(copied.lines().count(), 2);
        assert!(b.unplaced);
        let fields: Vec<_> = b
            .rejected
            .iter()
            .map(|r| (r.row_number, r.field.as_str()))
            .collect();
        assert_eq!(fields, [(1, "site")]);
        assert_eq!(b.rejected_rows, 1);
    }

    #[test]
    fn refusals_past_the_listed_many_are_counted_only() {
        let bad = |i: usize| coded(&format!("{}", 10_000_000 + i), "ZZZ", "", "");
        let (b, _) = batch((0..REJECTED_LISTED + 5).map(bad).collect());
        assert_eq!(b.rejected.len(), REJECTED_LISTED);
        assert_eq!(b.rejected_rows, REJECTED_LISTED as i64 + 5);
    }

    fn spell(site: &str, start: &str, end: Option<&str>) -> (String, String, Option<String>) {
        (site.into(), start.into(), end.map(Into::into))
    }

    #[tokio::test]
    async fn a_move_ends_one_spell_and_starts_the_next_once() -> anyhow::Result<()> {
        let pool = crate::testing::pool().await?;
        let at = |site: &str| pb::EsrRow {
            site: site.into(),
            hire_date: Some(Date {
                year: 2020,
                month: 1,
                day: 6,
            }),
            ..row("10000001", "10000001", true)
        };
        let hired = [spell("BAS", "2020-01-06", None)];
        let (r, spells) = apply(&pool, vec![at("BAS")], 1_800_000_000, "2026-01-05").await?;
        assert_eq!((r.inserted, spells.as_slice()), (1, hired.as_slice()));
        // A re-sent extract changes nothing, nor does an older one naming another site.
        let (r, spells) = apply(&pool, vec![at("BAS")], 1_800_000_000, "2026-01-06").await?;
        assert_eq!((r.unchanged, spells.as_slice()), (1, hired.as_slice()));
        let (_, spells) = apply(&pool, vec![at("SOU")], 1_700_000_000, "2026-01-06").await?;
        assert_eq!(spells, hired);
        // The move: the BAS spell ends the day it is seen, and the SOU one starts.
        let moved = [
            spell("SOU", "2026-02-02", None),
            spell("BAS", "2020-01-06", Some("2026-02-02")),
        ];
        let (r, spells) = apply(&pool, vec![at("SOU")], 1_800_100_000, "2026-02-02").await?;
        assert_eq!((r.updated, spells.as_slice()), (1, moved.as_slice()));
        let (_, spells) = apply(&pool, vec![at("SOU")], 1_800_100_000, "2026-02-03").await?;
        assert_eq!(spells, moved);
        // And back: a third spell, at BAS again.
        let (_, spells) = apply(&pool, vec![at("BAS")], 1_800_200_000, "2026-03-02").await?;
        assert_eq!(
            spells,
            [
                spell("BAS", "2026-03-02", None),
                spell("SOU", "2026-02-02", Some("2026-03-02")),
                spell("BAS", "2020-01-06", Some("2026-02-02")),
            ]
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_new_person_without_a_hire_date_starts_the_day_they_are_seen() -> anyhow::Result<()> {
        let pool = crate::testing::pool().await?;
        let (_, spells) = apply(
            &pool,
            vec![row("10000002", "10000002", true)],
            1_800_000_000,
            "2026-01-05",
        )
        .await?;
        assert_eq!(spells, [spell("BAS", "2026-01-05", None)]);
        Ok(())
    }
}
