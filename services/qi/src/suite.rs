//! `qi up`: the three services and the gateway in one process, each on its own loopback
//! listener, the gateway calling the services over real gRPC exactly as in Kubernetes.
//! With no `QI_DATABASE_URL` it runs a private PostgreSQL under the data folder.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use qi_platform::Config;
use qi_platform::changes::FeedSettings;
use qi_platform::pg::{Durability, PrivateCluster};
use qi_platform::server::{self, Component, ServerSettings};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::{DatabaseUrls, Role, SERVICES, connect_and_migrate, service_component};

/// A built suite: bound, connected and migrated, not yet serving.
pub struct Suite {
    cluster: Option<Arc<Mutex<PrivateCluster>>>,
    gateway: (Component, TcpListener),
    audit: qi_gateway::audit::AuditWriter,
    services: Vec<(Component, TcpListener)>,
    /// The read model's consumer of the services' feeds (its answers are among `services`).
    intake: qi_insights::intake::Intake,
    /// The projects service's follower of the training feed (leavers and movers).
    places: qi_platform::follow::Follower<qi_projects::people::Places>,
    pools: Vec<sqlx::PgPool>,
    /// The owner's pool on the gateway schema, for the audit retention `qi up` runs itself.
    maintenance: sqlx::PgPool,
    settings: ServerSettings,
    maintenance_interval: Duration,
    purge_interval: Duration,
    /// How long the services keep their change feeds.
    changes_retention: Duration,
    retention_days: u32,
    gateway_addr: SocketAddr,
    /// Each gRPC service's own URL on loopback, by its full name.
    service_urls: HashMap<&'static str, String>,
}

impl std::fmt::Debug for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suite")
            .field("gateway_addr", &self.gateway_addr)
            .field("private_cluster", &self.cluster.is_some())
            .finish_non_exhaustive()
    }
}

impl Suite {
    /// Starts the database (if private), migrates every schema, and binds every listener.
    /// `config` must carry its secrets (see [`crate::secrets::ensure_dev_secrets`]).
    pub async fn build(config: &Config) -> anyhow::Result<Suite> {
        // Bind the public address first: a taken port fails before anything starts.
        let gateway_listener = server::bind(config.listen).await?;
        // Each component serves as its own runtime role; the owner migrates. On the private
        // cluster that is its superuser `qi` (which owns every schema, as before roles were
        // split) and one role per component, `qi_<component>`, created here.
        let configured = DatabaseUrls::configured(config);
        let cluster = match &configured {
            Some(_) => None,
            None => {
                let dir = config.data_dir.join("pg");
                tracing::info!(dir = %dir.display(), "starting the private PostgreSQL");
                let cluster = tokio::task::spawn_blocking(move || {
                    PrivateCluster::start(&dir, Durability::Durable)
                })
                .await
                .context("starting the private PostgreSQL")??;
                let owner = cluster.create_database("qi").await?;
                Some((Arc::new(Mutex::new(cluster)), owner))
            }
        };
        let urls_of = |role: Role| match (&configured, &cluster) {
            (Some(urls), _) => urls.clone(),
            (None, Some((c, owner))) => DatabaseUrls {
                runtime: locked(c).url_as(&format!("qi_{}", role.name()), "qi"),
                owner: owner.clone(),
            },
            (None, None) => unreachable!("a private cluster runs when no URL is configured"),
        };
        let [t, p, m, i, g] = [
            Role::Training,
            Role::Projects,
            Role::Metrics,
            Role::Insights,
            Role::Gateway,
        ]
        .map(urls_of);
        let (training, projects, metrics, insights, gateway_pool) = tokio::try_join!(
            connect_and_migrate(Role::Training, config, &t),
            connect_and_migrate(Role::Projects, config, &p),
            connect_and_migrate(Role::Metrics, config, &m),
            connect_and_migrate(Role::Insights, config, &i),
            connect_and_migrate(Role::Gateway, config, &g),
        )?;
        let maintenance = qi_platform::db::connect_owner(&g.owner, qi_gateway::SCHEMA).await?;
        let cluster = cluster.map(|(c, _)| c);
        // The services' pools first, in SERVICES' order (their housekeeping takes them so).
        let pools = vec![
            training,
            projects,
            metrics,
            gateway_pool.clone(),
            insights.clone(),
        ];
        let mut services = Vec::new();
        let mut backends = HashMap::new();
        for (service, pool) in SERVICES.into_iter().zip(&pools) {
            let component = service_component(service, config, pool.clone())?;
            let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
            let addr = listener.local_addr()?;
            for name in &component.service_names {
                backends.insert(*name, format!("http://{addr}"));
            }
            services.push((component, listener));
        }
        // The projects service follows the training feed; the read model follows every
        // service's, and answers behind the gateway.
        let places = crate::projects_places(config, pools[1].clone(), &backends)?;
        let intake = crate::insights_intake(config, insights.clone(), &backends)?;
        let component = crate::insights_component(config, insights)?;
        let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        backends.insert(
            qi_insights::SERVICE_NAME,
            format!("http://{}", listener.local_addr()?),
        );
        services.push((component, listener));
        let (gateway, audit) = qi_gateway::component(config, &backends, gateway_pool)?;
        let service_urls = backends.clone();
        let gateway_addr = gateway_listener.local_addr()?;
        Ok(Suite {
            cluster,
            gateway: (gateway, gateway_listener),
            audit,
            services,
            intake,
            places,
            pools,
            maintenance,
            settings: ServerSettings::from(config),
            maintenance_interval: config.maintenance_interval,
            purge_interval: config.idempotency_purge_interval,
            changes_retention: FeedSettings::from(config).retention,
            retention_days: config.audit_retention_days,
            gateway_addr,
            service_urls,
        })
    }

