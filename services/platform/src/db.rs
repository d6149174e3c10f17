//! A Postgres pool per service, pinned to the service's own schema through `search_path`,
//! and that service's migrations (its own migrations table inside its schema, run under
//! sqlx's advisory lock so replicas starting together migrate once). Each pool's
//! connections are reported in the OpenTelemetry database-client metrics.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::KeyValue;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::Config;

/// Connects to `url` with `search_path` set to `schema`, eagerly, retrying for up to 30 s
/// so a database that is still starting does not fail the server, but a wrong URL does.
pub async fn connect(url: &str, schema: &str, config: &Config) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(url)
        .context("QI_DATABASE_URL is not a PostgreSQL URL")?
        .application_name(&format!("qi-{schema}"))
        .options([("search_path", schema)]);
    let pool_options = PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .acquire_timeout(config.db_acquire_timeout);
    let mut delay = Duration::from_millis(200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match pool_options.clone().connect_with(options.clone()).await {
            Ok(pool) => {
                observe(&pool, schema);
                return Ok(pool);
            }
            Err(e) if tokio::time::Instant::now() + delay < deadline && is_retryable(&e) => {
                tracing::warn!(schema, error = %e, "database not ready; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e).context(format!("connecting to the database for {schema}")),
        }
    }
}

/// Reports the pool, read at each metrics export: `db.client.connection.count` by state
/// (`idle`, `used`) and `db.client.connection.max`, named `qi-<schema>` like its
/// connections' `application_name`. An exhausted pool shows as used = max. The callbacks
/// hold a handle on the pool, which is closed explicitly when its server stops.
fn observe(pool: &PgPool, schema: &str) {
    let meter = opentelemetry::global::meter("qi");
    let name = KeyValue::new("db.client.connection.pool.name", format!("qi-{schema}"));
    let state = |s: &'static str| [name.clone(), KeyValue::new("db.client.connection.state", s)];
    let (idle, used) = (state("idle"), state("used"));
    let counted = pool.clone();
    meter
        .i64_observable_up_down_counter("db.client.connection.count")
        .with_unit("{connection}")
        .with_description("Connections the pool holds open, by state")
        .with_callback(move |o| {
            let open = i64::from(counted.size());
            let free = i64::try_from(counted.num_idle()).unwrap_or(open).min(open);
            o.observe(free, &idle);
            o.observe(open - free, &used);
        })
        .build();
    let max = i64::from(pool.options().get_max_connections());
    meter
        .i64_observable_up_down_counter("db.client.connection.max")
        .with_unit("{connection}")
        .with_description("The most connections the pool opens")
        .with_callback(move |o| o.observe(max, std::slice::from_ref(&name)))
        .build();
}

fn is_retryable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)
        || e.as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| c.starts_with("57P") || c.starts_with("08"))
}

/// Runs a service's migrations (the migrator creates the schema and its migrations table).
pub async fn migrate(pool: &PgPool, migrator: &Migrator) -> anyhow::Result<()> {
    migrator
        .run(pool)
        .await
        .context("running database migrations")
}
