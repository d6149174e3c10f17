//! A Postgres pool per service, pinned to the service's own schema through `search_path`,
//! and that service's migrations (its own migrations table inside its schema, run under
//! sqlx's advisory lock so replicas starting together migrate once). Each pool's
//! connections are reported in the OpenTelemetry database-client metrics.
//!
//! Two roles per database: the **owner** (`QI_MIGRATION_DATABASE_URL`) owns the schema,
//! migrates it and runs retention; the **runtime** role (`QI_DATABASE_URL`) serves, with
//! only the privileges each component grants it in its `RUNTIME_GRANTS` ([`grant_runtime`]).
//! One URL for both still works: that role then owns and serves.
//!
//! A call's database work begins in one place, [`begin`]: its transaction carries a
//! `statement_timeout` of what is left of the call's deadline, so PostgreSQL cancels a
//! statement still running when the call has been answered DEADLINE_EXCEEDED (dropping the
//! call's future does not stop a statement the server is already running).

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::KeyValue;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, Transaction};

use crate::Error;
use crate::config::Config;
use crate::deadline::CallDeadline;

/// Begins a transaction for the running call (reads too, so every statement is bounded).
/// Within a call ([`crate::deadline::within`]) each statement is cancelled by PostgreSQL once
/// the call's deadline has passed: the timeout is set with `BEGIN`, in the same round trip,
/// and `SET LOCAL` ends with the transaction. A statement is bounded by the time left when
/// the transaction began; [`tighten`] re-bounds the statements of a long one. Outside a call
/// (a background task) statements have no timeout.
pub async fn begin(pool: &PgPool) -> Result<Transaction<'static, Postgres>, Error> {
    let Some(deadline) = CallDeadline::current() else {
        #[expect(
            clippy::disallowed_methods,
            reason = "the one place a transaction begins"
        )]
        let tx = pool.begin().await?;
        return Ok(tx);
    };
    let ms = statement_timeout_ms(&deadline)?;
    // Dynamic: BEGIN takes no parameters, and the timeout rides on it to save a round trip;
    // the one value pushed is an integer.
    let mut begin = QueryBuilder::<Postgres>::new("BEGIN; SET LOCAL statement_timeout = ");
    begin.push(ms);
    Ok(pool.begin_with(begin.into_sql()).await?)
}

/// Bounds the transaction's statements from here on by what is left of the call's deadline
/// (for a transaction that runs long before its last statements, as an HR sync's merge).
pub async fn tighten(conn: &mut PgConnection) -> Result<(), Error> {
    if let Some(deadline) = CallDeadline::current() {
        let ms = statement_timeout_ms(&deadline)?.to_string();
        sqlx::query_scalar!("SELECT set_config('statement_timeout', $1, true)", ms)
            .fetch_one(conn)
            .await?;
    }
    Ok(())
}

/// What is left of `deadline` in whole milliseconds, rounded up so PostgreSQL never cancels
/// before the call's own deadline answers. A spent budget ends the call here: a timeout of
/// 0 would mean none to PostgreSQL.
fn statement_timeout_ms(deadline: &CallDeadline) -> Result<u128, Error> {
    let left = deadline.remaining();
    if left.is_zero() {
        return Err(Error::DeadlineExceeded {
            budget_ms: deadline.budget.as_millis(),
        });
    }
    Ok(left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128))
}

/// Connects to `url` with `search_path` set to `schema`, eagerly, retrying for up to 30 s
/// so a database that is still starting does not fail the server, but a wrong URL does.
pub async fn connect(url: &str, schema: &str, config: &Config) -> anyhow::Result<PgPool> {
    let pool_options = PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .acquire_timeout(config.db_acquire_timeout);
    let pool = connect_with(url, schema, &format!("qi-{schema}"), pool_options).await?;
    observe(&pool, schema);
    Ok(pool)
}

/// Connects as the owner role (migrations, grants, retention): two connections, enough for
/// the migrator's lock and its work, and not counted in the serving pools' metrics.
pub async fn connect_owner(url: &str, schema: &str) -> anyhow::Result<PgPool> {
    let pool_options = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(30));
    connect_with(url, schema, &format!("qi-{schema}-owner"), pool_options).await
}

