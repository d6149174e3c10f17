//! The one end-to-end test harness: starts the whole suite in-process exactly as `qi up` does
//! (three services and the gateway, each on its own loopback port, real gRPC between them)
//! against a fresh database on this test process's private PostgreSQL, and hands the test a
//! channel to the gateway and a way to mint tokens; beside it, what the tests share: callers
//! with a token ([`caller`]) and the requests several tests send, by service ([`training`],
//! [`projects`], [`metrics`], [`insights`]).
#![forbid(unsafe_code)]

pub mod caller;
pub mod insights;
pub mod metrics;
pub mod projects;
pub mod training;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qi_platform::Config;
use qi_platform::pg::{Durability, PrivateCluster};
use sqlx::Connection as _;
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
    /// Each gRPC service's own URL, by its full name (internal consumers call them direct).
    pub service_urls: HashMap<&'static str, String>,
    running: Running,
    /// The suite's own PostgreSQL, when it has one ([`TestSuite::start_on_own_cluster`]).
    cluster: Option<Arc<Mutex<PrivateCluster>>>,
}

pub use caller::{Caller, authed, code, fields};
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
        Self::start_on(migrated_database().await, None, settings).await
    }

    /// Starts the suite with its roles split: the superuser migrates
    /// (`QI_MIGRATION_DATABASE_URL`) and every component serves as `runtime_role`
    /// (`QI_DATABASE_URL`), which `qi migrate`'s path creates and grants. `database_url`
    /// stays the superuser's, for checking what was stored.
    pub async fn start_with_runtime_role(
        runtime_role: &str,
        settings: &[(&str, &str)],
    ) -> TestSuite {
        qi_platform::telemetry::init_for_tests();
        let owner = qi_test_kit::database().await.expect("a test database");
        let runtime = owner.replacen("postgres://qi@", &format!("postgres://{runtime_role}@"), 1);
        assert_ne!(
            owner, runtime,
            "the test cluster's URLs name the superuser `qi`"
        );
        let mut all = vec![
            ("QI_MIGRATION_DATABASE_URL", owner.as_str()),
            ("QI_DATABASE_URL", runtime.as_str()),
        ];
        all.extend_from_slice(settings);
        Self::start_on(owner.clone(), None, &all).await
    }

    /// Starts the suite on a PostgreSQL of its own, which the test may stop and start
    /// ([`TestSuite::stop_database`], [`TestSuite::start_database`]) without disturbing the
    /// other tests of its process, which share the process's cluster.
    pub async fn start_on_own_cluster(settings: &[(&str, &str)]) -> TestSuite {
        qi_platform::telemetry::init_for_tests();
        let cluster = tokio::task::spawn_blocking(|| {
            let dir = tempfile::Builder::new()
                .prefix("qi-fault-")
                .tempdir_in("/tmp")
                .expect("a cluster folder")
                .keep();
            PrivateCluster::start(&dir, Durability::Throwaway)
        })
        .await
        .expect("the cluster start ran")
        .expect("a private cluster");
        let database_url = cluster
            .create_database("qi")
            .await
            .expect("a test database");
        Self::start_on(database_url, Some(Arc::new(Mutex::new(cluster))), settings).await
    }

    async fn start_on(
        database_url: String,
        cluster: Option<Arc<Mutex<PrivateCluster>>>,
        settings: &[(&str, &str)],
    ) -> TestSuite {
        let mut vars: HashMap<String, String> = HashMap::from([
            ("QI_DATABASE_URL".into(), database_url.clone()),
            ("QI_LISTEN".into(), "127.0.0.1:0".into()),
            ("QI_JWT_SECRET".into(), random_secret()),
            ("QI_ACCESS_KEY".into(), random_secret()),
            ("QI_DB_MAX_CONNECTIONS".into(), "5".into()),
            // Tests make many unauthenticated calls from one address on purpose.
            ("QI_AUTH_FAILURE_RATE".into(), "0".into()),
        ]);
        for (k, v) in settings {
            vars.insert((*k).into(), (*v).into());
        }
        let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("a valid test config");
        let suite = qi::suite::Suite::build(&config)
            .await
            .expect("the suite builds");
        let addr = suite.gateway_addr();
        let service_urls = suite.service_urls();
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
            service_urls,
            running: Running(Some((stop, running))),
            cluster,
        }
    }

    /// Stops the suite's own PostgreSQL (fast shutdown: sessions end, data stays).
    pub async fn stop_database(&self) {
        self.with_cluster(PrivateCluster::stop_server).await;
    }

    /// Starts the suite's own PostgreSQL again, at the same address.
    pub async fn start_database(&self) {
        self.with_cluster(PrivateCluster::start_server).await;
    }

    async fn with_cluster(&self, f: fn(&mut PrivateCluster) -> anyhow::Result<()>) {
        let cluster = self
            .cluster
            .clone()
            .expect("the suite was started with start_on_own_cluster");
        tokio::task::spawn_blocking(move || {
            let mut c = cluster.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut c)
        })
        .await
        .expect("pg_ctl ran")
        .expect("pg_ctl succeeded");
    }

    /// Counts rows with a query on the suite's database (e.g. `SELECT count(*) FROM training.cohort`).
    pub async fn count(&self, sql: &str) -> i64 {
        count(&self.database_url, sql).await
    }

    /// Waits until the read model has applied every change the services have committed:
    /// each feed's stored cursor at or past its service's last change (and not inside a
    /// change of many). Its answers are then as current as the services' own.
    pub async fn until_read_model_caught_up(&self) {
        const BEHIND: &str = "
            WITH last(service, pos, id) AS (
                (SELECT 'training', pos::text::numeric, id::numeric FROM training.changes
                 ORDER BY pos DESC, id DESC LIMIT 1)
                UNION ALL
                (SELECT 'projects', pos::text::numeric, id::numeric FROM projects.changes
                 ORDER BY pos DESC, id DESC LIMIT 1)
                UNION ALL
                (SELECT 'metrics', pos::text::numeric, id::numeric FROM metrics.changes
                 ORDER BY pos DESC, id DESC LIMIT 1))
            SELECT count(*) FROM last LEFT JOIN insights.feed f USING (service)
            WHERE f.cursor IS NULL OR split_part(f.cursor, '.', 3) <> ''
               OR (split_part(f.cursor, '.', 1)::numeric, split_part(f.cursor, '.', 2)::numeric)
                  < (last.pos, last.id)";
        until("the read model caught up with the services", || async {
            self.count(BEHIND).await == 0
        })
        .await;
    }

    /// A development token for `sub` with these roles and sites (`*` = trust-wide).
    pub fn token(&self, sub: &str, roles: &[&str], sites: &[&str]) -> String {
        mint(&self.config, sub, roles, sites, None)
    }

    /// A caller `sub` holding these roles at these sites (`*` = trust-wide), whose clients
    /// send its token.
    pub fn caller(&self, sub: &str, roles: &[&str], sites: &[&str]) -> Caller {
        Caller::new(self.channel.clone(), &self.token(sub, roles, sites))
    }

    /// A caller whose token expires `secs` seconds from now.
    pub fn short_lived_caller(
        &self,
        sub: &str,
        roles: &[&str],
        sites: &[&str],
        secs: u64,
    ) -> Caller {
        let token = mint_for(
            &self.config,
            sub,
            roles,
            sites,
            None,
            Duration::from_secs(secs),
        );
        Caller::new(self.channel.clone(), &token)
    }

    /// A development token for a person: [`TestSuite::token`] carrying the ESR employee
    /// number `employee` under the suite's `QI_JWT_EMPLOYEE_CLAIM`.
    pub fn employee_token(
        &self,
        sub: &str,
        roles: &[&str],
        sites: &[&str],
        employee: &str,
    ) -> String {
        mint(&self.config, sub, roles, sites, Some(employee))
    }

    /// A caller who is a person, employee number `employee` ([`TestSuite::employee_token`]).
    pub fn employee_caller(
        &self,
        sub: &str,
        roles: &[&str],
        sites: &[&str],
        employee: &str,
    ) -> Caller {
        Caller::new(
            self.channel.clone(),
            &self.employee_token(sub, roles, sites, employee),
        )
    }

    /// Stops the suite gracefully and reports how it ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.running.stop().await
    }
}

