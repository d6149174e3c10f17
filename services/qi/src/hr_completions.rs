//! `qi hr completions import FILE.csv`: completions achieved elsewhere (the historic
//! register from before the system, ESR competences, training at another trust brought by an
//! Inter Authority Transfer) into the register, through the gateway with an `hr_sync` token.
//!
//! The CSV has a header row naming these columns, in any order: `employee_number`, `course`,
//! `completion_date`, `source` (required), `source_reference`, `previous_organisation`,
//! `expiry_date`. `course` is the course's code (`QSIR-PRAC`) or name
//! (`trust/courses/qsir-prac`); dates are `YYYY-MM-DD`; `source` is `historic`, `esr` or
//! `transfer`. A header with an unknown, repeated or missing column is refused whole, listing
//! the columns; a bad line is refused alone, by line and column, and the others apply.
//! Importing the same file again adds nothing.

use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, bail};
use chrono::NaiveDate;
use prost::Message as _;
use qi_proto::training as pb;

use crate::hr::{LocalReject, client};

/// The columns of a completions CSV.
pub const COMPLETION_COLUMNS: [&str; 7] = [
    "employee_number",
    "course",
    "completion_date",
    "source",
    "source_reference",
    "previous_organisation",
    "expiry_date",
];

/// The columns every completions CSV must have.
const REQUIRED: [&str; 4] = ["employee_number", "course", "completion_date", "source"];

/// Rows per `ImportCompletions` call: the contract's bound.
pub const BATCH_ROWS: usize = 5_000;

/// Encoded bytes of rows per call: under the 4 MiB a message may carry, with room for the
/// rest of the request (a row of long references is some 1.7 kB, so 5,000 of them would not
/// fit).
pub const BATCH_BYTES: usize = 3 * 1024 * 1024;

/// One readable line: its line number and the completion it gives.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionLine {
    /// The CSV line (1 is the header).
    pub line: u64,
    /// The completion.
    pub completion: pb::ImportedCompletion,
}

/// A completions CSV as read: the readable lines and the lines refused.
#[derive(Debug, Default)]
pub struct ReadCompletions {
    /// Every readable line.
    pub lines: Vec<CompletionLine>,
    /// The lines refused, by line and column.
    pub rejects: Vec<LocalReject>,
}

/// The header's complaint: what is wrong, and the columns a completions CSV has.
fn header_error(what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{what}: a completions CSV's columns are {} ({} required); nothing was imported",
        COMPLETION_COLUMNS.join(", "),
        REQUIRED.join(", ")
    )
}

/// Reads a completions CSV: checks its header, then each line on its own.
pub fn read_completions(input: impl std::io::Read) -> anyhow::Result<ReadCompletions> {
    let (reader, index) = crate::hr::open_csv(input, &COMPLETION_COLUMNS, &REQUIRED, header_error)?;
    let mut read = ReadCompletions::default();
    for (i, record) in reader.into_records().enumerate() {
        let line = i as u64 + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                read.rejects.push(LocalReject {
                    line,
                    column: String::new(),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let get = |c: &str| index.get(c).and_then(|&i| record.get(i)).unwrap_or("");
        match to_completion(&get) {
            Ok(completion) => read.lines.push(CompletionLine { line, completion }),
            Err((column, reason)) => read.rejects.push(LocalReject {
                line,
                column: column.to_owned(),
                reason,
            }),
        }
    }
    Ok(read)
}

/// A source as the CSV spells it.
fn source(v: &str) -> Result<pb::CompletionSource, (&'static str, String)> {
    match v.to_ascii_lowercase().replace([' ', '-'], "_").as_str() {
        "historic" | "historic_register" => Ok(pb::CompletionSource::HistoricRegister),
        "esr" | "esr_competence" => Ok(pb::CompletionSource::EsrCompetence),
        "transfer" | "iat" | "inter_authority_transfer" => {
            Ok(pb::CompletionSource::InterAuthorityTransfer)
        }
        _ => Err((
            "source",
            format!("{v:?} is not a source: use historic, esr or transfer"),
        )),
    }
}

fn to_completion<'a>(
    get: &impl Fn(&str) -> &'a str,
) -> Result<pb::ImportedCompletion, (&'static str, String)> {
    fn date(
        column: &'static str,
        v: &str,
    ) -> Result<Option<qi_proto::google::r#type::Date>, (&'static str, String)> {
        if v.is_empty() {
            return Ok(None);
        }
        let d = NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map_err(|_| (column, format!("{v:?} is not a date (YYYY-MM-DD)")))?;
        Ok(Some(qi_platform::convert::date(d)))
    }
    for required in REQUIRED {
        if get(required).is_empty() {
            return Err((required, "is required".into()));
        }
    }
    Ok(pb::ImportedCompletion {
        employee_number: get("employee_number").to_owned(),
        course: get("course").to_owned(),
        completion_date: date("completion_date", get("completion_date"))?,
        source: source(get("source"))? as i32,
        source_reference: get("source_reference").to_owned(),
        previous_organisation: get("previous_organisation").to_owned(),
        expiry_date: date("expiry_date", get("expiry_date"))?,
    })
}

