//! `qi hr import`: HR's ESR extract in, through the gateway with a token like any other
//! client (the `hr_sync` role, trust-wide). The export out is [`crate::hr_export`].
//!
//! The import CSV has a header row with these columns (order free, unknown columns refused,
//! `employee_number`, `assignment_number`, `forename`, `surname` required, and at least one
//! of `site`, `location` and `organisation`, which place the person):
//! `employee_number, assignment_number, primary_assignment, forename, surname, work_email,
//! staff_group, job_role, occupation_code, area_of_work, position_title, pay_band,
//! organisation, location, site, department, assignment_status, person_type, hire_date,
//! assignment_start_date, termination_date, source_update_time`. A row without a site is
//! placed by the ESR mapping (`qi hr map import`): its location's, else its organisation's.
//! Dates are `YYYY-MM-DD`, `source_update_time` RFC 3339, `primary_assignment` `Y`/`N`.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, bail};
use chrono::{DateTime, NaiveDate, Utc};
use qi_proto::google::r#type::Date;
use qi_proto::training as pb;
use qi_proto::training::training_service_client::TrainingServiceClient;
use tonic::transport::Channel;

/// The columns of the import CSV.
pub const IMPORT_COLUMNS: [&str; 22] = [
    "employee_number",
    "assignment_number",
    "primary_assignment",
    "forename",
    "surname",
    "work_email",
    "staff_group",
    "job_role",
    "occupation_code",
    "area_of_work",
    "position_title",
    "pay_band",
    "organisation",
    "location",
    "site",
    "department",
    "assignment_status",
    "person_type",
    "hire_date",
    "assignment_start_date",
    "termination_date",
    "source_update_time",
];

/// Rows per `SyncStaff` message.
const BATCH: usize = 1_000;

/// A CSV row the CLI could not turn into an ESR row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReject {
    /// The CSV line (1 is the header).
    pub line: u64,
    /// The column.
    pub column: String,
    /// Why.
    pub reason: String,
}

/// Opens a CSV (fields trimmed) and checks its header: every column one of `columns`, none
/// twice, each of `required` present. Returns the reader, past its header, and each
/// column's position; `refuse` words what is wrong with the header for the user.
pub(crate) fn open_csv<R: std::io::Read>(
    input: R,
    columns: &[&str],
    required: &[&str],
    refuse: impl Fn(&str) -> anyhow::Error,
) -> anyhow::Result<(csv::Reader<R>, HashMap<String, usize>)> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers = reader.headers().context("reading the CSV header")?.clone();
    let mut index = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        if !columns.contains(&h) {
            return Err(refuse(&format!("unknown column {h:?}")));
        }
        if index.insert(h.to_owned(), i).is_some() {
            return Err(refuse(&format!("column {h:?} appears twice")));
        }
    }
    for required in required {
        if !index.contains_key(*required) {
            return Err(refuse(&format!("the CSV has no {required:?} column")));
        }
    }
    Ok((reader, index))
}

/// An import CSV as read: ESR rows with their CSV line numbers, and the lines refused.
#[derive(Debug, Default)]
pub struct ReadCsv {
    /// (line, row) for every readable row.
    pub rows: Vec<(u64, pb::EsrRow)>,
    /// The unreadable lines.
    pub rejects: Vec<LocalReject>,
}

/// Reads a whole import CSV into ESR rows (with their CSV line numbers) and the rows
/// refused. The import itself streams ([`Extract`]); this is for small files and the fuzzer.
pub fn read_csv(input: impl std::io::Read) -> anyhow::Result<ReadCsv> {
    let mut read = ReadCsv::default();
    for row in Extract::open(input)? {
        match row {
            Ok(row) => read.rows.push(row),
            Err(reject) => read.rejects.push(reject),
        }
    }
    Ok(read)
}

/// An import CSV read one row at a time: its header checked on opening, then each data
/// row as an ESR row with its line number, or the reason it cannot be read.
pub struct Extract<R> {
    records: csv::StringRecordsIntoIter<R>,
    index: HashMap<String, usize>,
    line: u64,
}

