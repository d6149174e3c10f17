//! Server bootstrap shared by every component: `grpc.health.v1` health, server reflection,
//! one standard layer stack, and graceful shutdown with a ceiling.
//!
//! Every call gets a span with the OpenTelemetry RPC attributes (`trace_fn`). Our layers,
//! outer to inner: the call's deadline, fixed as it arrives ([`crate::deadline`]); gRPC-Web
//! on the gateway; the status and duration recorded on the span and the call timer; the
//! deadline's enforcement (answered DEADLINE_EXCEEDED); the cut of calls still running when
//! the shutdown grace ends (answered UNAVAILABLE); load shedding, so callers beyond
//! the concurrency limit get `RESOURCE_EXHAUSTED` at once instead of queueing; the
//! concurrency limit itself, shared by every connection; and, on the services, the
//! access-context check.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::access::{AccessLayer, AccessVerifier};
use crate::config::Config;

/// The largest message a server decodes (4 MiB, gRPC's usual default, set explicitly).
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// The health name that reports only that the server is up (for liveness probes).
pub const LIVENESS: &str = "liveness";

/// How a server limits and stops.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// The deadline of a call that carries none.
    pub request_timeout: Duration,
    /// The same for bulk (streaming) calls.
    pub bulk_timeout: Duration,
    /// Calls served at once.
    pub concurrency_limit: usize,
    /// How long NOT_SERVING is reported before the listener closes.
    pub drain_delay: Duration,
    /// The ceiling on finishing in-flight calls.
    pub shutdown_grace: Duration,
}

impl From<&Config> for ServerSettings {
    fn from(c: &Config) -> Self {
        ServerSettings {
            request_timeout: c.request_timeout,
            bulk_timeout: c.bulk_timeout,
            concurrency_limit: c.concurrency_limit,
            drain_delay: c.drain_delay,
            shutdown_grace: c.shutdown_grace,
        }
    }
}

/// What one server serves.
pub struct Component {
    /// For logs: `training`, `gateway`, …
    pub name: &'static str,
    /// The gRPC services.
    pub routes: Routes,
    /// Their full names, reported by health and listed by reflection.
    pub service_names: Vec<&'static str>,
    /// Services check the gateway's access context; the gateway authenticates itself (`None`).
    pub access: Option<Arc<AccessVerifier>>,
    /// Whether browsers may call it with gRPC-Web (over HTTP/1.1 too): the gateway only.
    pub grpc_web: bool,
    /// Keeps the reported health current while serving (the gateway watches its backends).
    pub health_watch: Option<HealthWatch>,
    /// The change feed a service serves, ended when the server stops accepting calls: a feed
    /// never ends by itself, and would otherwise hold the shutdown for its whole grace.
    pub feed: Option<Arc<crate::changes::Feed>>,
}

/// A task given the health reporter once serving starts; it is stopped before the drain
/// reports NOT_SERVING, so it can never report a draining server as serving.
pub type HealthWatch =
    Box<dyn FnOnce(HealthReporter) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// The running [`HealthWatch`], aborted when dropped.
struct Watching(Option<tokio::task::JoinHandle<()>>);

impl Watching {
    /// Stops the task and waits until it has, so none of its updates lands after this.
    async fn stop(mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Component")
            .field("name", &self.name)
            .field("service_names", &self.service_names)
            .finish_non_exhaustive()
    }
}

/// Binds a listener, so callers know the address (port 0 in tests) before serving.
pub async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))
}