    /// Where the gateway listens.
    pub fn gateway_addr(&self) -> SocketAddr {
        self.gateway_addr
    }

    /// Each gRPC service's own URL on loopback (e.g. `qi.training.v1.TrainingService` →
    /// `http://127.0.0.1:41234`), for internal consumers that call a service directly.
    pub fn service_urls(&self) -> HashMap<&'static str, String> {
        self.service_urls.clone()
    }

    /// Serves until `shutdown`: then the gateway drains first, the services after it (so
    /// calls in flight through the gateway can finish), and the private database stops last.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Suite {
            cluster,
            gateway,
            audit,
            services,
            intake,
            places,
            pools,
            maintenance,
            settings,
            maintenance_interval,
            purge_interval,
            changes_retention,
            retention_days,
            ..
        } = self;
        // Housekeeping while serving, stopped with the suite: expired request ids in each
        // service, and the audit trail's retention (in Kubernetes a CronJob runs it).
        let mut housekeeping = tokio::task::JoinSet::new();
        for pool in pools.iter().take(SERVICES.len()) {
            housekeeping.spawn(qi_platform::idempotency::purge_periodically(
                pool.clone(),
                purge_interval,
            ));
            housekeeping.spawn(qi_platform::changes::purge_periodically(
                pool.clone(),
                purge_interval,
                changes_retention,
            ));
        }
        housekeeping.spawn(maintain_periodically(
            maintenance.clone(),
            retention_days,
            maintenance_interval,
        ));
        let (intake_stop, intake_stopping) = watch::channel(false);
        let mut consuming = tokio::task::JoinSet::new();
        consuming.spawn(intake.run(intake_stopping.clone()));
        consuming.spawn(places.run(intake_stopping));
        let (services_stop, services_stopping) = watch::channel(false);
        let mut running = tokio::task::JoinSet::new();
        // In-process services need no drain delay of their own, and little grace: they
        // stop after the gateway, which has finished or cut every call it sent them.
        let service_settings = ServerSettings {
            drain_delay: Duration::ZERO,
            shutdown_grace: SERVICES_GRACE.min(settings.shutdown_grace),
            ..settings.clone()
        };
        // The services' feeds end as the suite starts to stop, before the gateway drains: a
        // feed never ends by itself, and the gateway would wait out its grace for one.
        let feeds: Vec<_> = services
            .iter()
            .filter_map(|(c, _)| c.feed.clone())
            .collect();
        for (component, listener) in services {
            let mut stop = services_stopping.clone();
            let settings = service_settings.clone();
            running.spawn(async move {
                server::serve(component, listener, &settings, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
            });
        }
        let (gateway_stop, mut gateway_stopping) = watch::channel(false);
        let gateway_run = server::serve(gateway.0, gateway.1, &settings, async move {
            let _ = gateway_stopping.wait_for(|s| *s).await;
        });
        tokio::pin!(gateway_run);
        tokio::pin!(shutdown);
        let watched = cluster.clone();
        let supervising = async move {
            match watched {
                Some(c) => supervise(c).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(supervising);
        let outcome = tokio::select! {
            res = &mut gateway_run => res.context("the gateway stopped unexpectedly").and(Err(anyhow::anyhow!("the gateway stopped"))),
            Some(res) = running.join_next() => match res {
                Ok(Ok(())) => Err(anyhow::anyhow!("a service stopped unexpectedly")),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(e.into()),
            },
            Err(e) = &mut supervising => {
                let _ = gateway_stop.send(true);
                let _ = gateway_run.await;
                Err(e)
            }
            () = &mut shutdown => {
                // The feeds' consumers stop before the feeds they follow end.
                intake_stop.send_replace(true);
                for feed in &feeds {
                    feed.stop();
                }
                let _ = gateway_stop.send(true);
                gateway_run.await
            }
        };
        // The gateway has finished its calls: flush its audit trail (bounded) while the
        // services stop.
        let _ = services_stop.send(true);
        let services_stopped = async {
            while let Some(res) = running.join_next().await {
                if let Ok(Err(e)) = res {
                    tracing::error!(error = %e, "a service failed while stopping");
                }
            }
        };
        housekeeping.abort_all();
        intake_stop.send_replace(true);
        // Bounded: a database that hangs must not hold the suite.
        let intake_stopped = tokio::time::timeout(Duration::from_secs(5), consuming.join_all());
        let _ = tokio::join!(audit.shutdown(), services_stopped, intake_stopped);
        crate::close_pools(&pools).await;
        crate::close_pools(std::slice::from_ref(&maintenance)).await;
        if let Some(c) = cluster {
            let stopped = tokio::task::spawn_blocking(move || locked(&c).stop())
                .await
                .context("stopping the private PostgreSQL")
                .and_then(|r| r);
            if let Err(e) = stopped {
                // The first failure is the one to report.
                if outcome.is_ok() {
                    return Err(e);
                }
                tracing::warn!(error = %format!("{e:#}"), "stopping the private PostgreSQL");
            }
        }
        outcome
    }
}

/// Runs the audit retention every `interval` (the first run at once). A failed run is
/// logged; the next one does the work.
async fn maintain_periodically(pool: sqlx::PgPool, retention_days: u32, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match qi_gateway::retention::maintain(&pool, retention_days, chrono::Utc::now()).await {
            Ok(Some(r)) if r != qi_gateway::retention::Report::default() => {
                tracing::info!(created = ?r.created, dropped = ?r.dropped, moved = r.moved,
                    deleted = r.deleted, "audit retention done");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "audit retention failed; retrying later")
            }
        }
    }
}

