//! HR sync in: an ESR extract streamed by `SyncStaff`, validated row by row as it arrives
//! and applied in ONE transaction, committed only after a message marked `complete`. So a
//! stream cut midway changes nothing (no half rows, no half extracts), and re-sending
//! converges: a row changes a record only when its `source_update_time` is newer than the
//! stored one and it says something new.
//!
//! The transaction opens when the header has been read. It locks `staff` against other
//! syncs and the ESR mapping against changes, then reads the mapping and, for everyone
//! stored, what tells a change apart (`Known`: a hash of their data, their place, when it
//! was last updated; some 40 bytes a person, 90 MB for England's 1.5 million staff). Each
//! valid row is then placed by the mapping (`places`) and compared as it arrives: a known
//! person's unchanged row goes no further; a changed or new one goes on by `COPY` (sent in
//! batches of about `COPY_BATCH` bytes) into a temporary table (`sync_row`, dropped with
//! the transaction). So a re-sent extract writes nothing at all, and the service's memory
//! grows by the people stored, never by the extract's rows. When the `complete` message
//! has come, the merge is set-based, a few statements whatever the size: sort out the rows
//! of people with several assignments, update the known people whose rows changed,
//! deactivate the absent (FULL: the known people no row named, found here), insert the new
//! people; then commit. Anything else — a broken stream, a stream ending without
//! `complete`, a refused message — aborts the `COPY` and rolls back, which also drops the
//! temporary table.
//!
//! One person may have several assignments (one row each); the primary assignment's row
//! (or the first, when none is marked) describes the person, the others' numbers are kept.
//! The people seen twice are noted, and only their rows are sorted out, in SQL before the
//! merge (`store::assignments`): duplicates and second primaries refused, the describing
//! row kept with the others' numbers, the rest deleted. A known person's first row that
//! was unchanged, and so not copied, is copied back from `staff` for that (`store::revive`).
//!
//! A row is placed at its own `site` when it has one, else through the ESR mapping
//! (`crate::esr_mappings`): its location's, else its organisation's. A row whose codes are
//! not mapped is refused naming its codes, and counted by code in the answer, while the
//! rest apply.
//!
//! Here: the handler, and the reading and checking of the extract; its SQL is in `store`.

mod changes;
mod places;
mod store;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use qi_platform::convert::{instant, required_text};
use qi_platform::{AccessContext, Error, SiteCode};
use qi_proto::google::r#type::Date;
use qi_proto::training as pb;
use sqlx::postgres::PgCopyIn;
use sqlx::{PgConnection, PgPool};

use crate::TrainingApi;
use crate::esr_mappings::Kind;
use crate::staff::employee_number;
use places::Places;
use store::{Merged, Placed, Refusal, Revived};

/// The most rows one sync may carry: NHS England's whole workforce (some 1.5 million people)
/// with room for second assignments.
pub(crate) const MAX_ROWS: i64 = 2_500_000;
/// `COPY` data gathered before each send to the database.
const COPY_BATCH: usize = 256 * 1024;
/// Refused rows listed in the answer; beyond this they are only counted, so an extract
/// refused wholesale (its mapping not loaded yet) still has an answer a client can decode.
pub(crate) const REJECTED_LISTED: usize = 10_000;
/// Unmapped codes counted one by one in the answer; rows with codes past these are refused
/// and counted all the same.
const UNMAPPED_LISTED: usize = 1_000;

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

/// Runs one sync to its end: reads the stream, copies the rows that change something as
/// they come, and merges them when the stream is complete.
async fn run_to_end(
    pool: PgPool,
    sites: Arc<[SiteCode]>,
    today: NaiveDate,
    mut stream: tonic::Streaming<pb::SyncStaffRequest>,
) -> Result<pb::SyncStaffResponse, Error> {
    // Nothing touches the database until the header has been checked.
    let first = next(&mut stream)
        .await?
        .ok_or_else(|| Error::invalid("extract_time", "the sync sent no message"))?;
    let header = Header::read(&first)?;
    let started = std::time::Instant::now();
    let mut tx = qi_platform::db::begin(&pool).await?;
    let mut batch = SyncBatch::load(&mut tx, &sites, today, header).await?;
    let loaded = started.elapsed();
    let mut data = Vec::with_capacity(COPY_BATCH);
    batch.push(first, &mut data)?;
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
    let copied = started.elapsed();
    // The copy may have taken most of the call's budget: the merge gets what is left.
    qi_platform::db::tighten(&mut tx).await?;
    let (response, merged) = batch.merge(&mut tx).await?;
    tx.commit().await?;
    // Where a sync's time went, for whoever runs it: reading who is stored, taking the
    // extract in, merging it, publishing its changes, committing.
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    tracing::info!(
        received = response.received_rows,
        inserted = response.inserted,
        updated = response.updated,
        deactivated = response.deactivated,
        rejected = response.rejected_rows,
        load_ms = ms(loaded),
        copy_ms = ms(copied.saturating_sub(loaded)),
        merge_ms = ms(merged.0),
        feed_ms = ms(merged.1),
        total_ms = ms(started.elapsed()),
        "HR sync applied"
    );
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
    /// are known only when the extract is whole and are compared as they are.
    fn data_hash(&self, active: bool) -> i64 {
        let mut h = DataHash::new();
        for s in self.text_fields() {
            h.feed(s);
        }
        for d in [self.hire_date, self.leave_date] {
            h.feed(&d.map(|d| d.to_string()).unwrap_or_default());
        }
        h.feed(if active { "1" } else { "0" });
        h.0 as i64
    }
}

