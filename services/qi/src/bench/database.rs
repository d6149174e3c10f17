//! The `database` scenario: a single-row write and a by-name read of the training service
//! through the gateway, against the same statements run straight on the database.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use qi_platform::access::ACCESS_HEADER;
use qi_proto::google::r#type::Date;
use qi_proto::training as pb;
use qi_proto::training::training_service_client::TrainingServiceClient;
use serde_json::{Map, Value, json};

use super::figures::{note_errors, put_cpu, put_stat};
use super::headers::{bearer, with_header};
use super::peers::COHORT_READ_SQL;
use super::rounds::{Alternated, alternate};
use super::{Deployment, Effort, Outcome, Target};

/// A single-row write (CreateCohort of the one-session course) and a by-name read
/// (GetCohort) through the gateway at 1 and 32 in flight, and the read straight to the
/// training service with a signed context, against the same SQL statements run straight on
/// the database at the same concurrency; with each part's CPU per call.
pub(super) async fn database(d: &Deployment, effort: Effort) -> anyhow::Result<Outcome> {
    // Unqualified names, as the service's statements are: its schema on the search path.
    let raw = super::raw_pool(d, 32, Some("training")).await?;
    let token = bearer(&d.token("bench-team", &["improvement_team"])?)?;
    let client = TrainingServiceClient::new(d.gateway.clone());
    let counter = Arc::new(AtomicU64::new(0));
    // One cohort to read by name.
    let read_name = client
        .clone()
        .create_cohort(with_header(
            create_cohort("bench-read".into(), "Bench read"),
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
                let req = create_cohort(format!("rpc-{i}"), "Bench write");
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
    let direct_read = {
        let client = TrainingServiceClient::new(d.training.clone());
        let ctx = super::gateway::direct_context(d, &["improvement_team"], "GetCohort")?;
        let name = read_name.clone();
        move || {
            let (mut c, t, name) = (client.clone(), ctx.clone(), name.clone());
            async move {
                c.get_cohort(with_header(
                    pb::GetCohortRequest { name },
                    ACCESS_HEADER,
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
                sqlx::query(COHORT_READ_SQL)
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
            d,
            &mut f,
            "write",
            in_flight,
            effort,
            rpc_write.clone(),
            sql_write.clone(),
        )
        .await;
        let read = compare(
            d,
            &mut f,
            "read",
            in_flight,
            effort,
            rpc_read.clone(),
            sql_read.clone(),
        )
        .await;
        let direct = compare(
            d,
            &mut f,
            "read direct",
            in_flight,
            effort,
            direct_read.clone(),
            sql_read.clone(),
        )
        .await;
        // Issue 38's read path: the service's own CPU per read against PostgreSQL's for it.
        let part = |name: &str| {
            direct
                .cpu
                .iter()
                .find(|(p, _)| *p == name)
                .map_or(f64::NAN, |(_, v)| *v)
        };
        let service_over_db = part("training") / part("postgres");
        f.insert(
            format!("read direct: training CPU / PostgreSQL CPU @{in_flight}"),
            json!(service_over_db),
        );
        if in_flight == 1 {
            targets.push(Target::at_least(
                "read through the gateway / raw SQL at 1",
                0.25,
                read.ratio,
            ));
        } else {
            targets.extend([
                Target::at_least(
                    "write through the gateway / raw SQL at 32",
                    0.35,
                    write.ratio,
                ),
                Target::at_least("read through the gateway / raw SQL at 32", 0.4, read.ratio),
                Target::at_least(
                    "read straight to the service / raw SQL at 32",
                    0.6,
                    direct.ratio,
                ),
                Target::at_most(
                    "read straight to the service: its CPU / PostgreSQL's at 32",
                    1.0,
                    service_over_db,
                ),
            ]);
        }
    }
    raw.close().await;
    Ok(Outcome {
        name: "database",
        figures: f,
        targets,
    })
}

/// CreateCohort of the one-session course at `sites/BAS`, starting on 7 January 2027 (the
/// day [`raw_create`] writes).
fn create_cohort(id: String, display_name: &str) -> pb::CreateCohortRequest {
    pb::CreateCohortRequest {
        parent: "sites/BAS".into(),
        cohort_id: id,
        cohort: Some(pb::Cohort {
            course: "trust/courses/qsir-fund".into(),
            display_name: display_name.into(),
            start_date: Some(Date {
                year: 2027,
                month: 1,
                day: 7,
            }),
            capacity: 20,
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

/// What [`compare`] found.
struct Compared {
    /// The RPC's median throughput over the raw SQL's.
    ratio: f64,
    /// The RPC's CPU per call, by part (µs, median of the rounds).
    cpu: Vec<(&'static str, f64)>,
}

/// Runs an RPC and its raw-SQL twin in alternating rounds; records both, with each part's
/// CPU per call.
async fn compare<R, RF, S, SF>(
    d: &Deployment,
    f: &mut Map<String, Value>,
    what: &str,
    in_flight: usize,
    effort: Effort,
    rpc: R,
    sql: S,
) -> Compared
where
    R: Fn() -> RF + Clone + Send + 'static,
    RF: Future<Output = Result<(), tonic::Status>> + Send,
    S: Fn() -> SF + Clone + Send + 'static,
    SF: Future<Output = Result<(), tonic::Status>> + Send,
{
    eprintln!("  {what}:");
    let Alternated {
        g: r,
        s,
        g_cpu,
        s_cpu,
    } = alternate(d, in_flight, effort, rpc, sql).await;
    let cpu = put_cpu(f, &format!("{what} RPC CPU us/call @{in_flight}"), &g_cpu);
    put_cpu(
        f,
        &format!("{what} raw SQL CPU us/call @{in_flight}"),
        &s_cpu,
    );
    let rpc_rps = put_stat(f, &format!("{what} RPC calls/s @{in_flight}"), &r, |x| {
        x.throughput
    });
    let sql_rps = put_stat(f, &format!("{what} raw SQL/s @{in_flight}"), &s, |x| {
        x.throughput
    });
    put_stat(f, &format!("{what} RPC p50 ms @{in_flight}"), &r, |x| {
        x.p50_ms
    });
    put_stat(f, &format!("{what} raw SQL p50 ms @{in_flight}"), &s, |x| {
        x.p50_ms
    });
    let ratio = rpc_rps / sql_rps;
    f.insert(format!("{what} RPC/raw @{in_flight}"), json!(ratio));
    note_errors(f, &format!("{what} RPC @{in_flight}"), &r);
    note_errors(f, &format!("{what} raw SQL @{in_flight}"), &s);
    Compared { ratio, cpu }
}

/// What the training service does for CreateCohort of a one-session course, as raw SQL.
async fn raw_create(pool: &sqlx::PgPool, id: &str) -> Result<(), sqlx::Error> {
    #[expect(
        clippy::disallowed_methods,
        reason = "the raw-SQL baseline, outside any call"
    )]
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
    sqlx::query(COHORT_READ_SQL)
        .bind("BAS")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await
}