/// The CSV column a service field names (`completions[3].course` → `course`).
fn column_of(field: &str) -> String {
    match field.rsplit_once('.') {
        Some((_, c)) if COMPLETION_COLUMNS.contains(&c) => c.to_owned(),
        _ => String::new(),
    }
}

/// Splits the lines into calls: at most [`BATCH_ROWS`] rows and [`BATCH_BYTES`] encoded
/// bytes each.
pub fn batches(lines: &[CompletionLine]) -> Vec<&[CompletionLine]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, l) in lines.iter().enumerate() {
        // The element's bytes in the request: its tag, its length and itself.
        let size = l.completion.encoded_len() + 4;
        if i > start && (i - start == BATCH_ROWS || bytes + size > BATCH_BYTES) {
            out.push(&lines[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < lines.len() {
        out.push(&lines[start..]);
    }
    out
}

/// What an import did, for the report and the exit status.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompletionsReport {
    /// Completions added.
    pub inserted: u64,
    /// Completions whose evidence or expiry changed.
    pub updated: u64,
    /// Completions already there as the file has them.
    pub unchanged: u64,
    /// Lines kept out: the person completed the course here already.
    pub kept_earned_here: u64,
    /// Lines refused: unreadable here, or refused by the service.
    pub refused: u64,
}

impl CompletionsReport {
    /// Whether any line was applied (added, changed, found as it is, or kept out).
    pub fn applied_any(&self) -> bool {
        self.inserted + self.updated + self.unchanged + self.kept_earned_here > 0
    }
}

/// Whether a failed call may be sent again as it was (same request id, so never twice).
fn retryable(code: tonic::Code) -> bool {
    matches!(code, tonic::Code::Unavailable | tonic::Code::Aborted)
}

/// `qi hr completions import`: reads the whole file (a wrong header stops it before
/// anything is sent), sends its readable lines to `ImportCompletions` under `parent`
/// (`sites/{site}` or `sites/-`) in calls of at most [`BATCH_ROWS`] rows and
/// [`BATCH_BYTES`] bytes, each applied whole or not at all and retried with its request id
/// if the connection fails, and reports every refused line on `out`, then the totals.
pub async fn import(
    gateway: &str,
    token: &str,
    parent: &str,
    file: &Path,
    out: &mut impl Write,
) -> anyhow::Result<CompletionsReport> {
    let input = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let read = read_completions(std::io::BufReader::new(input))?;
    let mut client = client(gateway, token).await?;
    let mut report = CompletionsReport {
        refused: read.rejects.len() as u64,
        ..Default::default()
    };
    let mut refusals = read.rejects;
    for chunk in batches(&read.lines) {
        let req = pb::ImportCompletionsRequest {
            parent: parent.to_owned(),
            completions: chunk.iter().map(|l| l.completion.clone()).collect(),
            request_id: uuid::Uuid::new_v4().to_string(),
        };
        let mut attempt = 0;
        let resp = loop {
            attempt += 1;
            match client.import_completions(req.clone()).await {
                Ok(r) => break r.into_inner(),
                Err(s) if retryable(s.code()) && attempt < 3 => {
                    tokio::time::sleep(std::time::Duration::from_millis(250 * attempt)).await;
                }
                Err(s) => bail!(
                    "ImportCompletions failed: {:?} {} (calls before this one were applied; \
                     importing the file again completes it without duplicates)",
                    s.code(),
                    s.message()
                ),
            }
        };
        report.inserted += u64::try_from(resp.inserted).unwrap_or(0);
        report.updated += u64::try_from(resp.updated).unwrap_or(0);
        report.unchanged += u64::try_from(resp.unchanged).unwrap_or(0);
        report.kept_earned_here += u64::try_from(resp.kept_earned_here).unwrap_or(0);
        let mut refused_here = std::collections::BTreeSet::new();
        for r in resp.rejected {
            let line = usize::try_from(r.index)
                .ok()
                .and_then(|i| chunk.get(i))
                .map_or(0, |l| l.line);
            refused_here.insert(r.index);
            refusals.push(LocalReject {
                line,
                column: column_of(&r.field),
                reason: r.reason,
            });
        }
        report.refused += refused_here.len() as u64;
    }
    refusals.sort_by_key(|r| r.line);
    for r in &refusals {
        writeln!(out, "line {}: {}: {}", r.line, r.column, r.reason)?;
    }
    writeln!(
        out,
        "completions: inserted {}, updated {}, unchanged {}, kept out (completed here already) {}, refused {}",
        report.inserted, report.updated, report.unchanged, report.kept_earned_here, report.refused
    )?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_line_is_read_alone_and_a_bad_one_named_by_line_and_column() {
        let csv = "source,employee_number,course,completion_date,source_reference,previous_organisation\n\
                   historic,10000001,QSIR-FUND,2019-05-14,Register 2019 p.3,\n\
                   transfer,10000002,QSIR-PRAC,14/05/2019,IAT 77,Mid Essex\n\
                   elsewhere,10000003,QSIR-PRAC,2019-05-14,,\n\
                   esr,,QSIR-PRAC,2019-05-14,,\n\
                   ESR Competence,10000005,trust/courses/qsir-prac,2020-01-02,extract 7,\n";
        let read = read_completions(csv.as_bytes()).unwrap();
        let lines: Vec<u64> = read.lines.iter().map(|l| l.line).collect();
        assert_eq!(lines, [2, 6]);
        assert_eq!(
            read.lines[1].completion.source,
            pb::CompletionSource::EsrCompetence as i32
        );
        assert_eq!(
            read.lines[0].completion.source_reference,
            "Register 2019 p.3"
        );
        let refused: Vec<(u64, &str)> = read
            .rejects
            .iter()
            .map(|r| (r.line, r.column.as_str()))
            .collect();
        assert_eq!(
            refused,
            [
                (3, "completion_date"),
                (4, "source"),
                (5, "employee_number")
            ]
        );
    }

    #[test]
    fn a_wrong_header_is_refused_whole_listing_the_columns() {
        for header in [
            "employee_number,course,completion_date,source,cohort\n",
            "employee_number,course,completion_date\n",
            "employee_number,course,course,completion_date,source\n",
        ] {
            let e = read_completions(header.as_bytes()).unwrap_err().to_string();
            assert!(
                e.contains("employee_number, course, completion_date, source, source_reference"),
                "{e}"
            );
        }
    }

    #[test]
    fn calls_are_bounded_by_rows_and_by_bytes() {
        let line = |n: u64, text: &str| CompletionLine {
            line: n,
            completion: pb::ImportedCompletion {
                employee_number: "10000001".into(),
                source_reference: text.into(),
                previous_organisation: text.into(),
                ..Default::default()
            },
        };
        let short: Vec<_> = (0..12_001).map(|n| line(n, "")).collect();
        let sizes: Vec<usize> = batches(&short).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [5_000, 5_000, 2_001]);
        // The longest a row can be: 200 four-byte characters in each text.
        let long = "𝔸".repeat(200);
        let big: Vec<_> = (0..5_000).map(|n| line(n, &long)).collect();
        let calls = batches(&big);
        assert!(calls.len() > 1);
        for c in &calls {
            let bytes: usize = c.iter().map(|l| l.completion.encoded_len() + 4).sum();
            assert!(bytes <= BATCH_BYTES);
        }
        assert_eq!(calls.iter().map(|c| c.len()).sum::<usize>(), 5_000);
        assert!(batches(&[]).is_empty());
    }
}
