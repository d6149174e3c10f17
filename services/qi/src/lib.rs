//! How the `qi` binary wires the suite: one component per process (`qi serve`, for
//! Kubernetes) or all of them in one process (`qi up`, for a laptop), the same code either
//! way. In `qi up` the gateway still calls the services over real gRPC on loopback.
#![forbid(unsafe_code)]

pub mod bench;
pub mod demo;
pub mod hr;
pub mod secrets;
pub mod seed;
pub mod suite;

use std::future::Future;

use anyhow::Context as _;
use qi_platform::access::AccessVerifier;
use qi_platform::server::{Component, ServerSettings};
use qi_platform::{Config, db};

/// One component of the suite, as `qi serve` and `qi migrate` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// The public entry point.
    Gateway,
    /// Courses, cohorts and training records.
    Training,
    /// Sites, ideas, projects and programmes.
    Projects,
    /// Metrics, measurements and SPC.
    Metrics,
}

/// The three services, in migration order.
pub const SERVICES: [Role; 3] = [Role::Training, Role::Projects, Role::Metrics];

/// Every component that owns a schema (the gateway keeps its audit trail).
pub const ALL: [Role; 4] = [Role::Training, Role::Projects, Role::Metrics, Role::Gateway];

impl Role {
    /// The name used in logs and commands.
    pub fn name(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Training => "training",
            Role::Projects => "projects",
            Role::Metrics => "metrics",
        }
    }

    fn schema_and_migrator(self) -> Option<(&'static str, &'static sqlx::migrate::Migrator)> {
        match self {
            Role::Gateway => Some((qi_gateway::SCHEMA, &qi_gateway::MIGRATOR)),
            Role::Training => Some((qi_training::SCHEMA, &qi_training::MIGRATOR)),
            Role::Projects => Some((qi_projects::SCHEMA, &qi_projects::MIGRATOR)),
            Role::Metrics => Some((qi_metrics::SCHEMA, &qi_metrics::MIGRATOR)),
        }
    }
}

/// Connects a service's pool (search_path on its schema) and runs its migrations.
pub async fn connect_and_migrate(
    role: Role,
    config: &Config,
    url: &str,
) -> anyhow::Result<sqlx::PgPool> {
    let (schema, migrator) = role
        .schema_and_migrator()
        .with_context(|| format!("{} has no database", role.name()))?;
    let pool = db::connect(url, schema, config).await?;
    db::migrate(&pool, migrator)
        .await
        .with_context(|| format!("migrating {schema}"))?;
    Ok(pool)
}

/// Builds a service component over a migrated pool.
pub fn service_component(
    role: Role,
    config: &Config,
    pool: sqlx::PgPool,
) -> anyhow::Result<Component> {
    let key = config.access_keys.current.as_deref().context(
        "QI_ACCESS_KEY is required: the key that verifies the gateway's access contexts",
    )?;
    let verifier = std::sync::Arc::new(AccessVerifier::new(
        key,
        config.access_keys.previous.as_deref(),
    ));
    let routes = tonic::service::Routes::default();
    let (routes, name) = match role {
        Role::Training => (
            routes.add_service(qi_training::TrainingApi::new(pool, &config.sites).into_server()),
            qi_training::SERVICE_NAME,
        ),
        Role::Projects => (
            routes.add_service(qi_projects::ProjectsApi::new(pool, &config.sites).into_server()),
            qi_projects::SERVICE_NAME,
        ),
        Role::Metrics => (
            routes.add_service(qi_metrics::MetricsApi::new(pool, &config.sites).into_server()),
            qi_metrics::SERVICE_NAME,
        ),
        Role::Gateway => anyhow::bail!("the gateway is not a service component"),
    };
    Ok(Component {
        name: role.name(),
        routes,
        service_names: vec![name],
        access: Some(verifier),
        grpc_web: false,
        health_watch: None,
    })
}

/// `qi serve ROLE`: one component on `config.listen`, until `shutdown`.
pub async fn serve(
    role: Role,
    config: &Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let url = config.database_url.as_deref().context(
        "QI_DATABASE_URL is required for `qi serve` (only `qi up` starts its own PostgreSQL)",
    )?;
    let pool = connect_and_migrate(role, config, url).await?;
    let (component, audit) = match role {
        Role::Gateway => {
            let (c, writer) = qi_gateway::component(
                config,
                &qi_gateway::configured_backends(config),
                pool.clone(),
            )?;
            (c, Some(writer))
        }
        service @ (Role::Training | Role::Projects | Role::Metrics) => {
            (service_component(service, config, pool.clone())?, None)
        }
    };
    let listener = qi_platform::server::bind(config.listen).await?;
    let served =
        qi_platform::server::serve(component, listener, &ServerSettings::from(config), shutdown)
            .await;
    // The server has finished its calls: flush the audit trail, then close the pool.
    if let Some(writer) = audit {
        writer.shutdown().await;
    }
    close_pools(std::slice::from_ref(&pool)).await;
    served
}

/// `qi migrate ROLE|all`: runs migrations and returns.
pub async fn migrate(roles: &[Role], config: &Config) -> anyhow::Result<()> {
    let url = config
        .database_url
        .as_deref()
        .context("QI_DATABASE_URL is required for `qi migrate`")?;
    for role in roles {
        let pool = connect_and_migrate(*role, config, url).await?;
        pool.close().await;
        tracing::info!(component = role.name(), "migrated");
    }
    Ok(())
}

/// Closes pools at shutdown, waiting at most a second for connections still in use: a
/// database that hangs must not hold the process.
pub(crate) async fn close_pools(pools: &[sqlx::PgPool]) {
    let all = async {
        for pool in pools {
            pool.close().await;
        }
    };
    if tokio::time::timeout(std::time::Duration::from_secs(1), all)
        .await
        .is_err()
    {
        tracing::warn!("database connections still busy at shutdown were abandoned");
    }
}
