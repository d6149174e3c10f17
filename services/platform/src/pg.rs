//! A private PostgreSQL cluster started from the machine's server binaries: `qi up` keeps one
//! under its data folder, and the test kit (libs/test-kit) starts a throwaway one per
//! test process and hands each test its own database. No Docker, no shared server.
//!
//! The cluster listens on a unix socket only (no TCP port, so no port races). PostgreSQL
//! refuses to run as root, so as root the cluster runs as the `postgres` user through
//! `runuser`; where that user cannot reach the cluster's folder (a checkout under `/root`),
//! the cluster lives under [`REACHABLE_ROOT`] instead, linked from where it was asked for. A
//! watchdog shell stops the cluster when the owning process exits, however it exits, so no
//! `postgres` outlives its owner.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use sqlx::Connection as _;

/// Where, as root, a cluster lives when the `postgres` user cannot reach its own folder.
pub const REACHABLE_ROOT: &str = "/var/lib/qi";

/// A running private cluster.
#[derive(Debug)]
pub struct PrivateCluster {
    /// Held while the cluster runs: one owner per data folder.
    _lock: std::fs::File,
    data_dir: PathBuf,
    socket_dir: tempfile::TempDir,
    bin_dir: PathBuf,
    run_as: Option<String>,
    watchdog: Option<std::process::Child>,
    /// The running postmaster's pid, read at launch.
    postmaster: Option<i32>,
    stopped: bool,
    durability: Durability,
}

/// How a cluster trades durability for speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `qi up`'s data: PostgreSQL's defaults.
    Durable,
    /// Throwaway test clusters: no fsync.
    Throwaway,
}

impl PrivateCluster {
    /// Starts (creating it first if new) a cluster in `data_dir`. Blocking: call from
    /// `spawn_blocking` in async code.
    pub fn start(data_dir: &Path, durability: Durability) -> anyhow::Result<Self> {
        let bin_dir = find_bin_dir()?;
        let run_as = running_as_root().then(|| "postgres".to_owned());
        if let Some(user) = &run_as {
            home_reachable_by(user, data_dir)?;
        }
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let data_dir = data_dir
            .canonicalize()
            .with_context(|| format!("resolving {}", data_dir.display()))?;
        // One owner per cluster: a second `qi up` on the same folder must not touch it.
        let lock_path = data_dir.with_extension("lock");
        let lock = std::fs::File::create(&lock_path)
            .with_context(|| format!("creating {}", lock_path.display()))?;
        if lock.try_lock().is_err() {
            bail!(
                "{} is in use by another running `qi` (lock {}): stop it first or choose another data folder",
                data_dir.display(),
                lock_path.display()
            );
        }
        // A short socket path: unix socket paths are limited to about 100 bytes.
        let socket_dir = tempfile::Builder::new()
            .prefix("qi-pg-")
            .tempdir_in("/tmp")
            .context("creating the socket folder")?;
        let mut cluster = PrivateCluster {
            _lock: lock,
            data_dir,
            socket_dir,
            bin_dir,
            run_as,
            watchdog: None,
            postmaster: None,
            stopped: false,
            durability,
        };
        cluster.hand_over(cluster.socket_dir.path())?;
        if !cluster.data_dir.join("PG_VERSION").exists() {
            cluster.hand_over(&cluster.data_dir)?;
            if let Some(user) = &cluster.run_as {
                let reachable = Command::new("runuser")
                    .args(["-u", user, "--", "test", "-w", path_str(&cluster.data_dir)?])
                    .status()
                    .is_ok_and(|s| s.success());
                if !reachable {
                    bail!(
                        "PostgreSQL refuses to run as root, and user {user} cannot reach {}: run as a \
                         normal user, or choose a data folder {user} can reach (e.g. --data-dir /var/lib/qi)",
                        cluster.data_dir.display()
                    );
                }
            }
            cluster.run(
                "initdb",
                &[
                    "-D",
                    path_str(&cluster.data_dir)?,
                    "-U",
                    "qi",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ],
            )?;
        }
        // A cluster left running by a process that was killed: stop it, it holds the lock.
        if cluster.status_running() {
            tracing::warn!(dir = %cluster.data_dir.display(), "stopping a cluster left running");
            let _ = cluster.run(
                "pg_ctl",
                &["stop", "-D", path_str(&cluster.data_dir)?, "-m", "fast"],
            );
        }
        cluster.launch()?;
        Ok(cluster)
    }