/// Polls `check` every 50 ms until it holds, for at most 30 s (a stuck suite fails the
/// test rather than hanging it): for what arrives asynchronously (a feed's change, a lock
/// given back when a backend exits), never read once.
pub async fn until<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    for _ in 0..600 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gave up waiting: {what}");
}

/// A development token signed with `config`'s secret, valid ten minutes, for `sub` with
/// these roles and sites (`*` = trust-wide) and, for a person, an ESR employee number.
pub fn mint(
    config: &Config,
    sub: &str,
    roles: &[&str],
    sites: &[&str],
    employee: Option<&str>,
) -> String {
    mint_for(
        config,
        sub,
        roles,
        sites,
        employee,
        Duration::from_secs(600),
    )
}

/// [`mint`], valid for `ttl`.
pub fn mint_for(
    config: &Config,
    sub: &str,
    roles: &[&str],
    sites: &[&str],
    employee: Option<&str>,
    ttl: Duration,
) -> String {
    let secret = config
        .jwt
        .hs256_secret
        .as_deref()
        .expect("the configuration has a dev secret");
    let employee =
        employee.map(|e| qi_platform::EmployeeNumber::parse(e).expect("a valid employee number"));
    qi_gateway::auth::mint_dev_token_for(
        secret,
        &config.jwt,
        sub,
        &roles.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        &sites.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        employee.as_ref(),
        ttl,
    )
    .expect("a token")
}

/// Whether a server stream's item (of a method whose answer is `output`) is a change feed's
/// CHECKPOINT: the feed stays open, and a checkpoint ends its backlog.
pub fn is_checkpoint(output: &prost_reflect::MessageDescriptor, item: &[u8]) -> bool {
    output.get_field_by_name("kind").is_some()
        && prost_reflect::DynamicMessage::decode(output.clone(), item)
            .ok()
            .and_then(|m| m.get_field_by_name("kind")?.as_enum_number())
            == Some(qi_proto::common::ChangeKind::Checkpoint as i32)
}

