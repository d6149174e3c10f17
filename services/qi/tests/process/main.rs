//! The `qi` binary as a process: `qi up` on a new data folder comes up with its own
//! PostgreSQL, serves health, stops cleanly on SIGTERM, and starts again on the same data;
//! and the suite under faults a platform engineer meets (`random_faults`).

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

mod feeds;
mod random_faults;

const QI: &str = env!("CARGO_BIN_EXE_qi");

/// Reads `qi up`'s own report of where it listens (it binds port 0, so no other test can
/// take the port between choosing and binding it). The rest of its output is drained, so
/// qi never writes to a closed pipe.
fn announced_port(child: &mut Child) -> u16 {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("qi's stdout");
    let (found, port) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(rest) = line.split("Gateway: ").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or_default();
                if let Some(p) = addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()) {
                    let _ = found.send(p);
                }
            }
        }
    });
    port.recv_timeout(Duration::from_secs(90))
        .expect("qi up said where it listens")
}

fn up(data_dir: &std::path::Path, log: &std::path::Path) -> Child {
    up_with(data_dir, log, &[])
}

fn up_with(data_dir: &std::path::Path, log: &std::path::Path, env: &[(&str, &str)]) -> Child {
    let log = std::fs::File::create(log).expect("a log file");
    Command::new(QI)
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("QI_SHUTDOWN_GRACE_MS", "5000")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("qi starts")
}

