//! nginx as the gateway's peer (issue 38): a mature C proxy, `grpc_pass` in front of the same
//! training service, measured with the same client, so the gateway's hop is judged against
//! what this hardware lets a proxy do. It authenticates nothing and audits nothing: the
//! client sends the signed access context a direct call sends, and nginx passes it on.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A running nginx, stopped when dropped.
pub(super) struct Nginx {
    child: Child,
    _dir: tempfile::TempDir,
    /// Where it listens (HTTP/2 without TLS, as the services do).
    pub(super) addr: SocketAddr,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// The process id, for its CPU time.
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts nginx in front of `upstream`, or `None` when `nginx` is not on the PATH
    /// (Debian's `nginx-light` has it).
    pub(super) fn start(upstream: SocketAddr) -> anyhow::Result<Option<Nginx>> {
        let Some(exe) = on_path("nginx") else {
            return Ok(None);
        };
        let dir = tempfile::Builder::new()
            .prefix("qi-bench-nginx-")
            .tempdir_in("/tmp")?;
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config(dir.path(), addr, upstream))?;
        let child = Command::new(exe)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nginx")?;
        let mut nginx = Nginx {
            child,
            _dir: dir,
            addr,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            if let Some(status) = nginx.child.try_wait()? {
                let log = std::fs::read_to_string(nginx._dir.path().join("error.log"));
                bail!("nginx exited ({status}): {}", log.unwrap_or_default());
            }
            if Instant::now() > deadline {
                bail!("nginx did not listen on {addr} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Some(nginx))
    }
}

/// One process that is its own worker (no master: its CPU time is all the proxy's), no
/// access log, and connections to the service kept open for the whole run: upstream
/// keepalive, and `keepalive_requests` far above any round's calls on either side.
fn config(dir: &std::path::Path, listen: SocketAddr, upstream: SocketAddr) -> String {
    let dir = dir.display();
    format!(
        "daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream training {{
        server {upstream};
        keepalive 64;
        keepalive_requests 100000000;
        keepalive_timeout 1h;
    }}
    server {{
        listen {listen} http2;
        keepalive_requests 100000000;
        keepalive_timeout 1h;
        http2_max_concurrent_streams 256;
        location / {{
            grpc_pass grpc://training;
        }}
    }}
}}
"
    )
}

/// `name` on the PATH.
fn on_path(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .chain([std::path::PathBuf::from("/usr/sbin").join(name)])
        .find(|p| p.is_file())
}
