//! The one end-to-end test harness: starts the whole suite in-process exactly as `qi up` does
//! (three services and the gateway, each on its own loopback port, real gRPC between them)
//! against a fresh database on this test process's private PostgreSQL, and hands the test a
//! channel to the gateway and a way to mint tokens.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use qi_platform::Config;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

/// A running suite for one test.
#[derive(Debug)]
pub struct TestSuite {
    /// The gateway's address.
    pub addr: SocketAddr,
    /// A channel to the gateway.
    pub channel: Channel,
    /// The configuration the suite runs with.
    pub config: Config,
    /// The database URL (for checking what was stored).
    pub database_url: String,
    stop: Option<oneshot::Sender<()>>,
    running: Option<JoinHandle<anyhow::Result<()>>>,
}

/// A random secret, as `qi up` generates.
pub use qi::secrets::random_secret;

impl TestSuite {
    /// Starts the suite with the default configuration.
    pub async fn start() -> TestSuite {
        Self::start_with(&[]).await
    }

    /// Starts the suite with extra `QI_*` settings.
    pub async fn start_with(settings: &[(&str, &str)]) -> TestSuite {
        qi_platform::telemetry::init_for_tests();
        let database_url = qi_platform::pg::test_database()
            .await
            .expect("a test database");
        let mut vars: HashMap<String, String> = HashMap::from([
            ("QI_DATABASE_URL".into(), database_url.clone()),
            ("QI_LISTEN".into(), "127.0.0.1:0".into()),
            ("QI_JWT_SECRET".into(), random_secret()),
            ("QI_ACCESS_KEY".into(), random_secret()),
            ("QI_DB_MAX_CONNECTIONS".into(), "5".into()),
        ]);
        for (k, v) in settings {
            vars.insert((*k).into(), (*v).into());
        }
        let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("a valid test config");
        let suite = qi::suite::Suite::build(&config)
            .await
            .expect("the suite builds");
        let addr = suite.gateway_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let running = tokio::spawn(suite.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("a URL")
            .connect()
            .await
            .expect("the gateway accepts connections");
        TestSuite {
            addr,
            channel,
            config,
            database_url,
            stop: Some(stop),
            running: Some(running),
        }
    }

    /// A development token for `sub` with these roles and sites (`*` = trust-wide).
    pub fn token(&self, sub: &str, roles: &[&str], sites: &[&str]) -> String {
        let secret = self
            .config
            .jwt
            .hs256_secret
            .as_deref()
            .expect("the test suite has a dev secret");
        qi_gateway::auth::mint_dev_token(
            secret,
            &self.config.jwt,
            sub,
            &roles.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            &sites.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            Duration::from_secs(600),
        )
        .expect("a token")
    }

    /// Stops the suite gracefully and reports how it ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.running.take() {
            Some(r) => r.await?,
            None => Ok(()),
        }
    }
}

impl Drop for TestSuite {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A request carrying a bearer token.
pub fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    if let Ok(v) = format!("Bearer {token}").parse() {
        req.metadata_mut().insert("authorization", v);
    }
    req
}
