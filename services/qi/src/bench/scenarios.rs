//! The bench's scenarios. Each measures the suite and, in the same run, a baseline it is
//! judged against: the service called directly, or PostgreSQL doing the same work raw.

use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context as _;
use qi_platform::access::ACCESS_HEADER;
use qi_platform::{AccessContext, SiteScope};
use qi_proto::google::r#type::Date;
use qi_proto::training as pb;
use qi_proto::training::training_service_client::TrainingServiceClient;
use serde_json::{Map, Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tonic::metadata::MetadataValue;

use super::load::{self, LoadStats, summarize};
use super::{Deployment, Effort, Outcome, Target};

const TRAINING: &str = "/qi.training.v1.TrainingService";

/// A request with metadata attached.
fn with_header<T>(
    message: T,
    key: &'static str,
    value: &MetadataValue<tonic::metadata::Ascii>,
) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.metadata_mut().insert(key, value.clone());
    req
}

fn bearer(token: &str) -> anyhow::Result<MetadataValue<tonic::metadata::Ascii>> {
    Ok(format!("Bearer {token}").parse()?)
}

/// A signed access context for calling a service directly, as the gateway would.
fn direct_context(
    d: &Deployment,
    roles: &[&str],
    method: &str,
) -> anyhow::Result<MetadataValue<tonic::metadata::Ascii>> {
    let ctx = AccessContext {
        subject: "bench".into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        sites: SiteScope::TrustWide,
        method: format!("{TRAINING}/{method}"),
    };
    Ok(d.signer.sign(&ctx)?.parse()?)
}

fn put(figures: &mut Map<String, Value>, name: &str, rounds: &[f64]) -> f64 {
    let (median, min, max) = summarize(rounds);
    figures.insert(name.to_owned(), json!(median));
    figures.insert(
        format!("{name} (min..max)"),
        json!(format!("{min:.3}..{max:.3}")),
    );
    median
}

fn note_errors(figures: &mut Map<String, Value>, name: &str, stats: &[LoadStats]) {
    let mut errors = std::collections::BTreeMap::<String, u64>::new();
    for s in stats {
        for (k, v) in &s.errors {
            *errors.entry(k.clone()).or_default() += v;
        }
    }
    figures.insert(format!("{name} errors"), json!(errors));
}

/// A cheap read (GetCourse) at 32 in flight, through the gateway and straight to the
/// training service with a valid access context.
pub(super) async fn gateway(d: &Deployment, effort: Effort) -> anyhow::Result<Outcome> {
    const IN_FLIGHT: usize = 32;
    let token = bearer(&d.token("bench", &["viewer"])?)?;
    let ctx = direct_context(d, &["viewer"], "GetCourse")?;
    let request = pb::GetCourseRequest {
        name: "trust/courses/qsir-prac".into(),
    };
    let via_gateway = {
        let (client, request) = (
            TrainingServiceClient::new(d.gateway.clone()),
            request.clone(),
        );
        move || {
            let (mut c, r, t) = (client.clone(), request.clone(), token.clone());
            async move {
                c.get_course(with_header(r, "authorization", &t))
                    .await
                    .map(|_| ())
            }
        }
    };
    let direct = {
        let client = TrainingServiceClient::new(d.training.clone());
        move || {
            let (mut c, r, t) = (client.clone(), request.clone(), ctx.clone());
            async move {
                c.get_course(with_header(r, ACCESS_HEADER, &t))
                    .await
                    .map(|_| ())
            }
        }
    };
    load::run(IN_FLIGHT, effort.warmup, via_gateway.clone()).await;
    load::run(IN_FLIGHT, effort.warmup, direct.clone()).await;
    let (mut g, mut s) = (Vec::new(), Vec::new());
    for round in 0..effort.rounds {
        eprintln!("  round {}/{}", round + 1, effort.rounds);
        // Alternate, so drift on a shared machine touches both sides alike.
        g.push(load::run(IN_FLIGHT, effort.round, via_gateway.clone()).await);
        s.push(load::run(IN_FLIGHT, effort.round, direct.clone()).await);
    }
    let mut f = Map::new();
    f.insert("in flight".into(), json!(IN_FLIGHT));
    let gw_rps = put(
        &mut f,
        "gateway calls/s",
        &g.iter().map(|x| x.throughput).collect::<Vec<_>>(),
    );
    let direct_rps = put(
        &mut f,
        "direct calls/s",
        &s.iter().map(|x| x.throughput).collect::<Vec<_>>(),
    );
    let gw_p50 = put(
        &mut f,
        "gateway p50 ms",
        &g.iter().map(|x| x.p50_ms).collect::<Vec<_>>(),
    );
    let direct_p50 = put(
        &mut f,
        "direct p50 ms",
        &s.iter().map(|x| x.p50_ms).collect::<Vec<_>>(),
    );
    put(
        &mut f,
        "gateway p99 ms",
        &g.iter().map(|x| x.p99_ms).collect::<Vec<_>>(),
    );
    put(
        &mut f,
        "direct p99 ms",
        &s.iter().map(|x| x.p99_ms).collect::<Vec<_>>(),
    );
    let ratio = gw_rps / direct_rps;
    let added = gw_p50 - direct_p50;
    f.insert("throughput ratio (gateway/direct)".into(), json!(ratio));
    f.insert("added p50 ms".into(), json!(added));
    note_errors(&mut f, "gateway", &g);
    note_errors(&mut f, "direct", &s);
    Ok(Outcome {
        name: "gateway",
        figures: f,
        targets: vec![
            Target::at_least("gateway throughput / direct", 0.75, ratio),
            Target::at_most("gateway added p50 (ms)", 0.3, added),
        ],
    })
}

