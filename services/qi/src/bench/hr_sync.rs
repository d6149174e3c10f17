//! The `hr-sync` scenario: `SyncStaff` of a whole ESR extract through the gateway against
//! a raw `COPY` of the same rows, and `qi hr import` of a large extract as a process. The
//! extract's rows carry ESR codes, not sites, as real ones do: the sync places them through
//! the ESR mapping (loaded first, outside the timing), and the `COPY` baseline writes the
//! places it gives.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::Context as _;
use qi_proto::google::r#type::Date;
use qi_proto::training as pb;
use qi_proto::training::training_service_client::TrainingServiceClient;
use serde_json::{Map, Value, json};

use super::figures::put;
use super::headers::{bearer, with_header};
use super::{Deployment, Effort, Outcome, Target};

/// `SyncStaff` of a whole extract through the gateway, against a raw `COPY` of the same
/// rows into a table of the same shape in the same database.
pub(super) async fn hr_sync(d: &Deployment, effort: Effort) -> anyhow::Result<Outcome> {
    let admin = super::raw_pool(d, 2, None).await?;
    sqlx::query("CREATE SCHEMA IF NOT EXISTS bench")
        .execute(&admin)
        .await?;
    // The same table shape, indexes included: the baseline pays what the sync pays to keep them.
    sqlx::query("CREATE TABLE IF NOT EXISTS bench.staff_copy (LIKE training.staff INCLUDING ALL)")
        .execute(&admin)
        .await?;
    let token = bearer(&d.token("bench-hr", &["hr_sync"])?)?;
    let reader = bearer(&d.token("bench-feed", &["viewer"])?)?;
    let client = TrainingServiceClient::new(d.gateway.clone())
        .max_decoding_message_size(qi_platform::server::MAX_MESSAGE_BYTES);
    load_mapping(&client, &token).await?;
    let mut f = Map::new();
    let mut targets = Vec::new();
    let largest = effort.sync_rows.iter().copied().max().unwrap_or(0);
    for &n in effort.sync_rows {
        let rows = synthetic_rows(n);
        let text = copy_text(&rows);
        // The same rows in key order: the stronger peer. The sync sorts what it inserts, and
        // a COPY in extract order pays for inserting into `staff`'s indexes at random places.
        let sorted = {
            let mut lines: Vec<&str> = text.lines().collect();
            lines.sort_unstable();
            let mut sorted = lines.join("\n");
            sorted.push('\n');
            sorted
        };
        let messages = extract(rows);
        let (mut sync_s, mut resend_s, mut copy_s) = (Vec::new(), Vec::new(), Vec::new());
        let mut sorted_s = Vec::new();
        let mut replay_from = None;
        let mut peak_mib = 0f64;
        for round in 0..effort.rounds {
            eprintln!("  {n} rows: round {}/{}", round + 1, effort.rounds);
            sqlx::query("TRUNCATE training.staff CASCADE")
                .execute(&admin)
                .await?;
            if n == largest {
                d.reset_peak("training")?;
                // The last round's changes are replayed below.
                replay_from = Some(feed_now(&client, &reader).await?);
            }
            settle(&admin).await;
            let cpu = d.cpu_seconds();
            let (secs, resp) = sync(&client, &token, messages.clone()).await?;
            sync_s.push(secs);
            if n == largest {
                cpu_used(&mut f, &format!("sync {n} rows"), &cpu, &d.cpu_seconds());
            }
            anyhow::ensure!(
                resp.inserted == n as i64,
                "the sync inserted {} of {n} ({} refused, e.g. {:?})",
                resp.inserted,
                resp.rejected_rows,
                resp.rejected.first()
            );
            // The same extract again, taken later: every person is there and unchanged.
            settle(&admin).await;
            let cpu = d.cpu_seconds();
            let (secs, resp) = sync(&client, &token, messages.clone()).await?;
            resend_s.push(secs);
            if n == largest {
                cpu_used(&mut f, &format!("re-send {n} rows"), &cpu, &d.cpu_seconds());
            }
            anyhow::ensure!(
                resp.unchanged == n as i64 && resp.updated + resp.inserted == 0,
                "the re-sent extract changed something: {resp:?}"
            );
            if n == largest {
                peak_mib = peak_mib.max(d.peak_resident_mib("training")?);
            }

            copy_s.push(copy_baseline(&admin, &text).await?);
            sorted_s.push(copy_baseline(&admin, &sorted).await?);
        }
        let sync = put(&mut f, &format!("sync {n} rows s"), &sync_s);
        let resend = put(&mut f, &format!("unchanged re-send {n} rows s"), &resend_s);
        let copy = put(&mut f, &format!("COPY {n} rows s"), &copy_s);
        let in_order = put(&mut f, &format!("COPY {n} rows in key order s"), &sorted_s);
        let ratio = sync / copy;
        f.insert(format!("sync/COPY {n} rows"), json!(ratio));
        f.insert(
            format!("sync/COPY in key order {n} rows"),
            json!(sync / in_order),
        );
        f.insert(format!("re-send/COPY {n} rows"), json!(resend / copy));
        if n == largest {
            f.insert(format!("training peak {n} rows MiB"), json!(peak_mib));
            if let Some(cursor) = replay_from {
                replay(&admin, &client, &reader, &cursor, n, &mut f, &mut targets).await?;
            }
        }
        match n {
            15_000 => targets.push(Target::at_most("sync 15,000 rows (s)", 2.0, sync)),
            100_000 => targets.push(Target::at_most("sync 100,000 rows / COPY", 3.0, ratio)),
            1_500_000 => {
                targets.push(Target::at_most("sync 1,500,000 rows / COPY", 2.0, ratio));
                targets.push(Target::at_most(
                    "unchanged re-send 1,500,000 rows / COPY",
                    1.0,
                    resend / copy,
                ));
                targets.push(Target::at_most(
                    "training peak in a 1,500,000-row sync (MiB)",
                    200.0,
                    peak_mib,
                ));
            }
            _ => {}
        }
    }
    super::hr_completions::import(&admin, &client, &token, effort, &mut f, &mut targets).await?;
    sqlx::query("DROP SCHEMA bench CASCADE")
        .execute(&admin)
        .await?;
    admin.close().await;
    cli_import(d, effort.cli_rows, &mut f, &mut targets).await?;
    Ok(Outcome {
        name: "hr-sync",
        figures: f,
        targets,
    })
}

