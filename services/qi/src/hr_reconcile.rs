//! `qi hr reconcile FILE.csv`: the register beside what ESR says (`ReconcileTraining`),
//! written as CSV: one line per person and course, in both, only in the register, only in
//! ESR, or in both with dates that disagree; the counts on standard error.
//!
//! The input CSV (ESR's competence records, e.g. a competence report or an extract's
//! competence columns) has a header row naming `employee_number`, `competence` and
//! `achieved_date`, in any order (an unknown, repeated or missing column is refused whole,
//! listing them). `competence` is the course's ESR competence id or name, its code or id;
//! dates are `YYYY-MM-DD`.

use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, bail};
use chrono::NaiveDate;
use prost::Message as _;
use qi_proto::google::r#type::Date;
use qi_proto::training as pb;

use crate::hr::{LocalReject, client};

/// The columns of an ESR competence CSV.
pub const RECORD_COLUMNS: [&str; 3] = ["employee_number", "competence", "achieved_date"];

/// The columns `qi hr reconcile` writes.
pub const OUTPUT_COLUMNS: [&str; 7] = [
    "kind",
    "employee_number",
    "name",
    "course_code",
    "register_date",
    "esr_date",
    "register_source",
];

/// The most records one reconciliation carries (the contract's bound).
pub const MAX_RECORDS: usize = 50_000;

/// The most bytes of records in one request: under the 4 MiB a message may carry.
const MAX_BYTES: usize = 3_500_000;

/// An ESR competence CSV as read: the records (with their lines) and the lines refused.
#[derive(Debug, Default)]
pub struct ReadRecords {
    /// (line, record) for every readable line.
    pub records: Vec<(u64, pb::EsrCompetenceRecord)>,
    /// The unreadable lines.
    pub rejects: Vec<LocalReject>,
}

fn header_error(what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{what}: an ESR competence CSV's columns are {} (all required)",
        RECORD_COLUMNS.join(", ")
    )
}

/// Reads an ESR competence CSV: its header, then each line alone.
pub fn read_records(input: impl std::io::Read) -> anyhow::Result<ReadRecords> {
    let (reader, index) =
        crate::hr::open_csv(input, &RECORD_COLUMNS, &RECORD_COLUMNS, header_error)?;
    let mut read = ReadRecords::default();
    for (i, record) in reader.into_records().enumerate() {
        let line = i as u64 + 2;
        let reject = |column: &str, reason: String| LocalReject {
            line,
            column: column.to_owned(),
            reason,
        };
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                read.rejects.push(reject("", e.to_string()));
                continue;
            }
        };
        let get = |c: &str| index.get(c).and_then(|&i| record.get(i)).unwrap_or("");
        let day = get("achieved_date");
        match NaiveDate::parse_from_str(day, "%Y-%m-%d") {
            Ok(d) => read.records.push((
                line,
                pb::EsrCompetenceRecord {
                    employee_number: get("employee_number").to_owned(),
                    competence: get("competence").to_owned(),
                    achieved_date: Some(qi_platform::convert::date(d)),
                },
            )),
            Err(_) => read.rejects.push(reject(
                "achieved_date",
                format!("{day:?} is not a date (YYYY-MM-DD)"),
            )),
        }
    }
    Ok(read)
}

fn kind_name(kind: i32) -> &'static str {
    match pb::ReconciliationKind::try_from(kind) {
        Ok(pb::ReconciliationKind::InBoth) => "in_both",
        Ok(pb::ReconciliationKind::RegisterOnly) => "register_only",
        Ok(pb::ReconciliationKind::EsrOnly) => "esr_only",
        Ok(pb::ReconciliationKind::DateMismatch) => "date_mismatch",
        Ok(pb::ReconciliationKind::Unspecified) | Err(_) => "",
    }
}

fn source_name(source: i32) -> &'static str {
    match pb::CompletionSource::try_from(source) {
        Ok(pb::CompletionSource::Course) => "course",
        Ok(pb::CompletionSource::HistoricRegister) => "historic",
        Ok(pb::CompletionSource::EsrCompetence) => "esr",
        Ok(pb::CompletionSource::InterAuthorityTransfer) => "transfer",
        Ok(pb::CompletionSource::Unspecified) | Err(_) => "",
    }
}

fn iso(d: Option<&Date>) -> String {
    d.map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day))
        .unwrap_or_default()
}