impl<R: std::io::Read> Extract<R> {
    /// Checks the header: only known columns, and every required one.
    pub fn open(input: R) -> anyhow::Result<Self> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(input);
        let headers = reader.headers().context("reading the CSV header")?.clone();
        let mut index = HashMap::new();
        for (i, h) in headers.iter().enumerate() {
            if !IMPORT_COLUMNS.contains(&h) {
                bail!(
                    "unknown column {h:?}: the columns are {}",
                    IMPORT_COLUMNS.join(", ")
                );
            }
            index.insert(h.to_owned(), i);
        }
        for required in [
            "employee_number",
            "assignment_number",
            "forename",
            "surname",
        ] {
            if !index.contains_key(required) {
                bail!(
                    "the CSV has no {required:?} column: the columns are {}",
                    IMPORT_COLUMNS.join(", ")
                );
            }
        }
        if !["site", "location", "organisation"]
            .iter()
            .any(|c| index.contains_key(*c))
        {
            bail!(
                "the CSV has none of the columns \"site\", \"location\" and \"organisation\", which \
                 place a person: the columns are {}",
                IMPORT_COLUMNS.join(", ")
            );
        }
        Ok(Extract {
            records: reader.into_records(),
            index,
            line: 1,
        })
    }
}

impl<R: std::io::Read> Iterator for Extract<R> {
    type Item = Result<(u64, pb::EsrRow), LocalReject>;

    fn next(&mut self) -> Option<Self::Item> {
        let record = self.records.next()?;
        self.line += 1;
        let line = self.line;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                return Some(Err(LocalReject {
                    line,
                    column: String::new(),
                    reason: e.to_string(),
                }));
            }
        };
        let get = |c: &str| {
            self.index
                .get(c)
                .and_then(|&i| record.get(i))
                .unwrap_or("")
                .to_owned()
        };
        Some(
            to_row(&get)
                .map(|row| (line, row))
                .map_err(|(column, reason)| LocalReject {
                    line,
                    column: column.to_owned(),
                    reason,
                }),
        )
    }
}

fn to_row(get: &impl Fn(&str) -> String) -> Result<pb::EsrRow, (&'static str, String)> {
    fn date(column: &'static str, v: &str) -> Result<Option<Date>, (&'static str, String)> {
        if v.is_empty() {
            return Ok(None);
        }
        let d = NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map_err(|_| (column, format!("{v:?} is not a date (YYYY-MM-DD)")))?;
        Ok(Some(qi_platform::convert::date(d)))
    }
    let primary = match get("primary_assignment").to_ascii_lowercase().as_str() {
        "" | "y" | "yes" | "true" | "1" => true,
        "n" | "no" | "false" | "0" => false,
        other => return Err(("primary_assignment", format!("{other:?} is not Y or N"))),
    };
    let source_update_time = match get("source_update_time").as_str() {
        "" => None,
        v => {
            let t = DateTime::parse_from_rfc3339(v)
                .map_err(|_| {
                    (
                        "source_update_time",
                        format!("{v:?} is not an RFC 3339 time"),
                    )
                })?
                .with_timezone(&Utc);
            Some(qi_platform::convert::timestamp(t))
        }
    };
    Ok(pb::EsrRow {
        employee_number: get("employee_number"),
        assignment_number: get("assignment_number"),
        primary_assignment: primary,
        forename: get("forename"),
        surname: get("surname"),
        work_email: get("work_email"),
        staff_group: get("staff_group"),
        job_role: get("job_role"),
        occupation_code: get("occupation_code"),
        area_of_work: get("area_of_work"),
        position_title: get("position_title"),
        pay_band: get("pay_band"),
        organisation: get("organisation"),
        location: get("location"),
        site: get("site"),
        department: get("department"),
        assignment_status: get("assignment_status"),
        person_type: get("person_type"),
        hire_date: date("hire_date", &get("hire_date"))?,
        assignment_start_date: date("assignment_start_date", &get("assignment_start_date"))?,
        termination_date: date("termination_date", &get("termination_date"))?,
        source_update_time,
    })
}

/// A client of the training service through the gateway, sending `token` on every call.
pub async fn client(
    gateway: &str,
    token: &str,
) -> anyhow::Result<
    TrainingServiceClient<
        tonic::service::interceptor::InterceptedService<
            Channel,
            impl tonic::service::Interceptor + Clone,
        >,
    >,
> {
    let channel = tonic::transport::Endpoint::from_shared(gateway.to_owned())
        .with_context(|| format!("{gateway} is not a URL"))?
        .connect()
        .await
        .with_context(|| format!("connecting to the gateway at {gateway}"))?;
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {token}")
        .parse()
        .context("the token is not valid header text")?;
    Ok(
        TrainingServiceClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
            req.metadata_mut().insert("authorization", bearer.clone());
            Ok(req)
        })
        .max_decoding_message_size(qi_platform::server::MAX_MESSAGE_BYTES),
    )
}