/// A stable hash (FNV-1a) of everything stored about a person, so a repeat of the same
/// data is told apart from a change without comparing every column in SQL.
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
}

/// The extract's header, from the first message.
#[derive(Debug, Clone)]
struct Header {
    full: bool,
    extract_id: String,
    extract_time: DateTime<Utc>,
}

/// An employee number (5 to 12 digits, validated) packed with its length, so that numbers
/// differing only in leading zeros stay apart: a person's key while the extract streams in.
fn person_key(employee_number: &str) -> u64 {
    // At most 12 digits: below 2^40. Wrapping, so a stored number that never passed the
    // sync's check (none can) packs to something rather than panicking.
    let value = (employee_number.bytes()).fold(0u64, |v, b| {
        v.wrapping_mul(10)
            .wrapping_add(u64::from(b.wrapping_sub(b'0') % 10))
    });
    ((employee_number.len() as u64) << 40) | value
}

/// The employee number a [`person_key`] packs.
fn person_number(key: u64) -> String {
    let width = (key >> 40) as usize;
    format!("{:0width$}", key & ((1 << 40) - 1))
}

impl Header {
    /// Reads and checks the header the first message carries.
    fn read(first: &pb::SyncStaffRequest) -> Result<Header, Error> {
        let extract_time = match &first.extract_time {
            None => Err(Error::invalid(
                "extract_time",
                "the first message must say when the extract was taken",
            )),
            Some(t) => instant(t).ok_or_else(|| {
                Error::invalid("extract_time", "is not a valid time between 1900 and 2999")
            }),
        }?;
        let full = match pb::SyncMode::try_from(first.mode) {
            Ok(pb::SyncMode::Full) => true,
            Ok(pb::SyncMode::Delta | pb::SyncMode::Unspecified) => false,
            Err(_) => return Err(Error::invalid("mode", "choose DELTA or FULL")),
        };
        if first.extract_id.chars().count() > 200 {
            return Err(Error::invalid(
                "extract_id",
                "is longer than 200 characters",
            ));
        }
        Ok(Header {
            full,
            extract_id: first.extract_id.clone(),
            extract_time,
        })
    }
}

/// What the sync keeps of a stored person while the extract streams in: 24 bytes.
#[derive(Debug, Clone, Copy)]
struct Known {
    data_hash: i64,
    /// Their skipped row's `source_update_time`, in seconds after the extract's.
    skipped_offset: i32,
    /// The first row of theirs, once seen (0: not yet; [`REFUSED_ONLY`]: only refused).
    seen: u32,
    /// Their stored place ([`Places::id`]).
    place: u32,
    flags: u8,
}

/// Everyone stored, by [`person_key`]: a sorted vector (32 bytes a person, 48 MB for
/// 1,500,000), not a hash map, which would hold a third more in empty slots and twice that
/// while it grows.
#[derive(Debug, Default)]
struct KnownPeople(Vec<(u64, Known)>);

impl KnownPeople {
    fn get_mut(&mut self, key: u64) -> Option<&mut Known> {
        let i = self.0.binary_search_by_key(&key, |(k, _)| *k).ok()?;
        Some(&mut self.0[i].1)
    }

    fn get(&self, key: u64) -> Option<&Known> {
        let i = self.0.binary_search_by_key(&key, |(k, _)| *k).ok()?;
        Some(&self.0[i].1)
    }
}

/// [`Known::seen`] of someone whose rows were all refused so far.
const REFUSED_ONLY: u32 = u32::MAX;
/// Stored with other assignments: their rows are always copied, to be sorted out again.
const SEVERAL: u8 = 1;
/// Active as stored.
const ACTIVE: u8 = 2;
/// Their first row was unchanged, so not copied.
const SKIPPED: u8 = 4;
/// That skipped row was a primary assignment.
const SKIPPED_PRIMARY: u8 = 8;

