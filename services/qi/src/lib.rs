//! How the `qi` binary wires the suite: one component per process (`qi serve`, for
//! Kubernetes) or all of them in one process (`qi up`, for a laptop), the same code either
//! way. In `qi up` the gateway still calls the services over real gRPC on loopback.
#![forbid(unsafe_code)]

pub mod bench;
pub mod demo;
pub mod export;
pub mod hr;
pub mod hr_completions;
pub mod hr_export;
pub mod hr_map;
pub mod hr_reconcile;
pub mod secrets;
pub mod seed;
pub mod suite;
pub mod watch;

use std::future::Future;

use anyhow::Context as _;
use qi_platform::access::AccessVerifier;
use qi_platform::changes::{Feed, FeedSettings};
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
    /// The read model: answers that span the services, fed by their change feeds.
    Insights,
}

/// One of the three services behind the gateway: what [`service_component`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Courses, cohorts and training records.
    Training,
    /// Sites, ideas, projects and programmes.
    Projects,
    /// Metrics, measurements and SPC.
    Metrics,
}

impl From<Service> for Role {
    fn from(service: Service) -> Role {
        match service {
            Service::Training => Role::Training,
            Service::Projects => Role::Projects,
            Service::Metrics => Role::Metrics,
        }
    }
}

/// The three services, in migration order.
pub const SERVICES: [Service; 3] = [Service::Training, Service::Projects, Service::Metrics];

/// Every component that owns a schema (the gateway keeps its audit trail).
pub const ALL: [Role; 5] = [
    Role::Training,
    Role::Projects,
    Role::Metrics,
    Role::Insights,
    Role::Gateway,
];

impl Role {
    /// The name used in logs and commands.
    pub fn name(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Training => "training",
            Role::Projects => "projects",
            Role::Metrics => "metrics",
            Role::Insights => "insights",
        }
    }

    /// The service this component is, or `None` for the gateway and the read model.
    pub fn service(self) -> Option<Service> {
        match self {
            Role::Gateway | Role::Insights => None,
            Role::Training => Some(Service::Training),
            Role::Projects => Some(Service::Projects),
            Role::Metrics => Some(Service::Metrics),
        }
    }

    /// What this component's runtime role is granted (`{role}` for its name).
    fn runtime_grants(self) -> String {
        match self {
            Role::Gateway => qi_gateway::RUNTIME_GRANTS.to_owned(),
            Role::Training => db::read_write_grants(qi_training::SCHEMA),
            Role::Projects => db::read_write_grants(qi_projects::SCHEMA),
            Role::Metrics => db::read_write_grants(qi_metrics::SCHEMA),
            Role::Insights => db::read_write_grants(qi_insights::SCHEMA),
        }
    }

    fn schema_and_migrator(self) -> (&'static str, &'static sqlx::migrate::Migrator) {
        match self {
            Role::Gateway => (qi_gateway::SCHEMA, &qi_gateway::MIGRATOR),
            Role::Training => (qi_training::SCHEMA, &qi_training::MIGRATOR),
            Role::Projects => (qi_projects::SCHEMA, &qi_projects::MIGRATOR),
            Role::Metrics => (qi_metrics::SCHEMA, &qi_metrics::MIGRATOR),
            Role::Insights => (qi_insights::SCHEMA, &qi_insights::MIGRATOR),
        }
    }
}

/// Where a component's database is: the URL it serves with (the runtime role) and the one
/// it migrates with (the owner). The same URL twice is one role doing both.
#[derive(Debug, Clone)]
pub struct DatabaseUrls {
    /// The runtime role's URL (`QI_DATABASE_URL`).
    pub runtime: String,
    /// The owner's URL (`QI_MIGRATION_DATABASE_URL`, else `QI_DATABASE_URL`).
    pub owner: String,
}

impl DatabaseUrls {
    /// One role that both owns and serves.
    pub fn one(url: &str) -> Self {
        DatabaseUrls {
            runtime: url.to_owned(),
            owner: url.to_owned(),
        }
    }