/// A server task and the signal that stops it; dropped, it signals the stop.
#[derive(Debug)]
struct Running(Option<(oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>)>);

impl Running {
    /// Signals the stop and waits for the server to end.
    async fn stop(&mut self) -> anyhow::Result<()> {
        match self.0.take() {
            Some((stop, task)) => {
                let _ = stop.send(());
                task.await?
            }
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some((stop, _)) = self.0.take() {
            let _ = stop.send(());
        }
    }
}

/// Counts rows with a query on the database at `url`: a suite's, also once it has stopped.
pub async fn count(url: &str, sql: &str) -> i64 {
    let [(n,)] = rows(url, sql).await[..] else {
        panic!("a count is one row: {sql}");
    };
    n
}

/// The rows a query returns from the database at `url`, each a tuple of its columns.
pub async fn rows<T>(url: &str, sql: &str) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let pool = sqlx::PgPool::connect(url)
        .await
        .expect("the database accepts connections");
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(&pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    pool.close().await;
    rows
}

/// A fresh database with every schema migrated: a copy of one this process migrates once,
/// so a test pays for a `CREATE DATABASE`, not for every migration (the suite still checks
/// that nothing is pending as it starts, as on a database `qi migrate` prepared).
async fn migrated_database() -> String {
    static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    let template = TEMPLATE
        .get_or_init(|| async {
            let url = qi_test_kit::database().await.expect("a test database");
            let config = Config::from_lookup(|k| (k == "QI_DATABASE_URL").then(|| url.clone()))
                .expect("a valid migration config");
            // As `qi migrate` does: on the owner's connections alone, closed when done, so
            // no session is left on the template and no pool reports metrics.
            qi::migrate(&qi::ALL, &config)
                .await
                .expect("the template database migrates");
            url
        })
        .await;
    let options: sqlx::postgres::PgConnectOptions = template.parse().expect("a PostgreSQL URL");
    let template_name = options
        .get_database()
        .expect("the template's name")
        .to_owned();
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect_with(&options.database("postgres"))
        .await
        .expect("the test cluster accepts connections");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE \"{name}\" TEMPLATE \"{template_name}\""
    )))
    .execute(&mut admin)
    .await
    .expect("a copy of the migrated database");
    admin.close().await.expect("the admin connection closes");
    let url = template.replacen(&format!("/{template_name}?"), &format!("/{name}?"), 1);
    assert_ne!(
        &url, template,
        "the test cluster's URLs name the database before `?`"
    );
    url
}

/// One service served on its own, as `qi serve` runs it, with no gateway in front: a test
/// signs the access contexts itself, with `key`.
#[derive(Debug)]
pub struct LoneService {
    /// A channel to the service.
    pub channel: Channel,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The access-context key it trusts.
    pub key: String,
    /// Its database.
    pub database_url: String,
    running: Running,
}

impl LoneService {
    /// Migrates a fresh database for `service` and serves it on a loopback port.
    pub async fn start(service: qi::Service) -> LoneService {
        qi_platform::telemetry::init_for_tests();
        let database_url = qi_test_kit::database().await.expect("a test database");
        let key = random_secret();
        let vars = [
            ("QI_ACCESS_KEY", key.clone()),
            ("QI_DATABASE_URL", database_url.clone()),
        ];
        let config =
            Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
                .expect("a valid test config");
        let pool = qi::connect_and_migrate(
            service.into(),
            &config,
            &qi::DatabaseUrls::one(&database_url),
        )
        .await
        .expect("the service migrates");
        let component =
            qi::service_component(service, &config, pool).expect("the service component builds");
        let listener = qi_platform::server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let (stop, stopped) = oneshot::channel::<()>();
        let running = tokio::spawn(async move {
            qi_platform::server::serve(
                component,
                listener,
                &qi_platform::server::ServerSettings::from(&Config::defaults()),
                async {
                    let _ = stopped.await;
                },
            )
            .await
        });
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("a URL")
            .connect_lazy();
        LoneService {
            channel,
            addr,
            key,
            database_url,
            running: Running(Some((stop, running))),
        }
    }

    /// Counts rows with a query on the service's database.
    pub async fn count(&self, sql: &str) -> i64 {
        count(&self.database_url, sql).await
    }

    /// Stops the service gracefully and reports how it ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.running.stop().await
    }
}

/// Today in the trust (Europe/London), as the services date things.
pub fn today() -> chrono::NaiveDate {
    qi_platform::calendar::today()
}

/// A date as the contracts carry it.
pub fn date(d: chrono::NaiveDate) -> qi_proto::google::r#type::Date {
    qi_platform::convert::date(d)
}

/// The date `y`-`m`-`d`, which the caller knows to exist.
pub fn ymd(y: i32, m: u32, d: u32) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(y, m, d).expect("a real date")
}

/// A contract's date as a calendar day (a malformed one panics: tests only).
pub fn day(d: qi_proto::google::r#type::Date) -> chrono::NaiveDate {
    ymd(
        d.year,
        d.month.try_into().unwrap(),
        d.day.try_into().unwrap(),
    )
}