/// `time` as whole seconds after `extract` (before, negative), when it is exactly that.
fn offset(extract: DateTime<Utc>, time: DateTime<Utc>) -> Option<i32> {
    let d = time - extract;
    let seconds = i32::try_from(d.num_seconds()).ok()?;
    (d == TimeDelta::seconds(seconds.into())).then_some(seconds)
}

/// A sync being received.
pub(crate) struct SyncBatch {
    sites: Vec<SiteCode>,
    today: NaiveDate,
    header: Header,
    complete: bool,
    received: i64,
    /// The first [`REJECTED_LISTED`] rows refused here.
    rejected: Vec<pb::RejectedRow>,
    /// Every row refused here, listed or not.
    rejected_rows: i64,
    places: Places,
    known: KnownPeople,
    /// The people new to `staff` with a valid row.
    new: HashSet<u64>,
    /// Known people with a valid row.
    known_seen: i64,
    /// The people with more than one valid row: their rows are sorted out before the merge.
    several: HashSet<u64>,
    /// Rows refused because the mapping does not place them, by (kind, code), for the first
    /// [`UNMAPPED_LISTED`] codes.
    unmapped: HashMap<(Kind, String), i64>,
}

impl SyncBatch {
    /// Takes the sync's locks and reads what it compares rows with: the mapping, and
    /// everyone stored.
    async fn load(
        conn: &mut PgConnection,
        sites: &[SiteCode],
        today: NaiveDate,
        header: Header,
    ) -> Result<Self, Error> {
        store::lock(conn).await?;
        let mut batch = SyncBatch::new(sites, today, header, store::mapping(conn).await?);
        let (known, places) = (&mut batch.known.0, &mut batch.places);
        known.reserve_exact(store::staff_estimate(conn).await?);
        store::known(conn, |s| {
            let flags = if s.several { SEVERAL } else { 0 } | if s.active { ACTIVE } else { 0 };
            let k = Known {
                data_hash: s.data_hash,
                skipped_offset: 0,
                seen: 0,
                place: places.id(&s.site, &s.ward),
                flags,
            };
            known.push((person_key(&s.employee_number), k));
        })
        .await?;
        known.sort_unstable_by_key(|(key, _)| *key);
        Ok(batch)
    }

    /// A sync for a trust with these sites, placing rows by `mapping`, nobody stored yet.
    fn new(
        sites: &[SiteCode],
        today: NaiveDate,
        header: Header,
        mapping: Vec<store::Mapping>,
    ) -> Self {
        SyncBatch {
            sites: sites.to_vec(),
            today,
            header,
            complete: false,
            received: 0,
            rejected: Vec::new(),
            rejected_rows: 0,
            places: Places::new(mapping),
            known: KnownPeople::default(),
            new: HashSet::new(),
            known_seen: 0,
            several: HashSet::new(),
            unmapped: HashMap::new(),
        }
    }

