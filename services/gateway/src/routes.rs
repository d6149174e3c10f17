//! The gateway's routes: a [`Proxy`] per service, named for it by a [`Backend`], handing
//! every call to the [`Gateway`].

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::server::NamedService;

use crate::proxy::Gateway;

/// Names one backend service, so [`Proxy`] can be registered under that service's name.
pub trait Backend: Send + Sync + 'static {
    /// The full gRPC service name.
    const NAME: &'static str;
}

/// The gateway's face for one service: registered under the service's name, so reflection,
/// routing and unknown-service errors behave as if the service were served here.
pub struct Proxy<B> {
    gateway: Arc<Gateway>,
    _backend: PhantomData<fn() -> B>,
}

impl<B> Proxy<B> {
    /// A proxy for backend `B` through `gateway`.
    pub fn new(gateway: Arc<Gateway>) -> Self {
        Proxy {
            gateway,
            _backend: PhantomData,
        }
    }
}

impl<B> Clone for Proxy<B> {
    fn clone(&self) -> Self {
        Proxy::new(self.gateway.clone())
    }
}

impl<B: Backend> NamedService for Proxy<B> {
    const NAME: &'static str = B::NAME;
}

impl<B> tower::Service<http::Request<Body>> for Proxy<B> {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let gateway = self.gateway.clone();
        Box::pin(async move { Ok(gateway.handle(req).await) })
    }
}

/// The training service, as the gateway routes to it.
#[derive(Debug)]
pub struct Training;
impl Backend for Training {
    const NAME: &'static str = qi_proto::training::training_service_server::SERVICE_NAME;
}

/// The projects service, as the gateway routes to it.
#[derive(Debug)]
pub struct Projects;
impl Backend for Projects {
    const NAME: &'static str = qi_proto::projects::project_service_server::SERVICE_NAME;
}

/// The metrics service, as the gateway routes to it.
#[derive(Debug)]
pub struct Metrics;
impl Backend for Metrics {
    const NAME: &'static str = qi_proto::metrics::metric_service_server::SERVICE_NAME;
}

/// The read model, as the gateway routes to it.
#[derive(Debug)]
pub struct Insights;
impl Backend for Insights {
    const NAME: &'static str = qi_proto::insights::insights_service_server::SERVICE_NAME;
}

/// The gateway's own service, answered in the gateway process.
#[derive(Debug)]
pub struct GatewayItself;
impl Backend for GatewayItself {
    const NAME: &'static str = qi_proto::gateway::gateway_service_server::SERVICE_NAME;
}