    /// From configuration; `None` without `QI_DATABASE_URL`.
    pub fn configured(config: &Config) -> Option<Self> {
        let runtime = config.database_url.clone()?;
        let owner = config
            .owner_database_url()
            .map_or_else(|| runtime.clone(), str::to_owned);
        Some(DatabaseUrls { runtime, owner })
    }
}

/// Brings a component's schema up to date and returns its serving pool (search_path on its
/// schema). With an owner URL of its own, migrates as the owner and grants the runtime role
/// what serving needs; with one URL, migrates only if something is pending, so a runtime
/// role that may not migrate still starts once `qi migrate` has run.
pub async fn connect_and_migrate(
    role: Role,
    config: &Config,
    urls: &DatabaseUrls,
) -> anyhow::Result<sqlx::PgPool> {
    let (schema, migrator) = role.schema_and_migrator();
    if urls.owner != urls.runtime {
        migrate_as_owner(role, &urls.owner, Some(&urls.runtime)).await?;
        return db::connect(&urls.runtime, schema, config).await;
    }
    let pool = db::connect(&urls.runtime, schema, config).await?;
    if !db::is_migrated(&pool, migrator).await? {
        db::migrate(&pool, migrator).await.with_context(|| {
            format!(
                "migrating {schema} (if this role may not, run `qi migrate {}` with the owner's \
                 QI_MIGRATION_DATABASE_URL first)",
                role.name()
            )
        })?;
    }
    Ok(pool)
}

/// As the owner: runs `role`'s migrations and, given the runtime role's URL, creates that
/// role if needed and grants it exactly what serving needs.
async fn migrate_as_owner(role: Role, owner: &str, runtime: Option<&str>) -> anyhow::Result<()> {
    let (schema, migrator) = role.schema_and_migrator();
    let pool = db::connect_owner(owner, schema).await?;
    let done = async {
        db::migrate(&pool, migrator)
            .await
            .with_context(|| format!("migrating {schema}"))?;
        if let Some(runtime) = runtime {
            db::grant_runtime(&pool, schema, &role.runtime_grants(), runtime).await?;
        }
        anyhow::Ok(())
    }
    .await;
    pool.close().await;
    done
}

/// Builds a service component over a migrated pool.
pub fn service_component(
    service: Service,
    config: &Config,
    pool: sqlx::PgPool,
) -> anyhow::Result<Component> {
    let verifier = verifier(config)?;
    let feed = Feed::new(pool.clone(), FeedSettings::from(config));
    let routes = tonic::service::Routes::default();
    let (routes, name) = match service {
        Service::Training => (
            routes.add_service(
                qi_training::TrainingApi::new(pool, &config.sites)
                    .with_feed(feed.clone())
                    .into_server(),
            ),
            qi_training::SERVICE_NAME,
        ),
        Service::Projects => (
            routes.add_service(
                qi_projects::ProjectsApi::new(pool, &config.sites)
                    .with_idea_review_days(config.idea_review_days)
                    .with_feed(feed.clone())
                    .into_server(),
            ),
            qi_projects::SERVICE_NAME,
        ),
        Service::Metrics => (
            routes.add_service(
                qi_metrics::MetricsApi::new(pool, &config.sites)
                    .with_run_chart_below_points(config.run_chart_below_points)
                    .with_feed(feed.clone())
                    .into_server(),
            ),
            qi_metrics::SERVICE_NAME,
        ),
    };
    Ok(Component {
        name: Role::from(service).name(),
        routes,
        service_names: vec![name],
        access: Some(verifier),
        grpc_web: false,
        health_watch: None,
        feed: Some(feed),
    })
}

/// What verifies the gateway's access contexts (`QI_ACCESS_KEY`, and the previous key).
fn verifier(config: &Config) -> anyhow::Result<std::sync::Arc<AccessVerifier>> {
    let key = config.access_keys.current.as_deref().context(
        "QI_ACCESS_KEY is required: the key that verifies the gateway's access contexts",
    )?;
    Ok(std::sync::Arc::new(
        AccessVerifier::new(key, config.access_keys.previous.as_deref())
            .with_employee_claim(&config.jwt.employee_claim),
    ))
}