type Bearer = tonic::metadata::MetadataValue<tonic::metadata::Ascii>;

/// The training feed's cursor now (its first checkpoint when opened at NOW).
async fn feed_now(
    client: &TrainingServiceClient<tonic::transport::Channel>,
    reader: &Bearer,
) -> anyhow::Result<String> {
    let req = pb::WatchChangesRequest {
        start: qi_proto::common::WatchStart::Now.into(),
        ..Default::default()
    };
    let mut feed = client
        .clone()
        .watch_changes(with_header(req, "authorization", reader))
        .await?
        .into_inner();
    let first = feed.message().await?.context("the feed ended at once")?;
    Ok(first.cursor)
}

/// A consumer's replay of the last sync's `n` people from the training feed (each rendered
/// as stored, through the gateway) against a `COPY … TO` of the same people.
async fn replay(
    admin: &sqlx::PgPool,
    client: &TrainingServiceClient<tonic::transport::Channel>,
    reader: &Bearer,
    cursor: &str,
    n: usize,
    f: &mut Map<String, Value>,
    targets: &mut Vec<Target>,
) -> anyhow::Result<()> {
    eprintln!("  replay of the sync's {n} people from the training feed");
    let t = Instant::now();
    let req = pb::WatchChangesRequest {
        cursor: cursor.into(),
        collections: vec!["staff".into()],
        page_size: 1000,
        ..Default::default()
    };
    let mut feed = client
        .clone()
        .max_decoding_message_size(qi_platform::server::MAX_MESSAGE_BYTES)
        .watch_changes(with_header(req, "authorization", reader))
        .await?
        .into_inner();
    let mut read = 0;
    while let Some(m) = feed.message().await? {
        if m.kind() == qi_proto::common::ChangeKind::Checkpoint {
            break;
        }
        anyhow::ensure!(m.resource.is_some(), "a staff change without its person");
        read += 1;
    }
    let replay_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(read == n, "the replay read {read} of the sync's {n} people");
    #[expect(
        clippy::disallowed_methods,
        reason = "the raw-SQL baseline, outside any call"
    )]
    let mut conn = admin.acquire().await?;
    let t = Instant::now();
    let mut out = conn
        .copy_out_raw("COPY (SELECT * FROM training.staff ORDER BY employee_number) TO STDOUT")
        .await?;
    while let Some(chunk) = tokio_stream::StreamExt::next(&mut out).await {
        chunk?;
    }
    let copy_s = t.elapsed().as_secs_f64();
    f.insert(format!("feed replay {n} people s"), json!(replay_s));
    f.insert(format!("COPY TO {n} people s"), json!(copy_s));
    let ratio = replay_s / copy_s.max(f64::EPSILON);
    f.insert(format!("feed replay/COPY TO {n} people"), json!(ratio));
    targets.push(Target::at_most(
        "feed replay of a sync's people / COPY TO of them",
        3.0,
        ratio,
    ));
    Ok(())
}