/// Unreadable lines listed one by one; beyond this many only counted.
const REJECTS_LISTED: usize = 1_000;

/// What an import did, for the report and the exit status.
#[derive(Debug)]
pub struct ImportReport {
    /// The service's answer.
    pub response: pb::SyncStaffResponse,
    /// Rows refused: unreadable here, or refused by the service.
    pub refused: u64,
}

impl ImportReport {
    /// Whether any row was applied (inserted, updated, found unchanged, or a leaver marked).
    pub fn applied_any(&self) -> bool {
        let r = &self.response;
        r.inserted + r.updated + r.unchanged + r.deactivated > 0
    }
}

/// An import that applied some rows and refused others (exit status 3).
#[derive(Debug)]
pub struct SomeRowsRefused(pub u64);

impl std::fmt::Display for SomeRowsRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} rows were refused (listed above); the others were applied",
            self.0
        )
    }
}

impl std::error::Error for SomeRowsRefused {}

/// What the reading side of an import ends with.
struct Read {
    /// The CSV line of each row sent, by its position in the stream (the service numbers
    /// refusals by that position): 4 bytes a row.
    lines: Vec<u32>,
    listed: Vec<LocalReject>,
    unreadable: u64,
}

/// `qi hr import`: streams a CSV extract to `SyncStaff` in bounded memory (a batch at a
/// time, read as it is sent) and reports the outcome on `out`, with progress on `progress`
/// if given (a terminal). A FULL import stops at the first unreadable line and is never
/// applied: its stream ends without the `complete` marker, so the service discards it.
pub async fn import(
    gateway: &str,
    token: &str,
    file: &Path,
    full: bool,
    extract_id: &str,
    out: &mut impl Write,
) -> anyhow::Result<ImportReport> {
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let input = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let extract = Extract::open(std::io::BufReader::new(input))?;
    let mut client = client(gateway, token).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::SyncStaffRequest>(2);
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let header = pb::SyncStaffRequest {
        mode: if full {
            pb::SyncMode::Full
        } else {
            pb::SyncMode::Delta
        } as i32,
        extract_id: extract_id.to_owned(),
        extract_time: Some(qi_platform::convert::timestamp(Utc::now())),
        ..Default::default()
    };
    let reading = tokio::task::spawn_blocking({
        let sent = sent.clone();
        move || send_rows(extract, header, full, &tx, &sent)
    });
    let ticker = progress.then(|| tokio::spawn(show_progress(sent.clone())));
    let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    // Within the service's bulk cap (QI_BULK_TIMEOUT_MS, 30 minutes by default).
    req.set_timeout(std::time::Duration::from_secs(30 * 60));
    let answer = client.sync_staff(req).await;
    if let Some(t) = ticker {
        t.abort();
        eprintln!();
    }
    let read = reading.await.context("reading the CSV")??;
    for r in &read.listed {
        writeln!(out, "line {}: {}: {}", r.line, r.column, r.reason)?;
    }
    if read.unreadable > read.listed.len() as u64 {
        writeln!(
            out,
            "… and {} more unreadable lines",
            read.unreadable - read.listed.len() as u64
        )?;
    }
    if full && read.unreadable > 0 {
        // A FULL sync deactivates whoever is absent: never apply one with people left out.
        bail!(
            "line {} could not be read; a FULL sync without it would deactivate people, so \
             nothing was applied. Fix the file, or import it as a delta",
            read.listed.first().map_or(0, |r| r.line)
        );
    }
    let resp = answer
        .map_err(|s| anyhow::anyhow!("SyncStaff failed: {:?} {}", s.code(), s.message()))?
        .into_inner();
    for r in &resp.rejected {
        let line = usize::try_from(r.row_number - 1)
            .ok()
            .and_then(|i| read.lines.get(i))
            .map_or_else(|| "?".to_owned(), u32::to_string);
        writeln!(
            out,
            "line {line}: {}: {} ({})",
            r.field, r.reason, r.employee_number
        )?;
    }
    let unlisted = resp.rejected_rows - resp.rejected.len() as i64;
    if unlisted > 0 {
        writeln!(
            out,
            "… and {unlisted} more refused rows (the service lists the first 10,000)"
        )?;
    }
    for c in &resp.unmapped_codes {
        let kind = match pb::EsrCodeKind::try_from(c.kind) {
            Ok(pb::EsrCodeKind::Organisation) => "organisation",
            Ok(pb::EsrCodeKind::Location) => "location",
            Ok(pb::EsrCodeKind::Unspecified) | Err(_) => "code",
        };
        writeln!(
            out,
            "not in the ESR mapping: {kind} {} ({} rows): add it with `qi hr map import`",
            c.code, c.rows
        )?;
    }
    // Every refused row, listed or not (the service lists at most 10,000).
    let refused = u64::try_from(resp.rejected_rows).unwrap_or(0) + read.unreadable;
    writeln!(
        out,
        "rows {}: inserted {}, updated {}, unchanged {}, deactivated {}, refused {refused}",
        resp.received_rows, resp.inserted, resp.updated, resp.unchanged, resp.deactivated,
    )?;
    Ok(ImportReport {
        response: resp,
        refused,
    })
}