/// Builds the read model's component over a migrated pool: its answers, behind the same
/// access contexts as the services.
pub fn insights_component(config: &Config, pool: sqlx::PgPool) -> anyhow::Result<Component> {
    Ok(Component {
        name: Role::Insights.name(),
        routes: tonic::service::Routes::default()
            .add_service(qi_insights::InsightsApi::new(pool, &config.sites).into_server()),
        service_names: vec![qi_insights::SERVICE_NAME],
        access: Some(verifier(config)?),
        grpc_web: false,
        health_watch: None,
        feed: None,
    })
}

/// The read model's intake over a migrated pool, following each service at its URL in
/// `urls` (by gRPC service name) and signing as `internal:insights` with `QI_ACCESS_KEY`.
pub fn insights_intake(
    config: &Config,
    pool: sqlx::PgPool,
    urls: &std::collections::HashMap<&'static str, String>,
) -> anyhow::Result<qi_insights::intake::Intake> {
    use qi_insights::intake::{Service as Fed, Source};
    let key =
        config.access_keys.current.as_deref().context(
            "QI_ACCESS_KEY is required: the read model signs its feeds' contexts with it",
        )?;
    let sources = [
        (Fed::Training, qi_training::SERVICE_NAME),
        (Fed::Projects, qi_projects::SERVICE_NAME),
        (Fed::Metrics, qi_metrics::SERVICE_NAME),
    ]
    .into_iter()
    .map(|(service, name)| {
        let url = urls
            .get(name)
            .with_context(|| format!("no URL for {name}, whose feed the read model follows"))?;
        Ok(Source {
            service,
            url: url.clone(),
        })
    })
    .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(qi_insights::intake::Intake::new(
        pool,
        key,
        Role::Insights.name(),
        sources,
    ))
}

/// The projects service's follower of the training service's feed: where each person works
/// now, and who has left (the HR sync's), for the projects whose lead is gone.
pub fn projects_places(
    config: &Config,
    pool: sqlx::PgPool,
    urls: &std::collections::HashMap<&'static str, String>,
) -> anyhow::Result<qi_platform::follow::Follower<qi_projects::people::Places>> {
    let key = config.access_keys.current.as_deref().context(
        "QI_ACCESS_KEY is required: the projects service signs its feed's contexts with it",
    )?;
    let url = urls.get(qi_training::SERVICE_NAME).with_context(|| {
        format!(
            "no URL for {}, whose feed the projects service follows",
            qi_training::SERVICE_NAME
        )
    })?;
    Ok(qi_projects::people::follower(
        pool,
        key,
        Role::Projects.name(),
        url,
    ))
}

/// `qi insights rebuild`: the read model's schema migrated (as the owner, like `qi
/// migrate insights`), then dropped and built again from the services at their configured
/// URLs. A running intake picks up from the rebuild's cursors by itself.
pub async fn insights_rebuild(config: &Config) -> anyhow::Result<qi_insights::rebuild::Rebuilt> {
    let urls = DatabaseUrls::configured(config).context(
        "QI_DATABASE_URL is required for `qi insights rebuild`: the read model's database",
    )?;
    let pool = connect_and_migrate(Role::Insights, config, &urls).await?;
    let rebuilt = async {
        insights_intake(
            config,
            pool.clone(),
            &qi_gateway::configured_backends(config),
        )?
        .rebuild()
        .await
    }
    .await;
    close_pools(std::slice::from_ref(&pool)).await;
    rebuilt
}