/// The CPU seconds each part of the deployment spent on `what` (the last round's): on two
/// shared cores, where a step's time goes.
fn cpu_used(f: &mut Map<String, Value>, what: &str, before: &[(&str, f64)], after: &[(&str, f64)]) {
    for ((part, b), (_, a)) in before.iter().zip(after) {
        f.insert(format!("{what} CPU s: {part}"), json!(a - b));
    }
}

/// `rows` as a FULL extract's messages, 1,000 rows each, the last marked complete.
fn extract(rows: Vec<pb::EsrRow>) -> Vec<pb::SyncStaffRequest> {
    let mut messages = vec![pb::SyncStaffRequest {
        mode: pb::SyncMode::Full as i32,
        extract_id: format!("bench-{}", rows.len()),
        ..Default::default()
    }];
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        messages.push(pb::SyncStaffRequest {
            rows: rows.by_ref().take(1_000).collect(),
            ..Default::default()
        });
    }
    if let Some(last) = messages.last_mut() {
        last.complete = true;
    }
    messages
}

/// Sends `messages` as one `SyncStaff` through the gateway, dated now: its time and answer.
async fn sync(
    client: &TrainingServiceClient<tonic::transport::Channel>,
    token: &tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    mut messages: Vec<pb::SyncStaffRequest>,
) -> anyhow::Result<(f64, pb::SyncStaffResponse)> {
    messages[0].extract_time = Some(qi_platform::convert::timestamp(chrono::Utc::now()));
    let t = Instant::now();
    let resp = client
        .clone()
        .sync_staff(with_header(
            tokio_stream::iter(messages),
            "authorization",
            token,
        ))
        .await
        .context("SyncStaff")?
        .into_inner();
    Ok((t.elapsed().as_secs_f64(), resp))
}

/// The bench trust's ESR mapping: each site's location, and the wards' cost centres.
const SITES: [&str; 3] = ["BAS", "BRM", "SOU"];
/// Wards (and so ward cost centres) per site in the synthetic extract.
const WARDS: usize = 20;

/// The ESR codes of synthetic row `i`: its location, its organisation (its ward's cost
/// centre), and the site and ward the mapping places it at.
fn codes(i: usize) -> (String, String, &'static str, String) {
    let site = SITES[i % SITES.len()];
    let ward = (i / SITES.len()) % WARDS;
    (
        format!("{site}-MAIN"),
        format!("CC-{site}-W{ward}"),
        site,
        format!("sites/{site}/wards/ward-{ward}"),
    )
}

