//! The bench's deployment: a private PostgreSQL (or `QI_DATABASE_URL`) and one `qi serve`
//! process per component on loopback ports, as in Kubernetes, so each component's memory
//! can be read and the load generator does not share the servers' runtime.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use qi_platform::access::AccessSigner;
use qi_platform::config::JwtConfig;
use qi_platform::pg::{Durability, PrivateCluster};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// A running deployment.
pub struct Deployment {
    _dir: tempfile::TempDir,
    cluster: Option<PrivateCluster>,
    children: Vec<(&'static str, Child, SocketAddr)>,
    /// The database URL the services use.
    pub database_url: String,
    /// A channel to the gateway.
    pub gateway: Channel,
    /// A channel straight to the training service.
    pub training: Channel,
    /// A channel straight to the metrics service.
    pub metrics: Channel,
    jwt: JwtConfig,
    jwt_secret: String,
    /// Signs access contexts for direct calls to the services.
    pub signer: AccessSigner,
    /// Each component's resident memory once it first served, before any load (MiB).
    pub idle_at_start: Vec<(&'static str, f64)>,
    /// The private cluster's data folder (its `postmaster.pid` names the server).
    pg_dir: Option<std::path::PathBuf>,
    /// Processes beside the suite whose CPU time is counted too (a peer proxy), by name.
    peers: std::sync::Mutex<Vec<(&'static str, u32)>>,
}

/// A bench that fails or is interrupted part-way must not leave the suite running: whatever
/// [`Deployment::stop`] did not stop is killed here (the private cluster stops itself).
impl Drop for Deployment {
    fn drop(&mut self) {
        for (_, child, _) in &mut self.children {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployment")
            .field("database_url", &self.database_url)
            .finish_non_exhaustive()
    }
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

impl Deployment {
    /// Where the gateway listens (for HTTP/JSON calls).
    pub fn gateway_addr(&self) -> Option<SocketAddr> {
        self.children
            .iter()
            .find(|(name, ..)| *name == "gateway")
            .map(|(.., addr)| *addr)
    }

    /// Starts PostgreSQL and the five components, and waits until each serves.
    pub async fn start() -> anyhow::Result<Deployment> {
        let dir = tempfile::Builder::new()
            .prefix("qi-bench-")
            .tempdir_in("/tmp")?;
        let pg_dir = dir.path().join("pg");
        let (cluster, database_url) = match std::env::var("QI_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            Some(url) => (None, url),
            None => {
                let pg_dir = pg_dir.clone();
                let cluster = tokio::task::spawn_blocking(move || {
                    PrivateCluster::start(&pg_dir, Durability::Durable)
                })
                .await??;
                let url = cluster.create_database("qi_bench").await?;
                (Some(cluster), url)
            }
        };
        let jwt_secret = crate::secrets::random_secret();
        let access_key = crate::secrets::random_secret();
        let exe = std::env::current_exe().context("finding the qi binary")?;
        let mut children = Vec::new();
        let mut urls = Vec::new();
        // Training first: the projects service follows its feed (QI_TRAINING_URL).
        for role in ["training", "projects", "metrics"] {
            let addr = free_addr()?;
            let training: Vec<(&str, String)> = urls
                .iter()
                .filter(|(r, _)| role == "projects" && *r == "training")
                .map(|(_, u): &(&str, String)| ("QI_TRAINING_URL", u.clone()))
                .collect();
            let child = spawn(
                &exe,
                role,
                &["serve", role],
                addr,
                &database_url,
                (&access_key, &jwt_secret),
                &training,
            )?;
            children.push((role, child, addr));
            urls.push((role, format!("http://{addr}")));
        }
        let gateway_addr = free_addr()?;
        let url_of = |r: &str| {
            urls.iter()
                .find(|(n, _)| *n == r)
                .map(|(_, u)| u.clone())
                .unwrap_or_default()
        };
        let services_env = [
            ("QI_TRAINING_URL", url_of("training")),
            ("QI_PROJECTS_URL", url_of("projects")),
            ("QI_METRICS_URL", url_of("metrics")),
        ];
        // The read model follows the services' feeds, as in Kubernetes.
        let insights_addr = free_addr()?;
        let child = spawn(
            &exe,
            "insights",
            &["serve", "insights"],
            insights_addr,
            &database_url,
            (&access_key, &jwt_secret),
            &services_env,
        )?;
        children.push(("insights", child, insights_addr));
        let mut gateway_env = services_env.to_vec();
        gateway_env.push(("QI_INSIGHTS_URL", format!("http://{insights_addr}")));
        let child = spawn(
            &exe,
            "gateway",
            &["serve", "gateway"],
            gateway_addr,
            &database_url,
            (&access_key, &jwt_secret),
            &gateway_env,
        )?;
        children.push(("gateway", child, gateway_addr));
        let mut deployment = Deployment {
            _dir: dir,
            database_url,
            gateway: Endpoint::from_shared(format!("http://{gateway_addr}"))?.connect_lazy(),
            training: Endpoint::from_shared(url_of("training"))?.connect_lazy(),
            metrics: Endpoint::from_shared(url_of("metrics"))?.connect_lazy(),
            children,
            jwt: qi_platform::Config::defaults().jwt,
            jwt_secret,
            signer: AccessSigner::new(&access_key, Duration::from_secs(3600)),
            idle_at_start: Vec::new(),
            pg_dir: cluster.is_some().then_some(pg_dir),
            cluster,
            peers: std::sync::Mutex::default(),
        };
        for i in 0..deployment.children.len() {
            let (name, _, addr) = &deployment.children[i];
            let (name, addr) = (*name, *addr);
            wait_serving(&mut deployment.children[i].1, name, addr).await?;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        deployment.idle_at_start = deployment.resident_mib();
        Ok(deployment)
    }

    /// A development token for the bench's calls.
    /// The gateway's URL, for a client process (`qi hr import`).
    pub fn gateway_url(&self) -> Option<String> {
        self.children
            .iter()
            .find(|(name, _, _)| *name == "gateway")
            .map(|(_, _, addr)| format!("http://{addr}"))
    }

    /// A trust-wide development token for `sub` with `roles`.
    pub fn token(&self, sub: &str, roles: &[&str]) -> anyhow::Result<String> {
        qi_gateway::auth::mint_dev_token(
            &self.jwt_secret,
            &self.jwt,
            sub,
            &roles.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            &["*".to_owned()],
            Duration::from_secs(3600),
        )
    }

    /// The process id of a component (`gateway`, `metrics`, …).
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.children
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, c, _)| c.id())
    }

    /// Starts `qi up` (every component in one process) on the same database and token
    /// secret, beside the split deployment, and waits until it serves.
    pub async fn start_up(&self) -> anyhow::Result<UpProcess> {
        let exe = std::env::current_exe().context("finding the qi binary")?;
        let dir = tempfile::Builder::new()
            .prefix("qi-bench-up-")
            .tempdir_in("/tmp")?;
        let addr = free_addr()?;
        let data_dir = dir.path().to_string_lossy().into_owned();
        let mut child = spawn(
            &exe,
            "up",
            &["up", "--data-dir", &data_dir],
            addr,
            &self.database_url,
            (&crate::secrets::random_secret(), &self.jwt_secret),
            &[],
        )?;
        if let Err(e) = wait_serving(&mut child, "up", addr).await {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        Ok(UpProcess {
            _dir: dir,
            child,
            channel: Endpoint::from_shared(format!("http://{addr}"))?.connect_lazy(),
        })
    }

    /// The resident memory of each component, in MiB.
    pub fn resident_mib(&self) -> Vec<(&'static str, f64)> {
        self.children
            .iter()
            .map(|(name, child, _)| {
                let kb = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find(|l| l.starts_with("VmRSS:"))
                            .and_then(|l| l.split_whitespace().nth(1))
                            .and_then(|v| v.parse::<f64>().ok())
                    })
                    .unwrap_or(f64::NAN);
                (*name, kb / 1024.0)
            })
            .collect()
    }

    /// The peak resident memory (MiB) of component `name` since [`Deployment::reset_peak`]
    /// (or since it started): the kernel's high-water mark, so no spike between samples
    /// is missed.
    pub fn peak_resident_mib(&self, name: &str) -> anyhow::Result<f64> {
        let pid = self.pid(name).context("no such component")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("VmHWM in /proc/PID/status")?;
        Ok(kib / 1024.0)
    }

    /// Resets component `name`'s peak resident memory to what it holds now (Linux's
    /// `clear_refs` value 5), so the next [`Deployment::peak_resident_mib`] is one step's.
    pub fn reset_peak(&self, name: &str) -> anyhow::Result<()> {
        let pid = self.pid(name).context("no such component")?;
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
            .context("resetting the peak resident memory")
    }

    /// The CPU time (user and system, in seconds) each part of the deployment has used so
    /// far: the four components, PostgreSQL (the private cluster's server and its
    /// backends; absent with `QI_DATABASE_URL`) and the bench itself, which drives the load.
    /// Differences over a load round, divided by its calls, say what each call costs each
    /// part — steadier on a shared machine than throughput, which other work shifts.
    pub fn cpu_seconds(&self) -> Vec<(&'static str, f64)> {
        let mut out: Vec<(&'static str, f64)> = self
            .children
            .iter()
            .map(|(name, child, _)| (*name, cpu_of(child.id(), false).unwrap_or(f64::NAN)))
            .collect();
        if let Some(postmaster) = self.postmaster() {
            // The server, the backends it has reaped, and the ones still running.
            let mut total = cpu_of(postmaster, true).unwrap_or(f64::NAN);
            for pid in children_of(postmaster) {
                total += cpu_of(pid, false).unwrap_or(0.0);
            }
            out.push(("postgres", total));
        }
        out.push((
            "bench",
            cpu_of(std::process::id(), false).unwrap_or(f64::NAN),
        ));
        for (name, pid) in self.peers.lock().map(|p| p.clone()).unwrap_or_default() {
            out.push((name, cpu_of(pid, false).unwrap_or(f64::NAN)));
        }
        out
    }

    /// Counts a peer process's CPU time in [`Deployment::cpu_seconds`] from now on (`None`:
    /// no longer).
    pub fn count_peer(&self, name: &'static str, pid: Option<u32>) {
        if let Ok(mut peers) = self.peers.lock() {
            peers.retain(|(n, _)| *n != name);
            peers.extend(pid.map(|pid| (name, pid)));
        }
    }

    /// Where the training service listens.
    pub fn training_addr(&self) -> Option<SocketAddr> {
        self.children
            .iter()
            .find(|(name, ..)| *name == "training")
            .map(|(.., addr)| *addr)
    }

    /// The private cluster's server process, if the bench started one.
    fn postmaster(&self) -> Option<u32> {
        let pid = std::fs::read_to_string(self.pg_dir.as_ref()?.join("postmaster.pid")).ok()?;
        pid.lines().next()?.trim().parse().ok()
    }

    /// Restricts each named part (as in [`Deployment::cpu_seconds`]) to a list of CPUs
    /// (`taskset` syntax: `0`, `1`, `0-1`), every thread of it; PostgreSQL's backends
    /// included, and those it starts later, which inherit the server's.
    pub fn pin(&self, parts: &[(&str, &str)]) -> anyhow::Result<()> {
        for (part, cpus) in parts {
            let pids = match *part {
                "bench" => vec![std::process::id()],
                "postgres" => {
                    let postmaster = self.postmaster().context("no private cluster to pin")?;
                    let mut pids = children_of(postmaster);
                    pids.push(postmaster);
                    pids
                }
                name => self
                    .children
                    .iter()
                    .filter(|(n, _, _)| *n == name)
                    .map(|(_, c, _)| c.id())
                    .collect(),
            };
            for pid in pids {
                let status = Command::new("taskset")
                    .args(["-a", "-c", "-p", cpus, &pid.to_string()])
                    .stdout(Stdio::null())
                    .status()
                    .context("running taskset")?;
                if !status.success() {
                    bail!("taskset could not pin {part} (pid {pid}) to CPUs {cpus}");
                }
            }
        }
        Ok(())
    }

    /// Stops every component (SIGTERM, then waits) and the database.
    pub async fn stop(mut self) {
        for (_, child, _) in &mut self.children {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        for (_, child, _) in &mut self.children {
            let deadline = Instant::now() + Duration::from_secs(30);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut c) = self.cluster.take() {
            let _ = tokio::task::spawn_blocking(move || c.stop()).await;
        }
    }
}

/// `qi up` started by [`Deployment::start_up`]; stopped (SIGTERM, then killed) when dropped.
pub struct UpProcess {
    _dir: tempfile::TempDir,
    child: Child,
    /// A channel to its gateway.
    pub channel: Channel,
}

impl UpProcess {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for UpProcess {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fields of `/proc/{pid}/stat` after the command name (which may hold spaces).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// A process's CPU seconds (with `reaped`, also those of its children it has waited for).
fn cpu_of(pid: u32, reaped: bool) -> Option<f64> {
    // After the name: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14), in
    // clock ticks of 1/100 s (USER_HZ, 100 on Linux whatever the kernel's own tick).
    let f = stat_fields(pid)?;
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    let mut ticks = field(11)? + field(12)?;
    if reaped {
        ticks += field(13)? + field(14)?;
    }
    Some(ticks as f64 / 100.0)
}

/// The processes whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            stat_fields(*pid).and_then(|f| f.get(1).and_then(|p| p.parse::<u32>().ok()))
                == Some(parent)
        })
        .collect()
}

fn spawn(
    exe: &std::path::Path,
    role: &str,
    args: &[&str],
    addr: SocketAddr,
    database_url: &str,
    (access_key, jwt_secret): (&str, &str),
    extra: &[(&str, String)],
) -> anyhow::Result<Child> {
    // `QI_BENCH_WRAP_GATEWAY="valgrind --tool=callgrind"` runs the gateway under a profiler
    // (`QI_BENCH_WRAP_TRAINING` the training service, and so on).
    let wrapper =
        std::env::var(format!("QI_BENCH_WRAP_{}", role.to_uppercase())).unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    let mut cmd = match words.next() {
        Some(program) => {
            let mut cmd = Command::new(program);
            cmd.args(words).arg(exe);
            cmd
        }
        None => Command::new(exe),
    };
    cmd.args(args)
        .env("QI_LISTEN", addr.to_string())
        .env("QI_DATABASE_URL", database_url)
        .env("QI_ACCESS_KEY", access_key)
        .env("QI_JWT_SECRET", jwt_secret)
        // Warnings, and each HR sync's summary (where its time went).
        .env("QI_LOG", "warn,qi_training::sync=info")
        .env("QI_CONCURRENCY_LIMIT", "4096")
        // The bench is one caller making thousands of calls a second: a limit it never
        // reaches, so each call still pays for the limiter as in production.
        .env("QI_RATE_LIMIT_PER_SUBJECT", "10000000")
        .env("QI_RATE_LIMIT_BURST", "10000000")
        .env("QI_SHUTDOWN_GRACE_MS", "5000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.spawn()
        .with_context(|| format!("starting qi serve {role}"))
}

async fn wait_serving(child: &mut Child, name: &str, addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("qi serve {name} exited with {status}");
        }
        if let Ok(channel) = Endpoint::from_shared(format!("http://{addr}"))?
            .connect()
            .await
            && HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .is_ok()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("qi serve {name} did not serve within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