/// The grace of the in-process services, after the gateway's own.
const SERVICES_GRACE: Duration = Duration::from_secs(2);

/// Consecutive failed restarts of the private cluster before `qi up` gives up.
const RESTARTS: u32 = 5;
/// The wait between two restart attempts (the dead server's backends must exit first).
const RESTART_WAIT: Duration = Duration::from_secs(2);

fn locked(c: &Mutex<PrivateCluster>) -> MutexGuard<'_, PrivateCluster> {
    // A panic while holding it leaves the cluster as it was: still usable.
    c.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Watches the private cluster every second. If its postmaster dies (killed, out of memory),
/// starts it again on the same data, where PostgreSQL's crash recovery brings back every
/// committed write; the pools reconnect by themselves. After [`RESTARTS`] failed attempts in
/// a row it returns the error, which stops `qi up` with a non-zero status.
async fn supervise(cluster: Arc<Mutex<PrivateCluster>>) -> anyhow::Result<()> {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if locked(&cluster).is_running() {
            continue;
        }
        tracing::error!(
            "the private PostgreSQL stopped unexpectedly: restarting it on the same data \
             (crash recovery); calls needing the database answer UNAVAILABLE meanwhile"
        );
        for attempt in 1..=RESTARTS {
            let c = cluster.clone();
            let restarted = tokio::task::spawn_blocking(move || locked(&c).restart_after_crash())
                .await
                .context("restarting the private PostgreSQL")?;
            match restarted {
                Ok(()) => {
                    tracing::info!(attempt, "the private PostgreSQL is running again");
                    break;
                }
                Err(e) if attempt < RESTARTS => {
                    tracing::warn!(attempt, error = %format!("{e:#}"), "restarting the private PostgreSQL failed; trying again");
                    tokio::time::sleep(RESTART_WAIT).await;
                }
                Err(e) => {
                    return Err(e.context(format!(
                        "the private PostgreSQL died and could not be restarted ({RESTARTS} attempts); \
                         its data and postgres.log are in the data folder's pg/"
                    )));
                }
            }
        }
    }
}