    /// Starts the server on the existing data folder and socket, and the watchdog that stops
    /// it when this process ends.
    fn launch(&mut self) -> anyhow::Result<()> {
        let mut opts = format!(
            "-c listen_addresses='' -k {} -c max_connections=300 -c shared_buffers=128MB",
            path_str(self.socket_dir.path())?
        );
        if self.durability == Durability::Throwaway {
            opts.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let log = self.data_dir.join("postgres.log");
        self.run(
            "pg_ctl",
            &[
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                path_str(&self.data_dir)?,
                "-l",
                path_str(&log)?,
                "-o",
                &opts,
            ],
        )
        .with_context(|| format!("starting PostgreSQL (its log: {})", log.display()))?;
        let pid = self.read_postmaster_pid()?;
        self.postmaster = pid.parse().ok();
        self.watchdog = Some(self.spawn_watchdog(&pid, self.durability == Durability::Throwaway)?);
        Ok(())
    }

    fn read_postmaster_pid(&self) -> anyhow::Result<String> {
        std::fs::read_to_string(self.data_dir.join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().map(str::to_owned))
            .context("reading the postmaster's pid")
    }

    /// Whether the postmaster started last is still running (false once it has died, been
    /// killed, or was stopped).
    pub fn is_running(&self) -> bool {
        !self.stopped
            && self.postmaster.is_some_and(|pid| {
                // Signal 0 only asks whether the process exists.
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
            })
    }

    /// Starts the server again on the same data after its postmaster died (PostgreSQL runs
    /// crash recovery). Blocking. Fails while the dead server's backends still hold its
    /// shared memory; the caller retries.
    pub fn restart_after_crash(&mut self) -> anyhow::Result<()> {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        self.postmaster = None;
        self.launch()
    }

    /// For fault tests: stops the server but keeps the cluster, its data and its URL, so
    /// clients see the database gone until [`PrivateCluster::start_server`].
    pub fn stop_server(&mut self) -> anyhow::Result<()> {
        self.run(
            "pg_ctl",
            &["stop", "-w", "-D", path_str(&self.data_dir)?, "-m", "fast"],
        )?;
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        Ok(())
    }

    /// For fault tests: starts the server again after [`PrivateCluster::stop_server`].
    pub fn start_server(&mut self) -> anyhow::Result<()> {
        self.launch()
    }

    /// A URL for database `db` on this cluster, as its superuser `qi`.
    pub fn url(&self, db: &str) -> String {
        self.url_as("qi", db)
    }

    /// A URL for database `db` as `user` (the unix socket trusts every role, so no password).
    pub fn url_as(&self, user: &str, db: &str) -> String {
        format!(
            "postgres://{user}@localhost/{db}?host={}",
            self.socket_dir.path().display()
        )
    }

    /// Creates database `name` (if absent) and returns its URL.
    pub async fn create_database(&self, name: &str) -> anyhow::Result<String> {
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres")).await?;
        let exists = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS "exists!""#,
            name,
        )
        .fetch_one(&mut conn)
        .await?;
        if !exists {
            // Dynamic: a database's name is an identifier, which cannot be a parameter.
            let mut create = sqlx::QueryBuilder::new("CREATE DATABASE \"");
            create.push(name.replace('"', "\"\"")).push('"');
            create.build().execute(&mut conn).await?;
        }
        Ok(self.url(name))
    }

    /// Restarts the server in place (for fault tests): connections drop, data stays.
    pub fn restart(&self) -> anyhow::Result<()> {
        self.run(
            "pg_ctl",
            &[
                "restart",
                "-w",
                "-D",
                path_str(&self.data_dir)?,
                "-m",
                "fast",
            ],
        )
    }

    /// Stops the cluster (fast shutdown: open sessions are ended, data is kept), in at most
    /// about 6 s.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        // Bounded: a server that does not stop in time is stopped at once (its data is
        // safe; the next start runs crash recovery), so `qi up`'s shutdown has a ceiling.
        let data_dir = path_str(&self.data_dir)?;
        let fast = ["stop", "-w", "-t", "4", "-D", data_dir, "-m", "fast"];
        let stopped = self.run("pg_ctl", &fast).or_else(|e| {
            tracing::warn!(error = %format!("{e:#}"), "PostgreSQL did not stop in 4 s: stopping it at once");
            self.run("pg_ctl", &["stop", "-w", "-t", "2", "-D", data_dir, "-m", "immediate"])
        });
        // Stopped cleanly: the watchdog must not stop a later cluster in the same folder.
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        stopped
    }

    fn status_running(&self) -> bool {
        path_str(&self.data_dir)
            .and_then(|d| self.run("pg_ctl", &["status", "-D", d]))
            .is_ok()
    }

    /// Gives a folder to the user the server runs as.
    fn hand_over(&self, dir: &Path) -> anyhow::Result<()> {
        if let Some(user) = &self.run_as {
            let status = Command::new("chown")
                .args(["-R", user, path_str(dir)?])
                .status()
                .context("running chown")?;
            if !status.success() {
                bail!("could not give {} to user {user}", dir.display());
            }
        }
        Ok(())
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bin_dir.join(program);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let out = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {program}"))?;
        if !out.status.success() {
            bail!(
                "{program} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// A shell that waits for this process to end, then stops the cluster (and, for a
    /// throwaway cluster, deletes it). It stops only the postmaster it was started for, so
    /// a later cluster in the same folder is safe from it.
    fn spawn_watchdog(
        &self,
        postmaster: &str,
        delete: bool,
    ) -> anyhow::Result<std::process::Child> {
        let pg_ctl = self.bin_dir.join("pg_ctl");
        let stop = match &self.run_as {
            Some(user) => format!("runuser -u {user} -- '{}'", pg_ctl.display()),
            None => format!("'{}'", pg_ctl.display()),
        };
        let data = path_str(&self.data_dir)?;
        let socket = path_str(self.socket_dir.path())?;
        let mut script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             if [ \"$(head -n 1 '{data}/postmaster.pid' 2>/dev/null)\" = '{postmaster}' ]; then \
             {stop} stop -D '{data}' -m fast >/dev/null 2>&1; fi; rm -rf '{socket}'",
            pid = std::process::id()
        );
        if delete {
            script.push_str(&format!("; rm -rf '{data}' '{data}.lock'"));
        }
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the cluster watchdog")
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "stopping the private PostgreSQL");
        }
    }
}