async fn wait_serving(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        assert!(
            child.try_wait().expect("qi is inspectable").is_none(),
            "qi up exited before serving"
        );
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("a URL");
        if let Ok(channel) = endpoint.connect().await {
            let mut health = HealthClient::new(channel);
            if let Ok(r) = health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
            {
                assert_eq!(r.into_inner().status, 1, "SERVING");
                return;
            }
        }
        assert!(Instant::now() < deadline, "qi up did not serve within 90 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits for `child` to exit, failing the test if it is still running after `limit`. Sleeps
/// on the runtime, so this test's own connections can answer the server's GOAWAY.
async fn exited(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("qi is inspectable") {
            return status;
        }
        assert!(Instant::now() < deadline, "qi still running {limit:?} on");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stop_child(mut child: Child, log: &std::path::Path) -> Duration {
    let pid = Pid::from_raw(child.id() as i32);
    let asked = Instant::now();
    kill(pid, Signal::SIGTERM).expect("signal qi");
    let status = exited(&mut child, Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "qi up exited with {status}: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    asked.elapsed()
}

#[tokio::test]
async fn qi_up_serves_stops_on_sigterm_and_starts_again_on_its_data() {
    let dir = tempfile::tempdir().unwrap();
    // As root the cluster runs as `postgres`, who must be able to reach the folder.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    for round in 0..2 {
        let log = dir.path().join(format!("qi-up-{round}.log"));
        let mut child = up(&data, &log);
        let port = announced_port(&mut child);
        wait_serving(port, &mut child).await;
        each_component_serves_as_its_own_role(&data).await;
        let took = stop_child(child, &log).await;
        assert!(
            took < Duration::from_secs(10),
            "round {round}: stopping took {took:?}"
        );
    }
    assert!(data.join("jwt-secret").is_file());
    assert!(data.join("pg").join("PG_VERSION").is_file());

    // `qi token` signs with the folder's secret.
    let out = Command::new(QI)
        .args([
            "token",
            "--sub",
            "me",
            "--role",
            "viewer",
            "--site",
            "BAS",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .split('.')
            .count(),
        3
    );
}

/// `qi up`'s private cluster: each component connects as `qi_<component>`, the gateway's
/// role may add and read audit events but not change them, and the audit table is
/// partitioned.
async fn each_component_serves_as_its_own_role(data: &std::path::Path) {
    // postmaster.pid's fifth line is the socket folder.
    let pid = std::fs::read_to_string(data.join("pg").join("postmaster.pid")).unwrap();
    let socket = pid.lines().nth(4).expect("the socket folder");
    let url = format!("postgres://qi@localhost/qi?host={socket}");
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let roles: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT application_name, usename::text FROM pg_stat_activity
         WHERE datname = 'qi' AND application_name IN
               ('qi-gateway', 'qi-training', 'qi-projects', 'qi-metrics')
         ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        roles,
        [
            ("qi-gateway", "qi_gateway"),
            ("qi-metrics", "qi_metrics"),
            ("qi-projects", "qi_projects"),
            ("qi-training", "qi_training"),
        ]
        .map(|(a, u)| (a.to_owned(), u.to_owned()))
    );
    let (insert, select, update, delete): (bool, bool, bool, bool) = sqlx::query_as(
        "SELECT has_table_privilege('qi_gateway', 'gateway.audit_event', 'INSERT'),
                has_table_privilege('qi_gateway', 'gateway.audit_event', 'SELECT'),
                has_table_privilege('qi_gateway', 'gateway.audit_event', 'UPDATE'),
                has_table_privilege('qi_gateway', 'gateway.audit_event', 'DELETE')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((insert, select, update, delete), (true, true, false, false));
    let partitioned: bool = sqlx::query_scalar(
        "SELECT relkind = 'p' FROM pg_class WHERE oid = 'gateway.audit_event'::regclass",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(partitioned);
    pool.close().await;
}

#[test]
fn bad_configuration_exits_64_naming_the_variable() {
    let out = Command::new(QI)
        .args(["migrate", "all"])
        .env("QI_CONCURRENCY_LIMIT", "lots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("QI_CONCURRENCY_LIMIT"));
}

#[test]
fn an_hr_export_layout_that_cannot_be_used_exits_64_before_calling_anything() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("layout.toml");
    std::fs::write(&bad, "columns = [\"employee_number\", \"nino\"]\n").unwrap();
    // The gateway's address is closed: a layout refused first never gets that far.
    let export = |args: &[&str], env: &[(&str, &std::path::Path)]| {
        Command::new(QI)
            .args([
                "hr",
                "export",
                "--gateway",
                "http://127.0.0.1:9",
                "--token",
                "t",
            ])
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    for out in [
        export(&["--layout", bad.to_str().unwrap()], &[]),
        export(&[], &[("QI_HR_EXPORT_LAYOUT", bad.as_path())]),
    ] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{stderr}");
        assert!(stderr.contains("\"nino\" is not a column"), "{stderr}");
        assert!(
            stderr.contains("employee_number, assignment_number, competence_id, competence_name"),
            "{stderr}"
        );
    }
    let missing = dir.path().join("absent.toml");
    let out = export(&["--layout", missing.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(64));
    // The sample layout is a good one: the export gets as far as the (closed) gateway.
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/hr-export-layout.toml"
    );
    let out = export(&["--layout", sample], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("connecting to the gateway"), "{stderr}");
}

#[test]
fn a_secret_under_32_bytes_exits_64_naming_the_variable_not_the_secret() {
    for var in ["QI_JWT_SECRET", "QI_ACCESS_KEY"] {
        let out = Command::new(QI)
            .args(["serve", "training"])
            .env(var, "hunter2-hunter2")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{var}: {stderr}");
        assert!(stderr.contains(var), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}

#[test]
fn qi_token_for_a_person_writes_the_configured_claim_and_refuses_a_bad_number() {
    let env = [
        ("QI_JWT_SECRET", "s".repeat(32)),
        ("QI_JWT_EMPLOYEE_CLAIM", "esr_number".to_owned()),
    ];
    let qi_token = |extra: &[&str], env: &[(&str, String)]| {
        Command::new(QI)
            .args(["token", "--sub", "me", "--role", "viewer", "--site", "BAS"])
            .args(extra)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    };
    let out = qi_token(&["--employee", "00123456"], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The gateway, configured alike, reads the number from the token.
    let config = qi_platform::Config::from_lookup(|k| {
        env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    })
    .unwrap();
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let caller = qi_gateway::auth::Authenticator::new(&config.jwt)
        .unwrap()
        .authenticate(Some(&format!("Bearer {token}")))
        .unwrap();
    assert_eq!(caller.employee.unwrap().as_str(), "00123456");

    let out = qi_token(&["--employee", "12ab"], &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("--employee"), "{stderr}");
    let bad_claim = [
        env[0].clone(),
        ("QI_JWT_EMPLOYEE_CLAIM", "employee number".to_owned()),
    ];
    let out = qi_token(&[], &bad_claim);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("QI_JWT_EMPLOYEE_CLAIM"), "{stderr}");
}

#[test]
fn serve_without_a_database_url_says_what_is_missing() {
    let out = Command::new(QI)
        .args(["serve", "training"])
        .env_remove("QI_DATABASE_URL")
        .env("QI_ACCESS_KEY", "k".repeat(32))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("QI_DATABASE_URL"));
}

#[test]
fn qi_bench_quick_writes_a_report_with_figures_and_targets() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = Command::new(QI)
        .args([
            "bench",
            "--quick",
            "gateway",
            "hr-sync",
            "portfolio",
            "memory",
            "--json",
        ])
        .arg(&json)
        .env_remove("QI_DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // PostgreSQL's NOTICEs (a TRUNCATE's cascade, a schema that exists) are not logged.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("sqlx::postgres::notice"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(report["machine"]["cpus"].as_u64().unwrap() >= 1);
    let scenarios = report["scenarios"].as_array().unwrap();
    let names: Vec<_> = scenarios
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gateway", "hr-sync", "portfolio", "memory"]);
    for s in scenarios {
        assert!(!s["figures"].as_object().unwrap().is_empty());
        for t in s["targets"].as_array().unwrap() {
            assert!(t["measured"].is_number() && t["met"].is_boolean(), "{t}");
        }
    }
    // The gateway calls all answered OK: a smoke round that only met errors is no smoke.
    let gateway = &scenarios[0]["figures"];
    assert_eq!(gateway["gateway errors"], serde_json::json!({}));
    assert!(gateway["gateway calls/s"].as_f64().unwrap() > 0.0);
}

/// `qi token` for the suite in `data`.
fn token(data: &std::path::Path, sub: &str, role: &str, site: &str) -> String {
    let out = Command::new(QI)
        .args([
            "token",
            "--sub",
            sub,
            "--role",
            role,
            "--site",
            site,
            "--data-dir",
        ])
        .arg(data)
        .output()
        .expect("qi token runs");
    assert!(out.status.success(), "qi token failed");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn esr_rows(from: usize, n: usize) -> Vec<qi_proto::training::EsrRow> {
    (from..from + n)
        .map(|i| {
            let emp = format!("{}", 20_000_000 + i);
            qi_proto::training::EsrRow {
                assignment_number: emp.clone(),
                primary_assignment: true,
                forename: "Ada".into(),
                surname: format!("Stop{i}"),
                staff_group: "05".into(),
                job_role: "Staff Nurse".into(),
                site: "BAS".into(),
                employee_number: emp,
                ..Default::default()
            }
        })
        .collect()
}

/// Kubernetes sends SIGTERM in the middle of a busy minute: a call already running (an HR
/// sync stream, half sent) finishes and is applied whole, a new connection is refused, and
/// the process exits cleanly within the grace period.
#[tokio::test]
async fn sigterm_lets_a_call_in_flight_finish_and_refuses_new_ones() {
    use qi_proto::training::SyncStaffRequest;
    use qi_proto::training::training_service_client::TrainingServiceClient;

    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("qi-up.log");
    let mut child = up(&data, &log);
    let port = announced_port(&mut child);
    wait_serving(port, &mut child).await;
    let url = format!("http://127.0.0.1:{port}");
    let channel = tonic::transport::Endpoint::from_shared(url.clone())
        .unwrap()
        .connect()
        .await
        .expect("the gateway accepts a connection");

    let (tx, rx) = tokio::sync::mpsc::channel::<SyncStaffRequest>(4);
    let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    let bearer = format!("Bearer {}", token(&data, "hr", "hr_sync", "*"));
    req.metadata_mut()
        .insert("authorization", bearer.parse().unwrap());
    let mut client = TrainingServiceClient::new(channel);
    let call = tokio::spawn(async move { client.sync_staff(req).await });
    tx.send(SyncStaffRequest {
        extract_id: "sigterm".into(),
        extract_time: Some(prost_types::Timestamp {
            seconds: 1_790_000_000,
            nanos: 0,
        }),
        rows: esr_rows(0, 100),
        ..Default::default()
    })
    .await
    .unwrap();
    // The first half reaches the training service before the signal does.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = Pid::from_raw(child.id() as i32);
    let asked = Instant::now();
    kill(pid, Signal::SIGTERM).expect("signal qi");
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Stopping: a new connection is refused...
    let fresh = tonic::transport::Endpoint::from_shared(url)
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await;
    assert!(
        fresh.is_err(),
        "a stopping gateway accepted a new connection"
    );

    // ...while the call in flight sends its second half and is applied whole.
    tx.send(SyncStaffRequest {
        rows: esr_rows(100, 100),
        complete: true,
        ..Default::default()
    })
    .await
    .expect("the stream in flight is still open");
    drop(tx);
    let answer = call
        .await
        .unwrap()
        .expect("the call in flight completes")
        .into_inner();
    assert_eq!(
        (answer.received_rows, answer.inserted, answer.rejected.len()),
        (200, 200, 0)
    );

    // 15 s from the SIGTERM: its 5 s grace period and a margin.
    let status = exited(
        &mut child,
        Duration::from_secs(15).saturating_sub(asked.elapsed()),
    )
    .await;
    assert!(
        status.success(),
        "qi up exited with {status}: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// The private cluster's postmaster.
fn postmaster(data: &std::path::Path) -> Pid {
    try_postmaster(data).expect("the private cluster is running")
}

/// The postmaster named by `postmaster.pid`, if the file is there: a starting server
/// replaces a dead one's file, so it is briefly absent during a restart.
fn try_postmaster(data: &std::path::Path) -> Option<Pid> {
    let pid_file = std::fs::read_to_string(data.join("pg").join("postmaster.pid")).ok()?;
    let pid: i32 = pid_file.lines().next()?.trim().parse().ok()?;
    Some(Pid::from_raw(pid))
}

/// The postmaster and the processes it started (its backends): the whole cluster.
fn cluster_processes(data: &std::path::Path) -> Vec<Pid> {
    let parent = postmaster(data);
    let mut pids = vec![parent];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (command) state ppid …`: the parent is the second field after the command.
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(parent.as_raw()) {
            pids.push(Pid::from_raw(pid));
        }
    }
    pids
}

/// Sends `signal` to the whole private cluster (SIGSTOP: a database that accepts
/// connections and answers nothing; SIGCONT: back).
fn signal_cluster(data: &std::path::Path, signal: Signal) {
    for pid in cluster_processes(data) {
        let _ = kill(pid, signal);
    }
}

/// Whether a call that needs the training service's database succeeds.
async fn courses_listed(
    port: u16,
    bearer: &tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
) -> bool {
    use qi_proto::training::ListCoursesRequest;
    use qi_proto::training::training_service_client::TrainingServiceClient;
    let Ok(channel) = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
    else {
        return false;
    };
    let mut req = tonic::Request::new(ListCoursesRequest {
        parent: "trust".into(),
        ..Default::default()
    });
    req.metadata_mut().insert("authorization", bearer.clone());
    TrainingServiceClient::new(channel)
        .list_courses(req)
        .await
        .is_ok()
}

/// Audit events of `subject` that went to the log instead of the table.
fn logged_audit_events(output: &str, subject: &str) -> usize {
    let field = format!("subject=\"{subject}\"");
    output
        .lines()
        .filter(|l| l.contains("audit event not written") && l.contains(&field))
        .count()
}

/// Audit events of `subject` in the table, read through the gateway by a trust-wide admin.
async fn audit_rows(port: u16, data: &std::path::Path, subject: &str) -> usize {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut gateway = qi_proto::gateway::gateway_service_client::GatewayServiceClient::new(channel);
    let admin: tonic::metadata::MetadataValue<_> =
        format!("Bearer {}", token(data, "auditor", "admin", "*"))
            .parse()
            .unwrap();
    let (mut rows, mut page_token) = (0usize, String::new());
    loop {
        let mut req = tonic::Request::new(qi_proto::gateway::ListAuditEventsRequest {
            parent: "trust".into(),
            subject: subject.into(),
            page_size: 1000,
            page_token: page_token.clone(),
            ..Default::default()
        });
        req.metadata_mut().insert("authorization", admin.clone());
        let page = gateway.list_audit_events(req).await.unwrap().into_inner();
        rows += page.audit_events.len();
        if page.next_page_token.is_empty() {
            return rows;
        }
        page_token = page.next_page_token;
    }
}

/// What the gateway says on `service`'s health name.
async fn health_of(port: u16, service: &str) -> Option<i32> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .ok()?
        .connect()
        .await
        .ok()?;
    let mut health = HealthClient::new(channel);
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    Some(health.check(request).await.ok()?.into_inner().status)
}

/// PostgreSQL hangs under load (it accepts connections and answers nothing), then
/// Kubernetes sends SIGTERM: the process still exits within drain + grace + 10 s, and every
/// decision the gateway answered is in the audit table or, where the database could not
/// take it, in the log as a structured record. Meanwhile readiness says NOT_SERVING and
/// liveness stays SERVING.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_with_the_database_hanging_under_load_stops_in_time_and_loses_no_audit_event() {
    use qi_proto::training::ListCoursesRequest;
    use qi_proto::training::training_service_client::TrainingServiceClient;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("qi-up.log");
    let grace = Duration::from_secs(3);
    let mut child = up_with(
        &data,
        &log,
        &[
            ("QI_SHUTDOWN_GRACE_MS", "3000"),
            ("QI_DB_ACQUIRE_TIMEOUT_MS", "500"),
            ("QI_RATE_LIMIT_PER_SUBJECT", "0"),
            ("QI_BACKEND_CHECK_INTERVAL_MS", "200"),
        ],
    );
    let port = announced_port(&mut child);
    wait_serving(port, &mut child).await;
    let url = format!("http://127.0.0.1:{port}");
    let channel = tonic::transport::Endpoint::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let bearer: tonic::metadata::MetadataValue<_> =
        format!("Bearer {}", token(&data, "loader", "viewer", "*"))
            .parse()
            .unwrap();

    // Four callers, each counting the calls the gateway answered (any status).
    let (answered, stop) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (channel, bearer) = (channel.clone(), bearer.clone());
            let (answered, stop) = (answered.clone(), stop.clone());
            tokio::spawn(async move {
                let mut client = TrainingServiceClient::new(channel);
                while !stop.load(Ordering::Relaxed) {
                    let mut req = tonic::Request::new(ListCoursesRequest {
                        parent: "trust".into(),
                        ..Default::default()
                    });
                    req.metadata_mut().insert("authorization", bearer.clone());
                    let _ = client.list_courses(req).await;
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal_cluster(&data, Signal::SIGSTOP);

    // Readiness goes NOT_SERVING (2) once the audit trail cannot be written; liveness stays.
    let deadline = Instant::now() + Duration::from_secs(30);
    while health_of(port, "qi.gateway.v1.GatewayService").await != Some(2) {
        assert!(
            Instant::now() < deadline,
            "readiness never reported the outage"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        health_of(port, "liveness").await,
        Some(1),
        "liveness SERVING"
    );
    stop.store(true, Ordering::Relaxed);
    for c in callers {
        c.await.unwrap();
    }
    let answered = answered.load(Ordering::Relaxed);

    let pid = Pid::from_raw(child.id() as i32);
    let asked = Instant::now();
    kill(pid, Signal::SIGTERM).expect("signal qi");
    let ceiling = grace + Duration::from_secs(10);
    let status = exited(&mut child, ceiling).await;
    let output = std::fs::read_to_string(&log).unwrap();
    assert!(
        !output.contains("dropped"),
        "no audit event is ever dropped:\n{output}"
    );
    let logged = logged_audit_events(&output, "loader");
    println!(
        "stopped in {:?} ({status}); {answered} calls answered; {logged} audit events logged",
        asked.elapsed()
    );

    // The table, read through a fresh start on the same data.
    signal_cluster(&data, Signal::SIGCONT);
    let log2 = dir.path().join("qi-up-2.log");
    let mut child = up(&data, &log2);
    let port = announced_port(&mut child);
    wait_serving(port, &mut child).await;
    let in_table = audit_rows(port, &data, "loader").await;
    stop_child(child, &log2).await;
    assert!(
        in_table + logged >= answered,
        "{answered} decisions answered, {in_table} in the table, {logged} in the log"
    );
}

/// The private PostgreSQL killed (as the OOM killer would) is restarted on the same data and
/// the suite serves again unaided; one that cannot be restarted stops `qi up` with a
/// non-zero status and a message saying where to look.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn qi_up_restarts_its_private_cluster_and_gives_up_clearly_when_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("qi-up.log");
    let mut child = up(&data, &log);
    let port = announced_port(&mut child);
    wait_serving(port, &mut child).await;
    let bearer: tonic::metadata::MetadataValue<_> =
        format!("Bearer {}", token(&data, "reader", "viewer", "*"))
            .parse()
            .unwrap();
    assert!(courses_listed(port, &bearer).await);

    let first = postmaster(&data);
    kill(first, Signal::SIGKILL).expect("kill the postmaster");
    let deadline = Instant::now() + Duration::from_secs(60);
    let restarted = || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("running again"))
            && try_postmaster(&data).is_some_and(|p| p != first)
    };
    while !(restarted() && courses_listed(port, &bearer).await) {
        assert!(
            Instant::now() < deadline,
            "the suite did not serve again within 60 s of its database dying:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let output = std::fs::read_to_string(&log).unwrap();
    assert!(output.contains("stopped unexpectedly"), "{output}");

    // A cluster that cannot start (its files from another version): qi up gives up.
    std::fs::write(data.join("pg").join("PG_VERSION"), "9\n").unwrap();
    kill(postmaster(&data), Signal::SIGKILL).expect("kill the postmaster");
    let status = exited(&mut child, Duration::from_secs(60)).await;
    let output = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "{status}");
    assert!(output.contains("could not be restarted"), "{output}");
}

/// Runs `qi hr import` against the suite on `port`: its exit status and peak resident memory
/// (the kernel's high-water mark, read from /proc while it runs).
async fn hr_import(port: u16, data: &std::path::Path, args: &[&str]) -> (Option<i32>, u64) {
    let report = data.with_extension("import.log");
    let mut child = Command::new(QI)
        .args(["hr", "import", "--gateway"])
        .arg(format!("http://127.0.0.1:{port}"))
        .args(args)
        .env("QI_TOKEN", token(data, "esr", "hr_sync", "*"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&report).unwrap())
        .spawn()
        .expect("qi hr import starts");
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Ok(text) = std::fs::read_to_string(&status)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(exit) = child.try_wait().expect("qi hr import is inspectable") {
            let said = std::fs::read_to_string(&report).unwrap_or_default();
            println!(
                "qi hr import {args:?}: {exit}\n{}",
                said.lines().rev().take(5).collect::<Vec<_>>().join("\n")
            );
            return (exit.code(), peak_kib / 1024);
        }
        assert!(
            Instant::now() < deadline,
            "qi hr import still running after 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `qi hr import` streams: a 200,000-row extract goes in with the CLI under 64 MiB and the
/// server's default settings; the exit status says what happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hr_import_streams_a_big_extract_in_bounded_memory_and_its_exit_status_says_what_happened()
{
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("qi-up.log");
    let mut child = up(&data, &log);
    let port = announced_port(&mut child);
    wait_serving(port, &mut child).await;

    let big = dir.path().join("big.csv");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
    writeln!(
        out,
        "employee_number,assignment_number,forename,surname,site,staff_group"
    )
    .unwrap();
    for i in 0..200_000u32 {
        let site = ["BAS", "BRM", "SOU"][i as usize % 3];
        writeln!(out, "{n},{n},Ada,Lovelace,{site},03", n = 20_000_000 + i).unwrap();
    }
    out.flush().unwrap();
    drop(out);
    let (code, peak_mib) = hr_import(port, &data, &["--full", big.to_str().unwrap()]).await;
    println!("qi hr import of 200,000 rows: exit {code:?}, peak {peak_mib} MiB");
    assert_eq!(
        code,
        Some(0),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(peak_mib < 64, "the CLI peaked at {peak_mib} MiB");

    // Some rows refused (a site the trust lacks, an unreadable date), the rest applied: 3.
    let partial = dir.path().join("partial.csv");
    std::fs::write(
        &partial,
        "employee_number,assignment_number,forename,surname,site,hire_date\n\
         30000001,30000001,Mo,Green,BAS,2020-02-01\n\
         30000002,30000002,Jo,Hill,ZZZ,2020-02-01\n\
         30000003,30000003,Al,Ince,SOU,not-a-date\n",
    )
    .unwrap();
    let (code, _) = hr_import(port, &data, &[partial.to_str().unwrap()]).await;
    assert_eq!(code, Some(3));
    // A FULL import with an unreadable line applies nothing: 1, and nobody is deactivated.
    let (code, _) = hr_import(port, &data, &["--full", partial.to_str().unwrap()]).await;
    assert_eq!(code, Some(1));
    let (code, _) = hr_import(port, &data, &["--full", big.to_str().unwrap()]).await;
    assert_eq!(code, Some(0), "the big extract re-sent applies cleanly");
    stop_child(child, &log).await;
}
