//! The gateway: the suite's only public entry point. It authenticates bearer tokens,
//! enforces each method's access policy (read from the compiled contracts), signs the
//! access context the services trust, and forwards calls to the service that owns them.
//! It serves health and reflection for the whole suite.
#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
mod authorize;
mod client;
mod cors;
mod frame;
mod guard;
mod health;
mod overview;
mod own;
pub mod policy;
mod proxy;
mod ratelimit;
pub mod retention;
mod routes;
mod signing;
mod traceparent;
mod transcode;
mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use qi_platform::Config;
use qi_platform::access::AccessSigner;
use qi_platform::server::Component;
use tonic::transport::Endpoint;

pub use proxy::{Gateway, GatewayParts};
pub use routes::{Backend, GatewayItself, Insights, Metrics, Projects, Proxy, Training};
pub use transcode::openapi_document;

/// The schema the gateway owns (its audit trail).
pub const SCHEMA: &str = "gateway";

/// The gateway's migrations (its migrations table is `gateway._sqlx_migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// What the gateway's runtime role may do (see `qi_platform::db::grant_runtime`): add audit
/// events and read them, never change or delete one, and nothing on the partitions
/// themselves. Retention (dropping old partitions) runs as the owner.
pub const RUNTIME_GRANTS: &str = "
    REVOKE ALL ON ALL TABLES IN SCHEMA gateway FROM {role};
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA gateway FROM {role};
    GRANT USAGE ON SCHEMA gateway TO {role};
    GRANT SELECT, INSERT ON gateway.audit_event TO {role};
    GRANT USAGE ON SEQUENCE gateway.audit_event_id TO {role};
    GRANT SELECT ON gateway._sqlx_migrations TO {role};";

/// The gateway component and its audit writer (shut the writer down after the server has
/// stopped, so the trail is flushed). `backends` maps each service name to its URL; `pool`
/// is the gateway's schema.
pub fn component(
    config: &Config,
    backends: &HashMap<&'static str, String>,
    pool: sqlx::PgPool,
) -> anyhow::Result<(Component, audit::AuditWriter)> {
    let descriptors = prost_reflect::DescriptorPool::decode(qi_proto::FILE_DESCRIPTOR_SET)
        .context("reading the compiled contracts")?;
    let methods = policy::load(&descriptors);
    for m in methods.values() {
        if let Err(why) = &m.policy {
            tracing::warn!(method = %m.path, why, "method refused: no usable access policy");
        }
    }
    let auth = auth::Authenticator::new(&config.jwt)?;
    let key = config.access_keys.current.as_deref().context(
        "QI_ACCESS_KEY is required: the key that signs access contexts for the services",
    )?;
    // A context authorizes one call: it lives as long as the longest call may.
    let signer = AccessSigner::new(key, config.request_timeout + Duration::from_secs(60));
    let mut channels = HashMap::new();
    for (name, url) in backends {
        let endpoint = Endpoint::from_shared(url.clone())
            .with_context(|| format!("backend URL for {name}: {url}"))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        channels.insert((*name).to_owned(), endpoint.connect_lazy());
    }
    let (audit, writer) = audit::start(pool.clone(), config.audit_queue);
    let health_watch = health::watch(
        channels.clone(),
        audit.clone(),
        config.backend_check_interval,
    );
    let gateway = Arc::new(Gateway::new(GatewayParts {
        methods,
        auth,
        signer,
        backends: channels,
        default_timeout: config.request_timeout,
        audit,
        limiter: ratelimit::RateLimiter::new(
            config.rate_limit_per_subject,
            config.rate_limit_burst,
        ),
        pool,
        sites: config.sites.clone(),
        trusted_proxies: config.trusted_proxies.clone(),
        failures: ratelimit::RateLimiter::new(
            config.auth_failure_rate,
            config.auth_failure_rate.saturating_mul(10),
        ),
    }));
    // HTTP/JSON: whatever no gRPC service takes is read by the RPCs' HTTP rules.
    let cors = cors::CorsGateLayer::new(
        &config.cors_allowed_origins,
        gateway.clone(),
        descriptors.clone(),
    )?;
    let transcoder = transcode::Transcoder::new(gateway.clone(), descriptors)?;
    let routes = tonic::service::Routes::default()
        .add_service(Proxy::<Training>::new(gateway.clone()))
        .add_service(Proxy::<Projects>::new(gateway.clone()))
        .add_service(Proxy::<Metrics>::new(gateway.clone()))
        .add_service(Proxy::<Insights>::new(gateway.clone()))
        .add_service(Proxy::<GatewayItself>::new(gateway));
    // Browsers on other origins reach every route alike, gRPC-Web or HTTP/JSON.
    let routes = tonic::service::Routes::from(
        routes
            .into_axum_router()
            .fallback_service(transcoder)
            .layer(cors),
    );
    let component = Component {
        name: "gateway",
        routes,
        service_names: vec![
            Training::NAME,
            Projects::NAME,
            Metrics::NAME,
            Insights::NAME,
            GatewayItself::NAME,
        ],
        access: None,
        grpc_web: true,
        health_watch: Some(health_watch),
        feed: None,
    };
    Ok((component, writer))
}

/// The backend URLs from configuration (`QI_TRAINING_URL`, …), by service name.
pub fn configured_backends(config: &Config) -> HashMap<&'static str, String> {
    HashMap::from([
        (Training::NAME, config.backends.training.clone()),
        (Projects::NAME, config.backends.projects.clone()),
        (Metrics::NAME, config.backends.metrics.clone()),
        (Insights::NAME, config.backends.insights.clone()),
    ])
}