/// Makes sure `user` (who runs the server) can reach the cluster folder `dir`: when it cannot
/// reach `dir`'s parent (only root may enter `/root`), `dir` becomes a link to a folder under
/// [`REACHABLE_ROOT`] named after that parent, so the data folder still leads to its cluster
/// and the next start finds it there. A link made before, or a cluster already in `dir`, is
/// left as it is.
fn home_reachable_by(user: &str, dir: &Path) -> anyhow::Result<()> {
    if dir.is_symlink() || dir.join("PG_VERSION").exists() {
        return Ok(());
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let parent = parent
        .canonicalize()
        .with_context(|| format!("resolving {}", parent.display()))?;
    let reachable = Command::new("runuser")
        .args(["-u", user, "--", "test", "-x", path_str(&parent)?])
        .status()
        .is_ok_and(|s| s.success());
    if reachable {
        return Ok(());
    }
    let name = path_str(&parent)?.trim_start_matches('/').replace('/', "-");
    let home = Path::new(REACHABLE_ROOT)
        .join(name)
        .join(dir.file_name().unwrap_or("pg".as_ref()));
    std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
    if dir.exists() {
        // An empty folder from an earlier, failed start; anything else is not ours to move.
        std::fs::remove_dir(dir).with_context(|| {
            format!(
                "{} is not empty and user {user} cannot reach it",
                dir.display()
            )
        })?;
    }
    std::os::unix::fs::symlink(&home, dir)
        .with_context(|| format!("linking {} to {}", dir.display(), home.display()))?;
    tracing::info!(
        cluster = %home.display(),
        link = %dir.display(),
        "PostgreSQL cannot run as root and user {user} cannot reach the data folder: \
         the cluster lives where it can, linked from the data folder"
    );
    Ok(())
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not valid UTF-8", p.display()))
}

fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Finds PostgreSQL's server binaries: `QI_PG_BINDIR`, then `initdb` on the `PATH`, then
/// the newest `/usr/lib/postgresql/*/bin` (Debian's layout).
pub fn find_bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("QI_PG_BINDIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let initdb = dir.join("initdb");
            if initdb.is_file() {
                // Resolve links (Debian's /usr/local/bin symlinks) to find pg_ctl beside it.
                let real = initdb.canonicalize().unwrap_or(initdb);
                if let Some(parent) = real.parent()
                    && parent.join("pg_ctl").is_file()
                {
                    return Ok(parent.to_path_buf());
                }
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).context(
        "PostgreSQL server binaries not found: install Debian's `postgresql` package or set QI_PG_BINDIR",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As root, a cluster asked for in a folder `postgres` cannot enter (a 0700 folder of
    /// root's, as `/root` is) starts anyway, under [`REACHABLE_ROOT`], linked from there.
    #[tokio::test]
    async fn as_root_a_cluster_in_a_folder_postgres_cannot_reach_lives_where_it_can() {
        if !running_as_root() {
            return; // Only root is refused by PostgreSQL; a normal user's folder is its own.
        }
        let private = tempfile::Builder::new()
            .prefix("qi-root-only-")
            .tempdir_in("/tmp")
            .unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let dir = private.path().join("pg");
        let started = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || PrivateCluster::start(&dir, Durability::Throwaway))
                .await
                .unwrap()
        };
        let home = Path::new(REACHABLE_ROOT).join(
            path_str(&private.path().canonicalize().unwrap())
                .unwrap()
                .trim_start_matches('/')
                .replace('/', "-"),
        );
        let result = async {
            let cluster = started?;
            cluster.create_database("reached").await?;
            anyhow::Ok(())
        }
        .await;
        let link = std::fs::read_link(&dir);
        let _ = std::fs::remove_dir_all(&home);
        result.unwrap();
        assert_eq!(link.unwrap(), home.join("pg"));
    }
}