/// Loads the mapping [`codes`] uses, through the gateway (a second run changes nothing).
async fn load_mapping(
    client: &TrainingServiceClient<tonic::transport::Channel>,
    token: &tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
) -> anyhow::Result<()> {
    for site in SITES {
        let mut mappings = vec![pb::EsrMapping {
            name: format!("sites/{site}/esrMappings/location.{site}-MAIN"),
            ..Default::default()
        }];
        mappings.extend((0..WARDS).map(|w| pb::EsrMapping {
            name: format!("sites/{site}/esrMappings/organisation.CC-{site}-W{w}"),
            ward: format!("sites/{site}/wards/ward-{w}"),
            ..Default::default()
        }));
        let resp = client
            .clone()
            .batch_upsert_esr_mappings(with_header(
                pb::BatchUpsertEsrMappingsRequest {
                    parent: format!("sites/{site}"),
                    esr_mappings: mappings,
                    request_id: String::new(),
                },
                "authorization",
                token,
            ))
            .await
            .context("BatchUpsertEsrMappings")?
            .into_inner();
        anyhow::ensure!(resp.rejected.is_empty(), "mapping refused: {resp:?}");
    }
    Ok(())
}

/// `qi hr import --full` of an `n`-row CSV extract as HR would run it (this binary, as a
/// process, against the gateway): its wall time and its own peak resident memory, read from
/// /proc while it runs, which must stay under 64 MiB whatever the file's size.
async fn cli_import(
    d: &Deployment,
    n: usize,
    f: &mut Map<String, Value>,
    targets: &mut Vec<Target>,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("extract.csv");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
    writeln!(
        out,
        "employee_number,assignment_number,forename,surname,location,organisation,staff_group,job_role,pay_band,department"
    )?;
    for r in synthetic_rows(n) {
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{}",
            r.employee_number,
            r.assignment_number,
            r.forename,
            r.surname,
            r.location,
            r.organisation,
            r.staff_group,
            r.job_role,
            r.pay_band,
            r.department
        )?;
    }
    out.flush()?;
    drop(out);
    let gateway = d.gateway_url().context("the gateway's address")?;
    eprintln!("  qi hr import of {n} rows");
    let started = Instant::now();
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["hr", "import", "--full", "--gateway", &gateway])
        .arg(&file)
        .env("QI_TOKEN", d.token("bench-hr", &["hr_sync"])?)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting qi hr import")?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    let status = loop {
        if let Some(kib) = std::fs::read_to_string(&status_file).ok().and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        }) {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    anyhow::ensure!(status.success(), "qi hr import of {n} rows exited {status}");
    let peak = peak_kib as f64 / 1024.0;
    f.insert(
        format!("qi hr import {n} rows s"),
        json!(started.elapsed().as_secs_f64()),
    );
    f.insert(format!("qi hr import {n} rows peak MiB"), json!(peak));
    targets.push(Target::at_most("qi hr import peak (MiB)", 64.0, peak));
    Ok(())
}

/// Synthetic ESR rows: deterministic, generated names.
fn synthetic_rows(n: usize) -> Vec<pb::EsrRow> {
    const FORENAMES: [&str; 8] = [
        "Amira", "Ben", "Chloe", "Dev", "Ellis", "Femi", "Grace", "Hari",
    ];
    const SURNAMES: [&str; 8] = [
        "Ashworth", "Bello", "Chen", "Doyle", "Evans", "Farah", "Gill", "Hughes",
    ];
    (0..n)
        .map(|i| {
            let emp = format!("{}", 10_000_000 + i);
            let (location, organisation, _, _) = codes(i);
            pb::EsrRow {
                assignment_number: emp.clone(),
                primary_assignment: true,
                forename: FORENAMES[i % 8].into(),
                surname: format!("{}{}", SURNAMES[(i / 8) % 8], i),
                work_email: format!("{emp}@nhs.example"),
                staff_group: format!("{:02}", i % 10 + 1),
                job_role: "Staff Nurse".into(),
                occupation_code: "N0A".into(),
                area_of_work: "Medicine".into(),
                position_title: "Staff Nurse".into(),
                pay_band: "Band 5".into(),
                organisation,
                location,
                department: format!("Ward {}", i % 60),
                assignment_status: "Active Assignment".into(),
                person_type: "Employee".into(),
                hire_date: Some(Date {
                    year: 2010 + (i % 14) as i32,
                    month: (i % 12) as i32 + 1,
                    day: (i % 28) as i32 + 1,
                }),
                employee_number: emp,
                ..Default::default()
            }
        })
        .collect()
}