/// What a reconciliation found, for the exit status.
#[derive(Debug, Default, Clone)]
pub struct ReconcileReport {
    /// The service's counts.
    pub counts: pb::ReconciliationCounts,
    /// Entries written.
    pub written: u64,
    /// Lines refused: unreadable here, or by the service.
    pub refused: u64,
}

/// `qi hr reconcile`: sends the file's records to `ReconcileTraining` under `parent`, pages
/// through the entries writing each as a CSV line to `out`, and reports refused lines and
/// the counts on `log`.
pub async fn reconcile(
    gateway: &str,
    token: &str,
    parent: &str,
    file: &Path,
    out: &mut impl Write,
    log: &mut impl Write,
) -> anyhow::Result<ReconcileReport> {
    let input = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let read = read_records(std::io::BufReader::new(input))?;
    if read.records.len() > MAX_RECORDS {
        bail!(
            "{} records: a reconciliation takes at most {MAX_RECORDS}; keep the competences the \
             courses are recorded against",
            read.records.len()
        );
    }
    let esr_records: Vec<pb::EsrCompetenceRecord> =
        read.records.iter().map(|(_, r)| r.clone()).collect();
    let bytes: usize = esr_records.iter().map(|r| r.encoded_len() + 4).sum();
    if bytes > MAX_BYTES {
        bail!(
            "the records come to {bytes} bytes, over the {MAX_BYTES} one call carries; keep the \
             competences the courses are recorded against"
        );
    }
    let mut client = client(gateway, token).await?;
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(OUTPUT_COLUMNS)?;
    let mut report = ReconcileReport::default();
    let mut refusals = read.rejects;
    let mut page_token = String::new();
    loop {
        let resp = client
            .reconcile_training(pb::ReconcileTrainingRequest {
                parent: parent.to_owned(),
                esr_records: esr_records.clone(),
                kind: 0,
                page_size: 500,
                page_token: page_token.clone(),
            })
            .await
            .map_err(|s| {
                anyhow::anyhow!("ReconcileTraining failed: {:?} {}", s.code(), s.message())
            })?
            .into_inner();
        for r in &resp.rejected {
            let line = usize::try_from(r.index)
                .ok()
                .and_then(|i| read.records.get(i))
                .map_or(0, |(l, _)| *l);
            let column = r.field.rsplit('.').next().unwrap_or_default();
            refusals.push(LocalReject {
                line,
                column: column.to_owned(),
                reason: r.reason.clone(),
            });
        }
        if let Some(c) = resp.counts {
            report.counts = c;
        }
        for e in resp.entries {
            writer.write_record([
                kind_name(e.kind),
                e.staff.trim_start_matches("staff/"),
                &e.staff_display_name,
                &e.course_code,
                &iso(e.register_date.as_ref()),
                &iso(e.esr_date.as_ref()),
                source_name(e.register_source),
            ])?;
            report.written += 1;
        }
        if resp.next_page_token.is_empty() {
            break;
        }
        page_token = resp.next_page_token;
    }
    writer.flush()?;
    refusals.sort_by_key(|r| r.line);
    let mut lines: Vec<u64> = refusals.iter().map(|r| r.line).collect();
    lines.dedup();
    report.refused = lines.len() as u64;
    for r in &refusals {
        writeln!(log, "line {}: {}: {}", r.line, r.column, r.reason)?;
    }
    let c = &report.counts;
    writeln!(
        log,
        "in both {}, register only {}, ESR only {}, dates disagree {}; left out: other competences {}, not at these sites {}, refused {}",
        c.in_both,
        c.register_only,
        c.esr_only,
        c.date_mismatches,
        c.other_competences,
        c.not_at_sites,
        report.refused
    )?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_read_alone_and_a_wrong_header_is_refused_whole() {
        let csv = "competence,employee_number,achieved_date\n\
                   QSIR-FUND,10000001,2019-05-14\n\
                   37210002,10000002,14/05/2019\n";
        let read = read_records(csv.as_bytes()).unwrap();
        assert_eq!(read.records.len(), 1);
        assert_eq!(read.records[0].0, 2);
        assert_eq!(
            (read.rejects[0].line, read.rejects[0].column.as_str()),
            (3, "achieved_date")
        );
        let e = read_records("employee_number,course,achieved_date\n".as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("employee_number, competence, achieved_date"),
            "{e}"
        );
    }
}