/// `qi serve ROLE`: one component on `config.listen`, until `shutdown`.
pub async fn serve(
    role: Role,
    config: &Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let urls = DatabaseUrls::configured(config).context(
        "QI_DATABASE_URL is required for `qi serve` (only `qi up` starts its own PostgreSQL)",
    )?;
    let pool = connect_and_migrate(role, config, &urls).await?;
    let purging = role.service().is_some().then(|| {
        let mut purging = tokio::task::JoinSet::new();
        purging.spawn(qi_platform::idempotency::purge_periodically(
            pool.clone(),
            config.idempotency_purge_interval,
        ));
        purging.spawn(qi_platform::changes::purge_periodically(
            pool.clone(),
            config.idempotency_purge_interval,
            FeedSettings::from(config).retention,
        ));
        purging
    });
    // The read model, and the projects service, consume feeds beside serving, and stop with
    // the server.
    let (intake_stop, intake_stopping) = tokio::sync::watch::channel(false);
    let mut intake = None;
    let (component, audit) = match (role, role.service()) {
        (Role::Projects, Some(service)) => {
            // The projects service learns of leavers and movers from the training feed.
            let places = projects_places(
                config,
                pool.clone(),
                &qi_gateway::configured_backends(config),
            )?;
            intake = Some(tokio::spawn(places.run(intake_stopping)));
            (service_component(service, config, pool.clone())?, None)
        }
        (_, Some(service)) => (service_component(service, config, pool.clone())?, None),
        (Role::Insights, None) => {
            let consumer = insights_intake(
                config,
                pool.clone(),
                &qi_gateway::configured_backends(config),
            )?;
            intake = Some(tokio::spawn(consumer.run(intake_stopping)));
            (insights_component(config, pool.clone())?, None)
        }
        (_, None) => {
            let (c, writer) = qi_gateway::component(
                config,
                &qi_gateway::configured_backends(config),
                pool.clone(),
            )?;
            (c, Some(writer))
        }
    };
    let listener = qi_platform::server::bind(config.listen).await?;
    let served =
        qi_platform::server::serve(component, listener, &ServerSettings::from(config), shutdown)
            .await;
    // The server has finished its calls: stop consuming, flush the audit trail, then close
    // the pool.
    intake_stop.send_replace(true);
    if let Some(intake) = intake {
        // Bounded: a database that hangs must not hold the process.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), intake).await;
    }
    if let Some(mut purging) = purging {
        purging.abort_all();
    }
    if let Some(writer) = audit {
        writer.shutdown().await;
    }
    close_pools(std::slice::from_ref(&pool)).await;
    served
}

/// `qi migrate ROLE|all`: runs migrations as the owner and, when `QI_DATABASE_URL` names
/// another role, grants that runtime role what serving needs; then returns.
pub async fn migrate(roles: &[Role], config: &Config) -> anyhow::Result<()> {
    let owner = config
        .owner_database_url()
        .context("QI_MIGRATION_DATABASE_URL (or QI_DATABASE_URL) is required for `qi migrate`")?;
    for role in roles {
        migrate_as_owner(*role, owner, config.database_url.as_deref()).await?;
        tracing::info!(component = role.name(), "migrated");
    }
    Ok(())
}

/// `qi maintain`: one run of the audit trail's retention, as the owner (see
/// [`qi_gateway::retention`]). Safe to run from several places at once.
pub async fn maintain(config: &Config) -> anyhow::Result<()> {
    let owner = config
        .owner_database_url()
        .context("QI_MIGRATION_DATABASE_URL (or QI_DATABASE_URL) is required for `qi maintain`")?;
    let pool = db::connect_owner(owner, qi_gateway::SCHEMA).await?;
    let done = async {
        if !db::is_migrated(&pool, &qi_gateway::MIGRATOR).await? {
            anyhow::bail!("the gateway's schema is not migrated: run `qi migrate gateway` first");
        }
        maintain_once(&pool, config).await
    }
    .await;
    pool.close().await;
    done
}

/// One retention run over the owner's gateway pool, logged.
async fn maintain_once(pool: &sqlx::PgPool, config: &Config) -> anyhow::Result<()> {
    let report =
        qi_gateway::retention::maintain(pool, config.audit_retention_days, chrono::Utc::now())
            .await
            .context("audit retention")?;
    match report {
        Some(r) => tracing::info!(
            created = ?r.created,
            dropped = ?r.dropped,
            moved = r.moved,
            deleted = r.deleted,
            retention_days = config.audit_retention_days,
            "audit retention done"
        ),
        None => tracing::info!("audit retention: another run holds the lock; nothing to do"),
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