/// Synthetic ESR rows: deterministic, generated names.
fn synthetic_rows(n: usize) -> Vec<pb::EsrRow> {
    const FORENAMES: [&str; 8] = [
        "Amira", "Ben", "Chloe", "Dev", "Ellis", "Femi", "Grace", "Hari",
    ];
    const SURNAMES: [&str; 8] = [
        "Ashworth", "Bello", "Chen", "Doyle", "Evans", "Farah", "Gill", "Hughes",
    ];
    const SITES: [&str; 3] = ["BAS", "BRM", "SOU"];
    (0..n)
        .map(|i| {
            let emp = format!("{}", 10_000_000 + i);
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
                organisation: "Medicine Division".into(),
                site: SITES[i % 3].into(),
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

/// The same rows as COPY text for a table shaped like `training.staff`.
fn copy_text(rows: &[pb::EsrRow]) -> String {
    let mut out = String::with_capacity(rows.len() * 220);
    for (i, r) in rows.iter().enumerate() {
        let hire = r
            .hire_date
            .map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day))
            .unwrap_or_else(|| "\\N".into());
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{{}}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t\\N\tt\t{}\t2026-11-26 00:00:00+00\tbench",
            r.employee_number,
            r.site,
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
            r.assignment_status,
            r.person_type,
            hire,
            i
        );
    }
    out
}