    /// Takes one message of the stream, appending the rows to copy to `out`.
    fn push(&mut self, msg: pb::SyncStaffRequest, out: &mut Vec<u8>) -> Result<(), Error> {
        let pb::SyncStaffRequest {
            mode,
            extract_id,
            extract_time: _,
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
        let h = &self.header;
        let differs = (mode != 0 && (mode == pb::SyncMode::Full as i32) != h.full)
            || (!extract_id.is_empty() && extract_id != h.extract_id);
        if differs {
            return Err(Error::invalid(
                "mode",
                "only the first message carries the header; later ones differ from it",
            ));
        }
        for row in rows {
            self.received += 1;
            if self.received > MAX_ROWS {
                return Err(Error::ResourceExhausted {
                    message: format!("a sync carries at most {MAX_ROWS} rows; split the extract"),
                    retry_after: None,
                });
            }
            let number = self.received;
            let sent_number = qi_platform::names::clip(&row.employee_number);
            let well_formed = employee_number("employee_number", &row.employee_number).is_ok();
            match self.validate(number, row, self.header.extract_time) {
                Ok(valid) => self.accept(valid, out),
                Err((field, reason)) => {
                    if well_formed {
                        self.refused(&sent_number);
                    }
                    self.reject(pb::RejectedRow {
                        row_number: number,
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

    /// Notes that a row of `employee_number` was refused: a FULL sync never deactivates a
    /// stored person whose rows were merely refused.
    fn refused(&mut self, employee_number: &str) {
        if let Some(k) = self.known.get_mut(person_key(employee_number))
            && k.seen == 0
        {
            k.seen = REFUSED_ONLY;
        }
    }

    /// Places a valid row, and copies it unless it is a known person's unchanged first row.
    fn accept(&mut self, row: Row, out: &mut Vec<u8>) {
        let Some((site, ward)) = self
            .places
            .place(&row.site, &row.location, &row.organisation)
        else {
            self.refused(&row.employee_number);
            self.unmapped_row(row);
            return;
        };
        let active = row.active(self.today);
        let hash = row.data_hash(active);
        let key = person_key(&row.employee_number);
        let new = match self.known.get_mut(key) {
            Some(k) if k.seen == 0 || k.seen == REFUSED_ONLY => {
                k.seen = row.number as u32;
                self.known_seen += 1;
                let (site, ward) = (site.to_owned(), ward.to_owned());
                let place = self.places.id(&site, &ward);
                // Re-borrowed: `places.id` may have grown the place table.
                let Some(k) = self.known.get_mut(key) else {
                    return;
                };
                // The hash covers `active` as the row gave it; a FULL sync's deactivation of
                // the absent changed only the flag. A skipped row may be needed again (if
                // the person sends another), so its time must be kept in the offset.
                let same_active = (k.flags & ACTIVE != 0) == active;
                let offset = offset(self.header.extract_time, row.source_update_time);
                if let Some(offset) = offset
                    && k.data_hash == hash
                    && k.place == place
                    && same_active
                    && k.flags & SEVERAL == 0
                {
                    k.flags |= SKIPPED | if row.primary { SKIPPED_PRIMARY } else { 0 };
                    k.skipped_offset = offset;
                    return;
                }
                let placed = Placed {
                    site: &site,
                    ward: &ward,
                    active,
                    data_hash: hash,
                    new: false,
                };
                store::write_copy(&row, &placed, out);
                return;
            }
            Some(_) => {
                self.several.insert(key);
                false
            }
            None => {
                if !self.new.insert(key) {
                    self.several.insert(key);
                }
                true
            }
        };
        let placed = Placed {
            site,
            ward,
            active,
            data_hash: hash,
            new,
        };
        store::write_copy(&row, &placed, out);
    }

    /// Refuses a row the mapping does not place, naming its codes, and counts them.
    fn unmapped_row(&mut self, row: Row) {
        let Row {
            number,
            employee_number,
            location,
            organisation,
            ..
        } = row;
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
        for (kind, code) in [
            (Kind::Location, &location),
            (Kind::Organisation, &organisation),
        ] {
            if code.is_empty() {
                continue;
            }
            let key = (kind, clip(code));
            if let Some(n) = self.unmapped.get_mut(&key) {
                *n += 1;
            } else if self.unmapped.len() < UNMAPPED_LISTED {
                self.unmapped.insert(key, 1);
            }
        }
        self.reject(pb::RejectedRow {
            row_number: number,
            employee_number,
            field: field.into(),
            reason: format!(
                "{what} mapped to a site, and the row names no site: add the code to the ESR \
                 mapping (`qi hr map import`)"
            ),
        });
    }

    /// The unmapped codes, most rows first.
    fn unmapped_codes(&self) -> Vec<pb::UnmappedCode> {
        let mut codes: Vec<_> = self.unmapped.iter().collect();
        codes.sort_by(|((ka, ca), na), ((kb, cb), nb)| {
            nb.cmp(na)
                .then(ka.as_str().cmp(kb.as_str()))
                .then(ca.cmp(cb))
        });
        codes
            .into_iter()
            .map(|((kind, code), rows)| pb::UnmappedCode {
                kind: kind.to_pb() as i32,
                code: code.clone(),
                rows: *rows,
            })
            .collect()
    }

    fn validate(
        &self,
        number: i64,
        r: pb::EsrRow,
        default_time: DateTime<Utc>,
    ) -> Result<Row, (&'static str, String)> {
        // Takes the field's own string and hands it back when it needs no trimming: a
        // national extract is millions of fields, and most are already clean.
        fn text(
            field: &'static str,
            v: String,
            max: usize,
        ) -> Result<String, (&'static str, String)> {
            let t = v.trim();
            // Bytes bound characters from above: count them only when the bytes exceed.
            if t.len() > max && t.chars().count() > max {
                return Err((field, format!("is longer than {max} characters")));
            }
            let control = if t.is_ascii() {
                t.bytes().any(|b| b.is_ascii_control())
            } else {
                t.chars().any(char::is_control)
            };
            if control {
                return Err((field, "contains control characters".into()));
            }
            Ok(if t.len() == v.len() { v } else { t.to_owned() })
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
        let organisation = text("organisation", organisation, 200)?;
        let location = text("location", location, 200)?;
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
        let work_email = text("work_email", work_email, 254)?;
        if !work_email.is_empty()
            && (!work_email.contains('@') || work_email.contains(char::is_whitespace))
        {
            return Err(("work_email", "is not an email address".into()));
        }
        let staff_group = text("staff_group", staff_group, 2)?;
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
            job_role: text("job_role", job_role, 200)?,
            occupation_code: text("occupation_code", occupation_code, 20)?,
            area_of_work: text("area_of_work", area_of_work, 200)?,
            position_title: text("position_title", position_title, 200)?,
            pay_band: text("pay_band", pay_band, 50)?,
            department: text("department", department, 200)?,
            organisation,
            location,
            assignment_status: text("assignment_status", assignment_status, 100)?,
            person_type: text("person_type", person_type, 100)?,
            hire_date: optional_date("hire_date", hire_date.as_ref())?,
            leave_date: optional_date("termination_date", termination_date.as_ref())?,
            source_update_time,
        })
    }

    /// Merges the copied rows into `staff` inside the sync's transaction: sorts out the
    /// rows of people with several assignments, updates the known people whose rows
    /// changed, inserts the new ones, and for a FULL sync deactivates the absent — each
    /// one set-based statement.
    /// Returns the answer, and how long the merge and the feed's record took.
    async fn merge(
        mut self,
        tx: &mut PgConnection,
    ) -> Result<(pb::SyncStaffResponse, (Duration, Duration)), Error> {
        let people = self.new.len() as i64 + self.known_seen;
        if self.header.full && people == 0 {
            let codes = self.unmapped_codes();
            let why = if codes.is_empty() {
                "a FULL sync with no valid rows would deactivate everyone; nothing was changed"
                    .to_owned()
            } else {
                format!(
                    "a FULL sync with no placeable rows would deactivate everyone; nothing was \
                     changed. No row names a site, and none of their codes is in the ESR \
                     mapping ({} codes, e.g. {}): load the mapping first (`qi hr map import`)",
                    codes.len(),
                    codes
                        .iter()
                        .take(3)
                        .map(|c| format!(
                            "{} {}",
                            if c.kind == pb::EsrCodeKind::Location as i32 {
                                "location"
                            } else {
                                "organisation"
                            },
                            c.code
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            return Err(Error::FailedPrecondition {
                reason: "EMPTY_FULL_SYNC",
                message: why,
            });
        }
        if !self.several.is_empty() {
            let revived = self.revived();
            if !revived.employee_number.is_empty() {
                store::revive(tx, revived).await?;
            }
            let several: Vec<String> = self.several.iter().copied().map(person_number).collect();
            let room = REJECTED_LISTED.saturating_sub(self.rejected.len());
            let (total, listed) = store::assignments(tx, &several, room as i64).await?;
            self.rejected_rows += total;
            self.rejected
                .extend(listed.into_iter().map(Refusal::rejection));
        }
        let absent: Vec<String> = if self.header.full {
            self.known
                .0
                .iter()
                .filter(|(_, k)| k.seen == 0 && k.flags & ACTIVE != 0)
                .map(|(key, _)| person_number(*key))
                .collect()
        } else {
            Vec::new()
        };
        let started = std::time::Instant::now();
        let Merged {
            updated,
            deactivated,
            inserted,
        } = store::merge(tx, &self.header, self.today, &absent).await?;
        let merged = started.elapsed();
        changes::record(tx).await?;
        let recorded = started.elapsed().saturating_sub(merged);
        self.rejected.sort_by_key(|r| r.row_number);
        let unmapped_codes = self.unmapped_codes();
        let response = pb::SyncStaffResponse {
            received_rows: self.received,
            inserted,
            updated,
            unchanged: people - inserted - updated,
            deactivated,
            rejected: self.rejected,
            unmapped_codes,
            rejected_rows: self.rejected_rows,
        };
        Ok((response, (merged, recorded)))
    }

    /// The known people with several rows whose first row was skipped, to copy back.
    fn revived(&self) -> Revived {
        let mut r = Revived::default();
        for key in &self.several {
            if let Some(k) = self.known.get(*key)
                && k.flags & SKIPPED != 0
            {
                r.employee_number.push(person_number(*key));
                r.row_number.push(i64::from(k.seen));
                r.is_primary.push(k.flags & SKIPPED_PRIMARY != 0);
                r.source_update_time
                    .push(self.header.extract_time + TimeDelta::seconds(k.skipped_offset.into()));
            }
        }
        r
    }
}

impl Refusal {
    /// The row's refusal: a repeated assignment, or a second primary one.
    fn rejection(self) -> pb::RejectedRow {
        let Refusal {
            row_number,
            employee_number,
            field,
            earlier,
        } = self;
        let reason = if field == "primary_assignment" {
            format!("row {earlier} is already this person's primary assignment")
        } else {
            format!("duplicates row {earlier}")
        };
        pb::RejectedRow {
            row_number,
            employee_number,
            field,
            reason,
        }
    }
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

    /// The first message of a sync of `rows` taken at `seconds`, marked complete.
    fn message(full: bool, rows: Vec<pb::EsrRow>, seconds: i64) -> pb::SyncStaffRequest {
        pb::SyncStaffRequest {
            mode: if full {
                pb::SyncMode::Full
            } else {
                pb::SyncMode::Delta
            } as i32,
            extract_id: "x".into(),
            extract_time: Some(prost_types::Timestamp { seconds, nanos: 0 }),
            rows,
            complete: true,
        }
    }

    fn sites() -> [SiteCode; 3] {
        ["BAS", "BRM", "SOU"].map(|s| SiteCode::parse(s).unwrap())
    }

    /// A batch that took `rows` (nobody stored, no mapping), and the `COPY` text it produced.
    fn batch(rows: Vec<pb::EsrRow>) -> (SyncBatch, String) {
        let first = message(false, rows, 1_800_000_000);
        let header = Header::read(&first).unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        let mut b = SyncBatch::new(&sites(), day, header, Vec::new());
        let mut out = Vec::new();
        b.push(first, &mut out).unwrap();
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
        assert_eq!(b.new.len(), 1);
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
    }

    #[test]
    fn every_valid_row_is_copied_and_the_people_seen_twice_noted() {
        let (b, copied) = batch(vec![
            row("10000001", "10000001-02", false),
            row("10000001", "10000001", true),
            // Leading zeros make another employee number.
            row("0010000001", "10000001", true),
            row("10000002", "10000002", true),
            row("10000001", "10000001", true),
        ]);
        assert_eq!(b.new.len(), 3);
        let several: Vec<_> = b.several.iter().map(|k| person_number(*k)).collect();
        assert_eq!(several, ["10000001"]);
        // Each line ends with its row number, whether it is a primary assignment, and
        // whether the person is new.
        let ends: Vec<_> = copied
            .lines()
            .map(|l| l.split('\t').skip(23).collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(ends, ["1 f t", "2 t t", "3 t t", "4 t t", "5 t t"]);
    }

    #[test]
    fn a_person_key_keeps_every_digit_and_leading_zero() {
        for n in ["12345", "012345", "00000", "999999999999", "000000000001"] {
            assert_eq!(person_number(person_key(n)), n);
        }
        assert_ne!(person_key("012345"), person_key("12345"));
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
        let active: Vec<_> = copied.lines().map(|l| l.split('\t').nth(20)).collect();
        assert_eq!(active, [Some("f"), Some("t")]);
        let hash = |r: pb::EsrRow| {
            let (_, copied) = batch(vec![r]);
            copied.split('\t').nth(21).map(str::to_owned)
        };
        let base = row("10000002", "10000002", true);
        let mut changed = base.clone();
        changed.job_role = "Ward Sister".into();
        assert!(hash(base.clone()).is_some());
        assert_eq!(hash(base.clone()), hash(base.clone()));
        assert_ne!(hash(base), hash(changed));
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
        let err = Header::read(&pb::SyncStaffRequest::default()).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }));
    }

    /// Syncs `rows` as one extract (FULL when `full`) taken at `seconds` and merged on
    /// `today`, committed as a sync is; the answer, or the error the whole sync ended with.
    async fn sync_on(
        pool: &PgPool,
        full: bool,
        rows: Vec<pb::EsrRow>,
        seconds: i64,
        today: &str,
    ) -> anyhow::Result<Result<pb::SyncStaffResponse, Error>> {
        let first = message(full, rows, seconds);
        let header = Header::read(&first)?;
        let mut tx = qi_platform::db::begin(pool).await?;
        let mut b = SyncBatch::load(&mut tx, &sites(), crate::testing::day(today), header).await?;
        let mut data = Vec::new();
        b.push(first, &mut data)?;
        let mut copy = store::copy_in(&mut tx).await?;
        copy.send(data.as_slice()).await?;
        copy.finish().await?;
        match b.merge(&mut tx).await {
            Ok((r, _)) => {
                tx.commit().await?;
                Ok(Ok(r))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    /// [`sync_on`] 26 November 2026.
    async fn sync_rows(
        pool: &PgPool,
        full: bool,
        rows: Vec<pb::EsrRow>,
        seconds: i64,
    ) -> anyhow::Result<Result<pb::SyncStaffResponse, Error>> {
        sync_on(pool, full, rows, seconds, "2026-11-26").await
    }

    /// Applies a delta of `rows` taken at `seconds` and merged on `today`, committed in its
    /// own transaction as a sync is; the spells of person `number` after it, newest first.
    async fn apply(
        pool: &PgPool,
        rows: Vec<pb::EsrRow>,
        seconds: i64,
        today: &str,
    ) -> anyhow::Result<(pb::SyncStaffResponse, Vec<(String, String, Option<String>)>)> {
        let number = rows[0].employee_number.clone();
        let response = sync_on(pool, false, rows, seconds, today).await??;
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
    fn a_row_needs_a_site_or_a_code_the_mapping_places() {
        let (b, copied) = batch(vec![
            coded("10000001", "", "", ""),
            coded("10000002", "", "L1", ""),
            coded("10000003", "", "", "O1"),
            coded("10000004", "", "L1", "O1"),
        ]);
        assert_eq!(copied.lines().count(), 0);
        let fields: Vec<_> = b
            .rejected
            .iter()
            .map(|r| (r.row_number, r.field.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                (1, "site"),
                (2, "location"),
                (3, "organisation"),
                (4, "location")
            ]
        );
        assert_eq!(b.rejected_rows, 4);
        let codes: Vec<_> = b
            .unmapped_codes()
            .into_iter()
            .map(|c| (c.code, c.rows))
            .collect();
        assert_eq!(codes, [("L1".to_owned(), 2), ("O1".to_owned(), 2)]);
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

    /// Person `emp`'s one row, named `surname`.
    fn named(emp: &str, surname: &str) -> pb::EsrRow {
        pb::EsrRow {
            surname: surname.into(),
            ..row(emp, emp, true)
        }
    }

    /// (updated, deactivated, inserted, unchanged) of an answer.
    fn counts(r: &pb::SyncStaffResponse) -> (i64, i64, i64, i64) {
        (r.updated, r.deactivated, r.inserted, r.unchanged)
    }

    /// Everyone in `staff`: (employee number, surname, active, other assignments).
    async fn everyone(pool: &PgPool) -> anyhow::Result<Vec<(String, String, bool, Vec<String>)>> {
        Ok(sqlx::query!(
            "SELECT employee_number, surname, active, other_assignments FROM staff
             ORDER BY employee_number"
        )
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| (r.employee_number, r.surname, r.active, r.other_assignments))
        .collect())
    }

    fn person(emp: &str, surname: &str, active: bool) -> (String, String, bool, Vec<String>) {
        (emp.into(), surname.into(), active, Vec::new())
    }

    /// Each person's row version: the same after a statement that did not write them.
    async fn versions(pool: &PgPool) -> anyhow::Result<Vec<String>> {
        Ok(
            sqlx::query_scalar!(r#"SELECT xmin::text AS "v!" FROM staff ORDER BY employee_number"#)
                .fetch_all(pool)
                .await?,
        )
    }

    const T1: i64 = 1_800_000_000;
    const T2: i64 = 1_800_100_000;
    const T3: i64 = 1_800_200_000;
    const T4: i64 = 1_800_300_000;

    #[tokio::test]
    async fn a_full_sync_inserts_the_new_updates_the_changed_and_writes_no_one_unchanged()
    -> anyhow::Result<()> {
        let pool = crate::testing::pool().await?;
        let (a, b, c, d) = ("10000001", "10000002", "10000003", "10000004");
        let first = vec![named(a, "Ames"), named(b, "Bell"), named(c, "Cole")];
        let r = sync_rows(&pool, true, first, T1).await??;
        assert_eq!(
            counts(&r),
            (0, 0, 3, 0),
            "(updated, deactivated, inserted, unchanged)"
        );
        // A unchanged, B renamed, C absent, D new.
        let second = vec![named(a, "Ames"), named(b, "Bird"), named(d, "Dunn")];
        let r = sync_rows(&pool, true, second.clone(), T2).await??;
        assert_eq!(counts(&r), (1, 1, 1, 1));
        let after = vec![
            person(a, "Ames", true),
            person(b, "Bird", true),
            person(c, "Cole", false),
            person(d, "Dunn", true),
        ];
        assert_eq!(everyone(&pool).await?, after);
        // The same extract again, or a newer one with the same data: nobody is written.
        let before = versions(&pool).await?;
        let r = sync_rows(&pool, true, second.clone(), T2).await??;
        assert_eq!(counts(&r), (0, 0, 0, 3));
        let r = sync_rows(&pool, true, second, T3).await??;
        assert_eq!(counts(&r), (0, 0, 0, 3));
        assert_eq!(versions(&pool).await?, before);
        assert_eq!(everyone(&pool).await?, after);
        // C, deactivated as absent, comes back with the same data: active again.
        let r = sync_rows(&pool, false, vec![named(c, "Cole")], T4).await??;
        assert_eq!(counts(&r), (1, 0, 0, 0));
        assert!(everyone(&pool).await?.contains(&person(c, "Cole", true)));
        Ok(())
    }

    #[tokio::test]
    async fn older_rows_change_nothing_and_a_full_sync_spares_the_refused() -> anyhow::Result<()> {
        let pool = crate::testing::pool().await?;
        let (a, b, c) = ("10000001", "10000002", "10000003");
        let known = vec![named(a, "Ames"), named(b, "Bell"), named(c, "Cole")];
        sync_rows(&pool, true, known, T2).await??;
        let late = vec![named(a, "Old")];
        let r = sync_rows(&pool, false, late.clone(), T1).await??;
        assert_eq!(counts(&r), (0, 0, 0, 1), "a late delta");
        // A FULL sync taken before the people were last updated deactivates none of them.
        let r = sync_rows(&pool, true, late, T1).await??;
        assert_eq!(counts(&r), (0, 0, 0, 1), "a late full sync");
        // One taken after deactivates the absent, but not B, whose row it refused.
        let mut bad = named(b, "Bell");
        bad.staff_group = "3".into();
        let r = sync_rows(&pool, true, vec![named(a, "Ames"), bad], T3).await??;
        assert_eq!((counts(&r), r.rejected_rows), ((0, 1, 0, 1), 1));
        assert_eq!(
            everyone(&pool).await?,
            [
                person(a, "Ames", true),
                person(b, "Bell", true),
                person(c, "Cole", false)
            ]
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_persons_rows_are_sorted_out_and_the_others_kept_in_extract_order()
    -> anyhow::Result<()> {
        let pool = crate::testing::pool().await?;
        let (a, b, c) = ("10000001", "10000002", "10000003");
        let rows = vec![
            // A: the primary row 3 describes; row 2 repeats row 1; row 4 is a second primary.
            row(a, "10000001-01", false),
            row(a, "10000001-01", false),
            row(a, "10000001-03", true),
            row(a, "10000001-04", true),
            row(a, "10000001-05", false),
            // B: no primary, so the first row describes.
            row(b, "10000002-02", false),
            row(b, "10000002-01", false),
            // C: one row.
            row(c, "10000003", true),
        ];
        let r = sync_rows(&pool, false, rows.clone(), T1).await??;
        assert_eq!(counts(&r), (0, 0, 3, 0));
        let refused: Vec<_> = r
            .rejected
            .iter()
            .map(|x| (x.row_number, x.field.as_str(), x.reason.as_str()))
            .collect();
        assert_eq!(
            refused,
            [
                (2, "assignment_number", "duplicates row 1"),
                (
                    4,
                    "primary_assignment",
                    "row 3 is already this person's primary assignment"
                )
            ]
        );
        let others: Vec<_> = everyone(&pool).await?.into_iter().map(|p| p.3).collect();
        assert_eq!(
            others,
            [
                vec!["10000001-01".to_owned(), "10000001-05".to_owned()],
                vec!["10000002-01".to_owned()],
                vec![]
            ]
        );
        let numbers = sqlx::query_scalar!("SELECT assignment_number FROM staff ORDER BY 1")
            .fetch_all(&pool)
            .await?;
        assert_eq!(numbers, ["10000001-03", "10000002-02", "10000003"]);
        // The same rows again, newer: nothing to write. One assignment fewer: a change.
        let r = sync_rows(&pool, false, rows.clone(), T2).await??;
        assert_eq!(counts(&r), (0, 0, 0, 3));
        let fewer: Vec<_> = rows
            .into_iter()
            .filter(|r| r.assignment_number != "10000001-05")
            .collect();
        let r = sync_rows(&pool, false, fewer, T3).await??;
        assert_eq!(counts(&r), (1, 0, 0, 2));
        Ok(())
    }

    #[tokio::test]
    async fn an_unchanged_first_row_followed_by_a_new_assignment_is_taken_back_and_sorted_out()
    -> anyhow::Result<()> {
        let pool = crate::testing::pool().await?;
        let a = "10000001";
        sync_rows(&pool, false, vec![row(a, a, true)], T1).await??;
        // The stored row comes first, unchanged (not copied), then a second assignment.
        let rows = vec![row(a, a, true), row(a, "10000001-02", false)];
        let r = sync_rows(&pool, false, rows.clone(), T2).await??;
        assert_eq!(counts(&r), (1, 0, 0, 0));
        let stored = sqlx::query!(
            "SELECT assignment_number, other_assignments FROM staff WHERE employee_number = $1",
            a
        )
        .fetch_one(&pool)
        .await?;
        assert_eq!(
            (stored.assignment_number.as_str(), stored.other_assignments),
            (a, vec!["10000001-02".to_owned()])
        );
        // And the same two rows again change nothing.
        let r = sync_rows(&pool, false, rows, T3).await??;
        assert_eq!(counts(&r), (0, 0, 0, 1));
        Ok(())
    }
}