/// The reading side of an import (a blocking thread): sends the header, then the rows a
/// batch at a time, then the `complete` marker. Stops early (without the marker) at a FULL
/// import's first unreadable line, or when the call has ended.
fn send_rows<R: std::io::Read>(
    extract: Extract<R>,
    header: pb::SyncStaffRequest,
    full: bool,
    tx: &tokio::sync::mpsc::Sender<pb::SyncStaffRequest>,
    sent: &std::sync::atomic::AtomicU64,
) -> anyhow::Result<Read> {
    let mut read = Read {
        lines: Vec::new(),
        listed: Vec::new(),
        unreadable: 0,
    };
    if tx.blocking_send(header).is_err() {
        return Ok(read);
    }
    let mut batch = Vec::with_capacity(BATCH);
    for row in extract {
        match row {
            Ok((line, row)) => {
                read.lines.push(u32::try_from(line).unwrap_or(u32::MAX));
                batch.push(row);
            }
            Err(reject) => {
                read.unreadable += 1;
                if read.listed.len() < REJECTS_LISTED {
                    read.listed.push(reject);
                }
                if full {
                    return Ok(read);
                }
            }
        }
        if batch.len() == BATCH {
            let rows = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            let n = rows.len() as u64;
            if tx
                .blocking_send(pb::SyncStaffRequest {
                    rows,
                    ..Default::default()
                })
                .is_err()
            {
                return Ok(read);
            }
            sent.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let n = batch.len() as u64;
    // Only a stream whose last message says so is applied: a cut one changes nothing.
    let _ = tx.blocking_send(pb::SyncStaffRequest {
        rows: batch,
        complete: true,
        ..Default::default()
    });
    sent.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    Ok(read)
}

/// Rows sent and their rate, redrawn on the terminal twice a second.
async fn show_progress(sent: std::sync::Arc<std::sync::atomic::AtomicU64>) {
    let started = std::time::Instant::now();
    let mut ticks = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        ticks.tick().await;
        let n = sent.load(std::sync::atomic::Ordering::Relaxed);
        let rate = n as f64 / started.elapsed().as_secs_f64().max(0.001);
        eprint!("\r{n} rows sent, {rate:.0} rows/s   ");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csv_reads_rows_and_refuses_unreadable_ones_by_line() {
        let csv = "employee_number,assignment_number,forename,surname,site,hire_date,primary_assignment\n\
                   10000001,10000001,Ada,Lovelace,BAS,2019-04-01,Y\n\
                   10000002,10000002,Alan,Turing,SOU,01/04/2019,Y\n\
                   10000003,10000003-02,Grace,Hopper,BRM,,N\n";
        let ReadCsv { rows, rejects } = read_csv(csv.as_bytes()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, 2);
        assert_eq!(
            rows[0].1.hire_date,
            Some(Date {
                year: 2019,
                month: 4,
                day: 1
            })
        );
        assert!(!rows[1].1.primary_assignment);
        assert_eq!(
            rejects,
            [LocalReject {
                line: 3,
                column: "hire_date".into(),
                reason: "\"01/04/2019\" is not a date (YYYY-MM-DD)".into()
            }]
        );
    }

    #[test]
    fn unknown_or_missing_columns_stop_the_import() {
        assert!(read_csv("employee_number,nino\n1,2\n".as_bytes()).is_err());
        assert!(read_csv("employee_number,forename\n1,2\n".as_bytes()).is_err());
    }
}