/// `SyncStaff` of a whole extract through the gateway, against a raw `COPY` of the same
/// rows into a table of the same shape in the same database.
pub(super) async fn hr_sync(d: &Deployment, effort: Effort) -> anyhow::Result<Outcome> {
    let admin = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(PgConnectOptions::from_str(&d.database_url)?)
        .await?;
    sqlx::query("CREATE SCHEMA IF NOT EXISTS bench")
        .execute(&admin)
        .await?;
    // The same table shape, indexes included: the baseline pays what the sync pays to keep them.
    sqlx::query("CREATE TABLE IF NOT EXISTS bench.staff_copy (LIKE training.staff INCLUDING ALL)")
        .execute(&admin)
        .await?;
    let token = bearer(&d.token("bench-hr", &["hr_sync"])?)?;
    let client = TrainingServiceClient::new(d.gateway.clone())
        .max_decoding_message_size(qi_platform::server::MAX_MESSAGE_BYTES);
    let mut f = Map::new();
    let mut targets = Vec::new();
    for &n in effort.sync_rows {
        let rows = synthetic_rows(n);
        let text = copy_text(&rows);
        let (mut sync_s, mut copy_s) = (Vec::new(), Vec::new());
        for round in 0..effort.rounds {
            eprintln!("  {n} rows: round {}/{}", round + 1, effort.rounds);
            sqlx::query("TRUNCATE training.staff CASCADE")
                .execute(&admin)
                .await?;
            let mut messages = vec![pb::SyncStaffRequest {
                mode: pb::SyncMode::Full as i32,
                extract_id: format!("bench-{n}"),
                extract_time: Some(qi_platform::convert::timestamp(chrono::Utc::now())),
                rows: Vec::new(),
                complete: false,
            }];
            for chunk in rows.chunks(1_000) {
                messages.push(pb::SyncStaffRequest {
                    rows: chunk.to_vec(),
                    ..Default::default()
                });
            }
            if let Some(last) = messages.last_mut() {
                last.complete = true;
            }
            let t = Instant::now();
            let resp = client
                .clone()
                .sync_staff(with_header(
                    tokio_stream::iter(messages),
                    "authorization",
                    &token,
                ))
                .await
                .context("SyncStaff")?
                .into_inner();
            sync_s.push(t.elapsed().as_secs_f64());
            anyhow::ensure!(
                resp.inserted == n as i64,
                "the sync inserted {} of {n}",
                resp.inserted
            );

            sqlx::query("TRUNCATE bench.staff_copy")
                .execute(&admin)
                .await?;
            let mut conn = admin.acquire().await?;
            let t = Instant::now();
            let mut copy = conn
                .copy_in_raw(
                    "COPY bench.staff_copy (employee_number, site, assignment_number, other_assignments,
                        forename, surname, work_email, staff_group, job_role, occupation_code,
                        area_of_work, position_title, pay_band, department, organisation,
                        assignment_status, person_type, hire_date, leave_date, active, data_hash,
                        source_update_time, extract_id) FROM STDIN",
                )
                .await?;
            copy.send(text.as_bytes()).await?;
            copy.finish().await?;
            copy_s.push(t.elapsed().as_secs_f64());
        }
        let sync = put(&mut f, &format!("sync {n} rows s"), &sync_s);
        let copy = put(&mut f, &format!("COPY {n} rows s"), &copy_s);
        let ratio = sync / copy;
        f.insert(format!("sync/COPY {n} rows"), json!(ratio));
        match n {
            15_000 => targets.push(Target::at_most("sync 15,000 rows (s)", 2.0, sync)),
            100_000 => targets.push(Target::at_most("sync 100,000 rows / COPY", 3.0, ratio)),
            _ => {}
        }
    }
    sqlx::query("DROP SCHEMA bench CASCADE")
        .execute(&admin)
        .await?;
    admin.close().await;
    Ok(Outcome {
        name: "hr-sync",
        figures: f,
        targets,
    })
}

/// The column list the training service reads a cohort with (kept in step with
/// `services/training/src/cohorts.rs`), for the raw-SQL baseline.
const COHORT_READ: &str = "SELECT c.site, c.id, c.course_id, c.display_name, c.start_date, c.capacity, c.state,
        c.create_time, c.update_time, c.revision, c.facilitators, c.cancel_reason,
        (SELECT count(*) FROM training.enrolment e WHERE e.cohort_uid = c.uid AND e.state = 'enrolled'),
        (SELECT count(*) FROM training.enrolment e WHERE e.cohort_uid = c.uid AND e.state = 'waitlisted')
     FROM training.cohort c WHERE c.site IS NOT DISTINCT FROM $1 AND c.id = $2";