/// Starts the next timed step with nothing of the last one's left to write: a 1,500,000-row
/// step writes more WAL than `max_wal_size`, and the checkpoint it sets off would otherwise
/// land on whichever step comes next (full-page writes, the checkpointer's I/O).
async fn settle(admin: &sqlx::PgPool) {
    if let Err(e) = sqlx::query("CHECKPOINT").execute(admin).await {
        eprintln!("  CHECKPOINT refused ({e}): steps may pay for the last one's WAL");
    }
}

/// The baseline: `text` copied into an emptied `bench.staff_copy`; returns its seconds.
async fn copy_baseline(admin: &sqlx::PgPool, text: &str) -> anyhow::Result<f64> {
    sqlx::query("TRUNCATE bench.staff_copy")
        .execute(admin)
        .await?;
    settle(admin).await;
    #[expect(
        clippy::disallowed_methods,
        reason = "the raw-SQL baseline, outside any call"
    )]
    let mut conn = admin.acquire().await?;
    let t = Instant::now();
    let mut copy = conn
        .copy_in_raw(
            "COPY bench.staff_copy (employee_number, site, assignment_number, other_assignments,
                forename, surname, work_email, staff_group, job_role, occupation_code,
                area_of_work, position_title, pay_band, department, organisation,
                location, ward, assignment_status, person_type, hire_date, leave_date,
                active, data_hash, source_update_time, extract_id, site_since)
             FROM STDIN",
        )
        .await?;
    copy.send(text.as_bytes()).await?;
    copy.finish().await?;
    Ok(t.elapsed().as_secs_f64())
}

/// The same rows as COPY text for a table shaped like `training.staff`, each at the site
/// and ward the mapping places it.
fn copy_text(rows: &[pb::EsrRow]) -> String {
    let mut out = String::with_capacity(rows.len() * 260);
    for (i, r) in rows.iter().enumerate() {
        let (_, _, site, ward) = codes(i);
        let hire = r
            .hire_date
            .map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day));
        // The sync's site_since: the hire date, else the day of the sync.
        let since = hire.clone().unwrap_or_else(|| "2026-11-26".into());
        let hire = hire.unwrap_or_else(|| "\\N".into());
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{{}}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t\\N\tt\t{}\t2026-11-26 00:00:00+00\tbench\t{}",
            r.employee_number,
            site,
            r.assignment_number,
            r.forename,
            r.surname,
            r.work_email,
            r.staff_group,
            r.job_role,
            r.occupation_code,
            r.area_of_work,
            r.position_title,
            r.pay_band,
            r.department,
            r.organisation,
            r.location,
            ward,
            r.assignment_status,
            r.person_type,
            hire,
            i,
            since
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_rows_are_distinct_valid_and_copyable() {
        let rows = synthetic_rows(30);
        let mut numbers: Vec<_> = rows.iter().map(|r| r.employee_number.clone()).collect();
        numbers.dedup();
        assert_eq!(numbers.len(), 30);
        assert!(rows.iter().all(|r| r.staff_group.len() == 2));
        let text = copy_text(&rows);
        assert_eq!(text.lines().count(), 30);
        assert!(text.lines().all(|l| l.split('\t').count() == 26));
    }
}