/// Serves `component` on `listener` until `shutdown` completes, then drains: reports
/// NOT_SERVING, keeps serving for the drain delay (so load balancers stop routing here),
/// stops accepting, and waits for in-flight calls up to the grace period.
pub async fn serve(
    mut component: Component,
    listener: TcpListener,
    settings: &ServerSettings,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (reporter, health) = tonic_health::server::health_reporter();
    // Answered while the process serves at all, whatever its database or backends do:
    // the liveness and startup probes' name, so an outage never restarts every replica.
    reporter
        .set_service_status(LIVENESS, ServingStatus::Serving)
        .await;
    for name in &component.service_names {
        reporter
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }
    let watching = Watching(
        component
            .health_watch
            .take()
            .map(|watch| tokio::spawn(watch(reporter.clone()))),
    );
    let reflection_v1 = reflection(&component.service_names)
        .build_v1()
        .context("building reflection")?;
    // grpcurl and older clients still ask v1alpha.
    let reflection_v1alpha = reflection(&component.service_names)
        .build_v1alpha()
        .context("building reflection")?;

    let deadline =
        crate::deadline::DeadlineLayer::new(settings.request_timeout, settings.bulk_timeout);
    // Held here too, so the shutdown can say how many calls it had to cut.
    let permits = Arc::new(tokio::sync::Semaphore::new(settings.concurrency_limit));
    let (cut_tx, cut_rx) = tokio::sync::watch::channel(false);
    let layers = tower::ServiceBuilder::new()
        // Fixes the call's deadline before tonic's transport starts its own timer.
        .layer(deadline)
        // Browsers speak gRPC-Web; translated here, everything inside sees plain gRPC. Other
        // HTTP/1.1 requests (the gateway's HTTP/JSON) pass on as they are.
        .option_layer(component.grpc_web.then_some(WebLayer))
        // Continues the caller's trace and records each call's gRPC status on its span.
        .layer(crate::telemetry::RpcStatusLayer::new(component.name))
        // Inside the span and the timer, so both see a passed deadline's DEADLINE_EXCEEDED.
        .layer(deadline.enforce())
        .layer(CutLayer(cut_rx))
        .layer(tower::load_shed::LoadShedLayer::new())
        .layer(tower::limit::GlobalConcurrencyLimitLayer::with_semaphore(
            permits.clone(),
        ))
        .option_layer(component.access.clone().map(AccessLayer::new))
        .into_inner();

    let local = listener.local_addr().ok();
    tracing::info!(component = component.name, addr = ?local, "serving");
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = Server::builder()
        .accept_http1(component.grpc_web)
        // Lets clients rebalance across replicas behind a Kubernetes Service.
        .max_connection_age(Duration::from_secs(300))
        .trace_fn(crate::telemetry::rpc_span)
        .layer(layers)
        .add_routes(component.routes)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(incoming, async {
            let _ = stop_rx.await;
        });
    tokio::pin!(server);

    tokio::select! {
        res = &mut server => return res.context("server failed"),
        () = shutdown => {}
    }
    tracing::info!(component = component.name, "shutting down: draining");
    watching.stop().await;
    set_all(
        &reporter,
        &component.service_names,
        ServingStatus::NotServing,
    )
    .await;
    tokio::select! {
        res = &mut server => return res.context("server failed"),
        () = tokio::time::sleep(settings.drain_delay) => {}
    }
    let _ = stop_tx.send(());
    if let Some(feed) = &component.feed {
        feed.stop();
    }
    match tokio::time::timeout(settings.shutdown_grace, &mut server).await {
        Ok(res) => res.context("server failed")?,
        Err(_) => {
            tracing::warn!(
                component = component.name,
                grace = ?settings.shutdown_grace,
                cut = settings
                    .concurrency_limit
                    .saturating_sub(permits.available_permits()),
                "calls still in flight when the shutdown grace ran out were cut"
            );
            let _ = cut_tx.send(true);
            // Their UNAVAILABLE answers go out; the connections then close.
            let _ = tokio::time::timeout(CUT_WAIT, server).await;
        }
    }
    tracing::info!(component = component.name, "stopped");
    Ok(())
}

/// How long cut calls have to send their answers before the server is dropped.
const CUT_WAIT: Duration = Duration::from_secs(1);

/// Ends the calls still running when the shutdown grace runs out, answering UNAVAILABLE.
/// tonic's server leaves its connections' tasks running when its future is dropped (hyper
/// #4170), so without this a call could still run, commit and be answered after the server
/// said it had stopped. A stream's messages after its response head are not cut.
#[derive(Debug, Clone)]
struct CutLayer(tokio::sync::watch::Receiver<bool>);

impl<S> tower::Layer<S> for CutLayer {
    type Service = Cut<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Cut {
            inner,
            cut: self.0.clone(),
        }
    }
}

/// The service of [`CutLayer`].
#[derive(Debug, Clone)]
struct Cut<S> {
    inner: S,
    cut: tokio::sync::watch::Receiver<bool>,
}

impl<S, B, ResBody> tower::Service<http::Request<B>> for Cut<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let mut cut = self.cut.clone();
        let call = self.inner.call(req);
        Box::pin(async move {
            tokio::select! {
                biased;
                answer = call => answer,
                // Cut, or the server gone (the sender dropped): either way, this call ends.
                _ = cut.wait_for(|c| *c) => Ok(tonic::Status::from(crate::Error::NotServing {
                    message: "the server stopped before this call finished; retry it".into(),
                })
                .into_http()),
            }
        })
    }
}

/// Reflection over the contracts, listing only what this server serves.
fn reflection(service_names: &[&'static str]) -> tonic_reflection::server::Builder<'static> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(qi_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health");
    for name in service_names {
        builder = builder.with_service_name(*name);
    }
    builder
}

async fn set_all(reporter: &HealthReporter, names: &[&'static str], status: ServingStatus) {
    reporter.set_service_status("", status).await;
    for name in names {
        reporter.set_service_status(*name, status).await;
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}

/// Translates gRPC-Web requests ([`tonic_web`]) and passes every other request on as it is:
/// tonic-web alone refuses an HTTP/1.1 request that is not gRPC-Web, and the gateway's
/// HTTP/JSON and CORS preflights (`OPTIONS`, answered by its CORS gate) arrive so.
#[derive(Debug, Clone, Copy)]
struct WebLayer;

impl<S: Clone> tower::Layer<S> for WebLayer {
    type Service = Web<S>;

    fn layer(&self, inner: S) -> Web<S> {
        Web {
            web: tower::Layer::layer(&tonic_web::GrpcWebLayer::new(), inner.clone()),
            plain: inner,
        }
    }
}

#[derive(Debug, Clone)]
struct Web<S> {
    web: tonic_web::GrpcWebService<S>,
    plain: S,
}

impl<S, B> tower::Service<http::Request<B>> for Web<S>
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + std::fmt::Display,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.plain.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let web = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc-web"));
        if web {
            // A clone of its own, made ready by the oneshot.
            Box::pin(tower::ServiceExt::oneshot(self.web.clone(), req))
        } else {
            // The instance polled ready takes the call; a clone stays for the next.
            let mut plain = self.plain.clone();
            std::mem::swap(&mut plain, &mut self.plain);
            Box::pin(plain.call(req.map(tonic::body::Body::new)))
        }
    }
}
