//! What the suite's tests share, as a dev-dependency: a throwaway PostgreSQL cluster per test
//! process (started on first use, deleted when the process exits) handing each test a fresh
//! database, and a pool on one with a component's schema migrated, for store tests.
#![forbid(unsafe_code)]

use std::sync::OnceLock;

use anyhow::{Context as _, bail};
use qi_platform::pg::{Durability, PrivateCluster};

static CLUSTER: OnceLock<Result<PrivateCluster, String>> = OnceLock::new();

/// A fresh, empty database on this test process's throwaway cluster. Returns its URL.
pub async fn database() -> anyhow::Result<String> {
    tokio::task::spawn_blocking(|| {
        CLUSTER.get_or_init(|| {
            let dir = tempfile::Builder::new()
                .prefix("qi-test-")
                .tempdir_in("/tmp")
                .map_err(|e| e.to_string())?
                .keep();
            PrivateCluster::start(&dir, Durability::Throwaway).map_err(|e| format!("{e:#}"))
        });
    })
    .await
    .context("starting the test cluster")?;
    let cluster = match CLUSTER.get() {
        Some(Ok(c)) => c,
        Some(Err(e)) => bail!("the test cluster did not start: {e}"),
        None => bail!("the test cluster did not start"),
    };
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    cluster.create_database(&name).await
}

/// For fault tests: restarts this process's test cluster.
pub fn restart_cluster() -> anyhow::Result<()> {
    match CLUSTER.get() {
        Some(Ok(c)) => c.restart(),
        _ => bail!("no test cluster is running"),
    }
}

/// For a service's store tests: a pool on a fresh database with `schema` migrated by
/// `migrator`, its `search_path` set to the schema as the service's own pool has it.
pub async fn migrated(
    schema: &str,
    migrator: &'static sqlx::migrate::Migrator,
) -> anyhow::Result<sqlx::PgPool> {
    let url = database().await?;
    let pool = qi_platform::db::connect_owner(&url, schema).await?;
    qi_platform::db::migrate(&pool, migrator).await?;
    Ok(pool)
}

/// For a service's store tests: a transaction on a fresh [`migrated`] database, begun as a
/// call's is (`qi_platform::db::begin`).
pub async fn transaction(
    schema: &str,
    migrator: &'static sqlx::migrate::Migrator,
) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    Ok(qi_platform::db::begin(&migrated(schema, migrator).await?).await?)
}

/// The date `s` (`YYYY-MM-DD`) of test data.
pub fn day(s: &str) -> chrono::NaiveDate {
    s.parse().expect("a date")
}

/// The owner of a site `code`'s resources.
pub fn site(code: &str) -> qi_platform::names::Owner {
    qi_platform::names::Owner::Site(qi_platform::SiteCode::parse(code).expect("a site code"))
}