async fn connect_with(
    url: &str,
    schema: &str,
    application: &str,
    pool_options: PgPoolOptions,
) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(url)
        .context("the database URL is not a PostgreSQL URL")?
        .application_name(application)
        // NOTICEs ("… already exists, skipping") are nothing a service acts on; sqlx would
        // log each at INFO. Warnings and errors still come through.
        .options([("search_path", schema), ("client_min_messages", "warning")]);
    let mut delay = Duration::from_millis(200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match pool_options.clone().connect_with(options.clone()).await {
            Ok(pool) => return Ok(pool),
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

/// Whether every migration of `migrator` is applied: a server whose role may not migrate
/// (the runtime role) then need not try. A schema or table not there yet counts as pending.
pub async fn is_migrated(pool: &PgPool, migrator: &Migrator) -> anyhow::Result<bool> {
    // Dynamic: the migrations table is the migrator's (sqlx.toml), named per service.
    let mut sql = sqlx::QueryBuilder::new("SELECT version FROM ");
    sql.push(migrator.table_name.as_ref())
        .push(" WHERE success");
    let applied: Vec<i64> = match sql.build_query_scalar().fetch_all(pool).await {
        Ok(v) => v,
        Err(e)
            if e.as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c == "42P01" || c == "3F000") =>
        {
            return Ok(false);
        }
        Err(e) => return Err(e).context("reading which migrations are applied"),
    };
    Ok(migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .all(|m| applied.contains(&m.version)))
}

/// The grants of a service that reads and writes every table of its schema: what the three
/// services' runtime roles need. `{role}` is replaced by the quoted role name. Re-running
/// them is harmless; they start from nothing, so a privilege dropped here is revoked.
pub fn read_write_grants(schema: &str) -> String {
    format!(
        "REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {{role}};
         REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {{role}};
         GRANT USAGE ON SCHEMA {schema} TO {{role}};
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {{role}};
         GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {{role}};
         REVOKE INSERT, UPDATE, DELETE ON {schema}._sqlx_migrations FROM {{role}};"
    )
}

/// As the owner (`owner`, after migrating): makes sure the runtime role `runtime_url`
/// connects as exists, and gives it exactly `grants` (SQL with `{role}` for its quoted
/// name). Nothing to do when both URLs name the same role. A missing role is created with
/// the URL's password when the owner may create roles (a development server's superuser,
/// `qi up`); otherwise the error says to create it (CloudNativePG: `spec.managed.roles`).
pub async fn grant_runtime(
    owner: &PgPool,
    schema: &str,
    grants: &str,
    runtime_url: &str,
) -> anyhow::Result<()> {
    let (role, password) = credentials(runtime_url)?;
    let owner_role = sqlx::query!(
        r#"SELECT current_user::text AS "me!", rolsuper OR rolcreaterole AS "may_create!"
           FROM pg_roles WHERE rolname = current_user"#,
    )
    .fetch_one(owner)
    .await
    .context("reading the owner role")?;
    let (me, may_create) = (owner_role.me, owner_role.may_create);
    if role == me {
        return Ok(());
    }
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AS "exists!""#,
        role,
    )
    .fetch_one(owner)
    .await?;
    if !exists {
        if !may_create {
            anyhow::bail!(
                "the runtime role {role:?} (QI_DATABASE_URL's user) does not exist, and {me:?} \
                 may not create roles: create it (CloudNativePG: spec.managed.roles) and run again"
            );
        }
        // The name and the password come from configuration and may hold any character:
        // PostgreSQL quotes them.
        let quoted = sqlx::query!(
            r#"SELECT quote_ident($1) AS "role!", quote_literal($2::text) AS password"#,
            role,
            password,
        )
        .fetch_one(owner)
        .await?;
        // Dynamic: DDL takes no parameters.
        let mut create = QueryBuilder::<Postgres>::new("CREATE ROLE ");
        create.push(&quoted.role).push(" LOGIN NOINHERIT");
        if let Some(password) = &quoted.password {
            create.push(" PASSWORD ").push(password);
        }
        match sqlx::raw_sql(create.into_sql()).execute(owner).await {
            Ok(_) => tracing::info!(role, "created the runtime role"),
            // Another process (a replica's init container) created it first.
            Err(e)
                if e.as_database_error()
                    .and_then(|d| d.code())
                    .is_some_and(|c| c == "42710" || c == "23505") => {}
            Err(e) => return Err(e).with_context(|| format!("creating the runtime role {role:?}")),
        }
    }
    let quoted = sqlx::query_scalar!(r#"SELECT quote_ident($1) AS "quoted!""#, role)
        .fetch_one(owner)
        .await?;
    let mut tx = begin(owner).await?;
    // Concurrent GRANTs on one object fail ("tuple concurrently updated"): one at a time.
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        format!("qi grants {schema}"),
    )
    .execute(&mut *tx)
    .await?;
    // Dynamic: DDL takes no parameters. The component's constant GRANTs, with the role as
    // PostgreSQL quoted it wherever they say `{role}`.
    let mut script = QueryBuilder::<Postgres>::new("");
    for (i, piece) in grants.split("{role}").enumerate() {
        if i > 0 {
            script.push(&quoted);
        }
        script.push(piece);
    }
    sqlx::raw_sql(script.into_sql())
        .execute(&mut *tx)
        .await
        .with_context(|| format!("granting {role:?} its privileges on {schema}"))?;
    tx.commit().await?;
    Ok(())
}

/// The user and password a URL connects with (percent-decoded).
fn credentials(url: &str) -> anyhow::Result<(String, Option<String>)> {
    let role = PgConnectOptions::from_str(url)
        .context("QI_DATABASE_URL is not a PostgreSQL URL")?
        .get_username()
        .to_owned();
    let parsed = url::Url::parse(url).context("QI_DATABASE_URL is not a URL")?;
    let password = parsed
        .password()
        .map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8()
                .map(|p| p.into_owned())
        })
        .transpose()
        .context("QI_DATABASE_URL's password is not UTF-8")?;
    Ok((role, password))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_statement_timeout_never_ends_before_the_call_and_a_spent_budget_ends_the_call() {
        let at = tokio::time::Instant::now() + Duration::from_micros(1_500_300);
        let deadline = CallDeadline {
            at,
            budget: Duration::from_secs(2),
        };
        let ms = statement_timeout_ms(&deadline).unwrap();
        assert!((1_400..=1_501).contains(&ms), "{ms}");
        let spent = CallDeadline {
            at: tokio::time::Instant::now(),
            budget: Duration::from_secs(2),
        };
        assert!(matches!(
            statement_timeout_ms(&spent),
            Err(Error::DeadlineExceeded { budget_ms: 2000 })
        ));
    }
}
