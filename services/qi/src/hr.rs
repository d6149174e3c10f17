//! `qi hr import` and `qi hr export`: HR's CSV files in and out, through the gateway with a
//! token like any other client (the `hr_sync` role, trust-wide).
//!
//! The import CSV has a header row with these columns (order free, unknown columns refused,
//! `employee_number`, `assignment_number`, `forename`, `surname` and `site` required):
//! `employee_number, assignment_number, primary_assignment, forename, surname, work_email,
//! staff_group, job_role, occupation_code, area_of_work, position_title, pay_band,
//! organisation, site, department, assignment_status, person_type, hire_date,
//! assignment_start_date, termination_date, source_update_time`.
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
pub const IMPORT_COLUMNS: [&str; 21] = [
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
    "site",
    "department",
    "assignment_status",
    "person_type",
    "hire_date",
    "assignment_start_date",
    "termination_date",
    "source_update_time",
];

/// The columns of the export CSV.
pub const EXPORT_COLUMNS: [&str; 9] = [
    "cursor",
    "kind",
    "employee_number",
    "assignment_number",
    "competence_name",
    "course_code",
    "achieved_date",
    "expiry_date",
    "source",
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

/// An import CSV as read: ESR rows with their CSV line numbers, and the lines refused.
#[derive(Debug, Default)]
pub struct ReadCsv {
    /// (line, row) for every readable row.
    pub rows: Vec<(u64, pb::EsrRow)>,
    /// The unreadable lines.
    pub rejects: Vec<LocalReject>,
}

/// Reads an import CSV into ESR rows (with their CSV line numbers) and the rows refused.
pub fn read_csv(input: impl std::io::Read) -> anyhow::Result<ReadCsv> {
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
        "site",
    ] {
        if !index.contains_key(required) {
            bail!("the CSV has no {required:?} column");
        }
    }
    let mut rows = Vec::new();
    let mut rejects = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                rejects.push(LocalReject {
                    line,
                    column: String::new(),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let get = |c: &str| {
            index
                .get(c)
                .and_then(|&i| record.get(i))
                .unwrap_or("")
                .to_owned()
        };
        match to_row(&get) {
            Ok(row) => rows.push((line, row)),
            Err((column, reason)) => rejects.push(LocalReject {
                line,
                column: column.to_owned(),
                reason,
            }),
        }
    }
    Ok(ReadCsv { rows, rejects })
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

/// `qi hr import`: streams a CSV extract to `SyncStaff` and reports the outcome on `out`.
pub async fn import(
    gateway: &str,
    token: &str,
    file: &Path,
    full: bool,
    extract_id: &str,
    out: &mut impl Write,
) -> anyhow::Result<pb::SyncStaffResponse> {
    let reader =
        std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let ReadCsv {
        rows,
        rejects: local,
    } = read_csv(reader)?;
    for r in &local {
        writeln!(out, "line {}: {}: {}", r.line, r.column, r.reason)?;
    }
    if full && !local.is_empty() {
        // A FULL sync deactivates whoever is absent: never send one with people left out.
        bail!(
            "{} rows could not be read; a FULL sync without them would deactivate those people. Fix the file, or import it as a delta",
            local.len()
        );
    }
    let lines: Vec<u64> = rows.iter().map(|(l, _)| *l).collect();
    let header = pb::SyncStaffRequest {
        mode: if full {
            pb::SyncMode::Full
        } else {
            pb::SyncMode::Delta
        } as i32,
        extract_id: extract_id.to_owned(),
        extract_time: Some(qi_platform::convert::timestamp(Utc::now())),
        rows: Vec::new(),
        complete: false,
    };
    let mut messages = vec![header];
    let all: Vec<pb::EsrRow> = rows.into_iter().map(|(_, r)| r).collect();
    for chunk in all.chunks(BATCH) {
        messages.push(pb::SyncStaffRequest {
            rows: chunk.to_vec(),
            ..Default::default()
        });
    }
    // Only a stream whose last message says so is applied: a cut one changes nothing.
    if let Some(last) = messages.last_mut() {
        last.complete = true;
    }
    let mut client = client(gateway, token).await?;
    let resp = client
        .sync_staff(tokio_stream::iter(messages))
        .await
        .map_err(|s| anyhow::anyhow!("SyncStaff failed: {:?} {}", s.code(), s.message()))?
        .into_inner();
    for r in &resp.rejected {
        let line = usize::try_from(r.row_number - 1)
            .ok()
            .and_then(|i| lines.get(i))
            .map_or_else(|| "?".to_owned(), u64::to_string);
        writeln!(
            out,
            "line {line}: {}: {} ({})",
            r.field, r.reason, r.employee_number
        )?;
    }
    writeln!(
        out,
        "rows {}: inserted {}, updated {}, unchanged {}, deactivated {}, refused {}",
        resp.received_rows,
        resp.inserted,
        resp.updated,
        resp.unchanged,
        resp.deactivated,
        resp.rejected.len() + local.len()
    )?;
    Ok(resp)
}

/// `qi hr export`: writes the register's changes after `since` as CSV to `out`; returns the
/// last cursor (to resume from), if any change was written.
pub async fn export(
    gateway: &str,
    token: &str,
    since: &str,
    out: &mut impl Write,
) -> anyhow::Result<Option<String>> {
    let mut client = client(gateway, token).await?;
    let mut stream = client
        .stream_training_records(pb::StreamTrainingRecordsRequest {
            since_cursor: since.to_owned(),
        })
        .await
        .map_err(|s| {
            anyhow::anyhow!(
                "StreamTrainingRecords failed: {:?} {}",
                s.code(),
                s.message()
            )
        })?
        .into_inner();
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(EXPORT_COLUMNS)?;
    let mut last = None;
    while let Some(batch) = stream
        .message()
        .await
        .map_err(|s| anyhow::anyhow!("the export stream broke: {:?} {}", s.code(), s.message()))?
    {
        for c in batch.changes {
            let kind = match pb::TrainingRecordChangeKind::try_from(c.kind) {
                Ok(pb::TrainingRecordChangeKind::Revoked) => "revoked",
                Ok(
                    pb::TrainingRecordChangeKind::Achieved
                    | pb::TrainingRecordChangeKind::Unspecified,
                )
                | Err(_) => "achieved",
            };
            let show = |d: Option<Date>| {
                d.map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day))
                    .unwrap_or_default()
            };
            writer.write_record([
                c.cursor.as_str(),
                kind,
                &c.employee_number,
                &c.assignment_number,
                &c.competence_name,
                &c.course_code,
                &show(c.achieved_date),
                &show(c.expiry_date),
                &c.source,
            ])?;
            last = Some(c.cursor);
        }
    }
    writer.flush()?;
    Ok(last)
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