/// A single-row write (CreateCohort of the one-session course) and a by-name read
/// (GetCohort) through the gateway at 1 and 32 in flight, against the same SQL statements
/// run straight on the database at the same concurrency.
pub(super) async fn database(d: &Deployment, effort: Effort) -> anyhow::Result<Outcome> {
    let raw = PgPoolOptions::new()
        .max_connections(32)
        .connect_with(PgConnectOptions::from_str(&d.database_url)?)
        .await?;
    let token = bearer(&d.token("bench-team", &["improvement_team"])?)?;
    let client = TrainingServiceClient::new(d.gateway.clone());
    let counter = Arc::new(AtomicU64::new(0));
    let start = Date {
        year: 2027,
        month: 1,
        day: 7,
    };
    // One cohort to read by name.
    let read_name = client
        .clone()
        .create_cohort(with_header(
            pb::CreateCohortRequest {
                parent: "sites/BAS".into(),
                cohort_id: "bench-read".into(),
                cohort: Some(pb::Cohort {
                    course: "trust/courses/qsir-fund".into(),
                    display_name: "Bench read".into(),
                    start_date: Some(start),
                    capacity: 20,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            "authorization",
            &token,
        ))
        .await
        .context("creating the cohort to read")?
        .into_inner()
        .cohort
        .map(|c| c.name)
        .unwrap_or_default();

    let rpc_write = {
        let (client, token, counter) = (client.clone(), token.clone(), counter.clone());
        move || {
            let (mut c, t, i) = (
                client.clone(),
                token.clone(),
                counter.fetch_add(1, Ordering::Relaxed),
            );
            async move {
                let req = pb::CreateCohortRequest {
                    parent: "sites/BAS".into(),
                    cohort_id: format!("rpc-{i}"),
                    cohort: Some(pb::Cohort {
                        course: "trust/courses/qsir-fund".into(),
                        display_name: "Bench write".into(),
                        start_date: Some(start),
                        capacity: 20,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                };
                c.create_cohort(with_header(req, "authorization", &t))
                    .await
                    .map(|_| ())
            }
        }
    };
    let sql_write = {
        let (pool, counter) = (raw.clone(), counter.clone());
        move || {
            let (pool, i) = (pool.clone(), counter.fetch_add(1, Ordering::Relaxed));
            async move {
                raw_create(&pool, &format!("sql-{i}"))
                    .await
                    .map_err(|e| tonic::Status::internal(e.to_string()))
            }
        }
    };
    let rpc_read = {
        let (client, token, name) = (client.clone(), token.clone(), read_name.clone());
        move || {
            let (mut c, t, name) = (client.clone(), token.clone(), name.clone());
            async move {
                c.get_cohort(with_header(
                    pb::GetCohortRequest { name },
                    "authorization",
                    &t,
                ))
                .await
                .map(|_| ())
            }
        }
    };
    let sql_read = {
        let pool = raw.clone();
        move || {
            let pool = pool.clone();
            async move {
                sqlx::query(COHORT_READ)
                    .bind("BAS")
                    .bind("bench-read")
                    .fetch_one(&pool)
                    .await
                    .map(|_| ())
                    .map_err(|e| tonic::Status::internal(e.to_string()))
            }
        }
    };
    let mut f = Map::new();
    let mut targets = Vec::new();
    for in_flight in [1usize, 32] {
        let write = compare(
            &mut f,
            "write",
            in_flight,
            effort,
            rpc_write.clone(),
            sql_write.clone(),
        )
        .await;
        let read = compare(
            &mut f,
            "read",
            in_flight,
            effort,
            rpc_read.clone(),
            sql_read.clone(),
        )
        .await;
        if in_flight == 32 {
            targets.push(Target::at_least(
                "write through the gateway / raw SQL at 32",
                0.35,
                write,
            ));
            targets.push(Target::at_least(
                "read through the gateway / raw SQL at 32",
                0.35,
                read,
            ));
        }
    }
    raw.close().await;
    Ok(Outcome {
        name: "database",
        figures: f,
        targets,
    })
}

/// Runs an RPC and its raw-SQL twin alternately for each round; records both and returns
/// the ratio of their median throughputs.
async fn compare<R, RF, S, SF>(
    f: &mut Map<String, Value>,
    what: &str,
    in_flight: usize,
    effort: Effort,
    rpc: R,
    sql: S,
) -> f64
where
    R: Fn() -> RF + Clone + Send + 'static,
    RF: std::future::Future<Output = Result<(), tonic::Status>> + Send,
    S: Fn() -> SF + Clone + Send + 'static,
    SF: std::future::Future<Output = Result<(), tonic::Status>> + Send,
{
    load::run(in_flight, effort.warmup, rpc.clone()).await;
    load::run(in_flight, effort.warmup, sql.clone()).await;
    let (mut r, mut s) = (Vec::new(), Vec::new());
    for round in 0..effort.rounds {
        eprintln!(
            "  {what} at {in_flight} in flight: round {}/{}",
            round + 1,
            effort.rounds
        );
        r.push(load::run(in_flight, effort.round, rpc.clone()).await);
        s.push(load::run(in_flight, effort.round, sql.clone()).await);
    }
    let rpc_rps = put(
        f,
        &format!("{what} RPC calls/s @{in_flight}"),
        &r.iter().map(|x| x.throughput).collect::<Vec<_>>(),
    );
    let sql_rps = put(
        f,
        &format!("{what} raw SQL/s @{in_flight}"),
        &s.iter().map(|x| x.throughput).collect::<Vec<_>>(),
    );
    put(
        f,
        &format!("{what} RPC p50 ms @{in_flight}"),
        &r.iter().map(|x| x.p50_ms).collect::<Vec<_>>(),
    );
    put(
        f,
        &format!("{what} raw SQL p50 ms @{in_flight}"),
        &s.iter().map(|x| x.p50_ms).collect::<Vec<_>>(),
    );
    let ratio = rpc_rps / sql_rps;
    f.insert(format!("{what} RPC/raw @{in_flight}"), json!(ratio));
    note_errors(f, &format!("{what} RPC @{in_flight}"), &r);
    note_errors(f, &format!("{what} raw SQL @{in_flight}"), &s);
    ratio
}

/// What the training service does for CreateCohort of a one-session course, as raw SQL.
async fn raw_create(pool: &sqlx::PgPool, id: &str) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let sessions: i32 =
        sqlx::query_scalar("SELECT session_count FROM training.course WHERE id = 'qsir-fund'")
            .fetch_one(&mut *tx)
            .await?;
    let uid: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO training.cohort (site, id, course_id, display_name, start_date, capacity, facilitators)
         VALUES ('BAS', $1, 'qsir-fund', 'Bench write', '2027-01-07', 20, '{}')
         ON CONFLICT DO NOTHING RETURNING uid",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO training.session (cohort_uid, number, date)
         SELECT $1, n, '2027-01-07'::date + (n - 1) * 7 FROM generate_series(1, $2) AS n",
    )
    .bind(uid)
    .bind(sessions)
    .execute(&mut *tx)
    .await?;
    sqlx::query(COHORT_READ)
        .bind("BAS")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await
}

/// Resident memory of each component: idle when it first served, idle now (after whatever
/// scenarios ran before), and under the gateway read load.
pub(super) async fn memory(d: &Deployment, effort: Effort) -> anyhow::Result<Outcome> {
    tokio::time::sleep(effort.warmup).await;
    let idle = d.resident_mib();
    let token = bearer(&d.token("bench", &["viewer"])?)?;
    let client = TrainingServiceClient::new(d.gateway.clone());
    let call = move || {
        let (mut c, t) = (client.clone(), token.clone());
        async move {
            c.get_course(with_header(
                pb::GetCourseRequest {
                    name: "trust/courses/qsir-prac".into(),
                },
                "authorization",
                &t,
            ))
            .await
            .map(|_| ())
        }
    };
    let loaded = tokio::spawn(load::run(32, effort.round * 2, call));
    tokio::time::sleep(effort.round).await;
    let busy = d.resident_mib();
    let stats = loaded.await?;
    let mut f = Map::new();
    let mut targets = Vec::new();
    // The target is the idle footprint of a fresh component; "idle now" shows what earlier
    // scenarios (a 100,000-row sync) left the allocator holding.
    for (((name, start_mib), (_, idle_mib)), (_, busy_mib)) in
        d.idle_at_start.iter().zip(&idle).zip(&busy)
    {
        f.insert(format!("{name} idle at start MiB"), json!(start_mib));
        f.insert(format!("{name} idle now MiB"), json!(idle_mib));
        f.insert(format!("{name} under load MiB"), json!(busy_mib));
        targets.push(Target::at_most(
            &format!("{name} idle resident at start (MiB)"),
            40.0,
            *start_mib,
        ));
    }
    f.insert("load calls/s".into(), json!(stats.throughput));
    Ok(Outcome {
        name: "memory",
        figures: f,
        targets,
    })
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
        assert!(text.lines().all(|l| l.split('\t').count() == 23));
    }
}
