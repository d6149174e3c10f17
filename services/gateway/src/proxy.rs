//! The gateway's forwarding: every `qi.*` call is authenticated, authorized against its
//! method's policy, given a signed access context, and forwarded as raw bytes to the
//! service that owns it over gRPC. Upstream statuses come back unchanged.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use qi_platform::AccessContext;
use qi_platform::access::{ACCESS_HEADER, AccessSigner};
use tokio::sync::oneshot;
use tonic::body::Body;
use tonic::codec::Streaming;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::server::NamedService;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::auth::{Authenticator, Principal};
use crate::authorize;
use crate::codec::BytesCodec;
use crate::policy::{Method, Policy};

/// Everything a forwarded call needs.
pub struct Gateway {
    methods: HashMap<String, Method>,
    auth: Authenticator,
    signer: AccessSigner,
    backends: HashMap<String, Channel>,
    default_timeout: Duration,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("methods", &self.methods.len())
            .field("backends", &self.backends.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway over `methods`, forwarding each service's calls to its channel.
    pub fn new(
        methods: HashMap<String, Method>,
        auth: Authenticator,
        signer: AccessSigner,
        backends: HashMap<String, Channel>,
        default_timeout: Duration,
    ) -> Self {
        Gateway {
            methods,
            auth,
            signer,
            backends,
            default_timeout,
        }
    }

    async fn handle(self: Arc<Self>, req: http::Request<Body>) -> http::Response<Body> {
        let path = req.uri().path().to_owned();
        let Some(method) = self.methods.get(&path) else {
            return Status::unimplemented(format!("unknown method {path}")).into_http();
        };
        let mut grpc = tonic::server::Grpc::new(BytesCodec)
            .apply_max_message_size_config(Some(qi_platform::server::MAX_MESSAGE_BYTES), None);
        let gw = self.clone();
        match (method.client_streaming, method.server_streaming) {
            (false, false) => {
                let svc = tower::service_fn(move |r: Request<Bytes>| {
                    let (gw, path) = (gw.clone(), path.clone());
                    async move { gw.unary(&path, r).await }
                });
                grpc.unary(svc, req).await
            }
            (false, true) => {
                let svc = tower::service_fn(move |r: Request<Bytes>| {
                    let (gw, path) = (gw.clone(), path.clone());
                    async move { gw.server_streaming(&path, r).await }
                });
                grpc.server_streaming(svc, req).await
            }
            (true, false) => {
                let svc = tower::service_fn(move |r: Request<Streaming<Bytes>>| {
                    let (gw, path) = (gw.clone(), path.clone());
                    async move { gw.client_streaming(&path, r).await }
                });
                grpc.client_streaming(svc, req).await
            }
            // No contract has a bidirectional RPC; forwarding one would need the abort
            // handling of client streams on a response already under way.
            (true, true) => Status::unimplemented(format!(
                "{path}: bidirectional calls are not forwarded by the gateway"
            ))
            .into_http(),
        }
    }

    /// Checks what needs no message: the method has a policy, the token is good, the
    /// caller has the role (and is trust-wide where the method requires it).
    fn admit(
        &self,
        path: &str,
        metadata: &MetadataMap,
    ) -> Result<(&Method, &Policy, Principal), Status> {
        let method = self
            .methods
            .get(path)
            .ok_or_else(|| Status::unimplemented(format!("unknown method {path}")))?;
        let policy = method.policy.as_ref().map_err(|why| {
            tracing::error!(path, why, "refused a method without a usable access policy");
            Status::permission_denied(format!("{path} has no access policy"))
        })?;
        let auth_header = match metadata.get("authorization").map(|v| v.to_str()) {
            Some(Ok(v)) => Some(v),
            Some(Err(_)) => return Err(Status::unauthenticated("authorization is not text")),
            None => None,
        };
        let principal = self.auth.authenticate(auth_header)?;
        if let Err(status) = authorize::admit(policy, &principal) {
            tracing::info!(path, subject = %principal.subject, reason = status.message(), "denied");
            return Err(status);
        }
        Ok((method, policy, principal))
    }

    /// Turns an admitted call into the upstream request: the caller's token and any
    /// client-supplied context are removed, the signed access context added.
    fn upstream<T>(
        &self,
        method: &Method,
        principal: Principal,
        path: &str,
        mut metadata: MetadataMap,
        message: T,
    ) -> Result<(Request<T>, Channel), Status> {
        let ctx = AccessContext {
            subject: principal.subject,
            roles: principal.roles,
            sites: principal.sites,
            method: path.to_owned(),
        };
        let signed = self.signer.sign(&ctx).map_err(|e| {
            tracing::error!(error = %e, "signing the access context");
            Status::internal("internal error")
        })?;
        let channel = self.backends.get(&method.service).cloned().ok_or_else(|| {
            Status::unimplemented(format!("no backend serves {}", method.service))
        })?;
        let no_deadline = metadata.get("grpc-timeout").is_none();
        metadata.remove("authorization");
        metadata.remove(ACCESS_HEADER);
        let value =
            MetadataValue::try_from(signed).map_err(|_| Status::internal("internal error"))?;
        metadata.insert(ACCESS_HEADER, value);
        let mut upstream = Request::from_parts(metadata, Default::default(), message);
        if no_deadline {
            upstream.set_timeout(self.default_timeout);
        }
        tracing::debug!(path, subject = %ctx.subject, "allowed");
        Ok((upstream, channel))
    }

    /// Admits a call carrying one message.
    fn prepare(
        &self,
        path: &str,
        req: Request<Bytes>,
    ) -> Result<(Request<Bytes>, Channel), Status> {
        let (metadata, _, message) = req.into_parts();
        let (method, policy, principal) = self.admit(path, &metadata)?;
        if let Err(status) = authorize::check_message(policy, &principal, &message) {
            tracing::info!(path, subject = %principal.subject, reason = status.message(), "denied");
            return Err(status);
        }
        self.upstream(method, principal, path, metadata, message)
    }

    async fn unary(&self, path: &str, req: Request<Bytes>) -> Result<Response<Bytes>, Status> {
        let (upstream, channel) = self.prepare(path, req)?;
        let mut client = tonic::client::Grpc::new(channel);
        client.ready().await.map_err(unavailable)?;
        client
            .unary(upstream, path_and_query(path)?, BytesCodec)
            .await
    }

    async fn server_streaming(
        &self,
        path: &str,
        req: Request<Bytes>,
    ) -> Result<Response<Streaming<Bytes>>, Status> {
        let (upstream, channel) = self.prepare(path, req)?;
        let mut client = tonic::client::Grpc::new(channel);
        client.ready().await.map_err(unavailable)?;
        client
            .server_streaming(upstream, path_and_query(path)?, BytesCodec)
            .await
    }

    /// Forwards a client stream, checking every message. A refused message or a broken
    /// inbound stream aborts the upstream call (its HTTP/2 stream is reset), so the service
    /// sees a failed stream, never a clean end it might commit.
    async fn client_streaming(
        &self,
        path: &str,
        req: Request<Streaming<Bytes>>,
    ) -> Result<Response<Bytes>, Status> {
        let (metadata, _, inbound) = req.into_parts();
        let (method, policy, principal) = self.admit(path, &metadata)?;
        let (abort, aborted) = oneshot::channel();
        let guarded = Guarded {
            inbound,
            policy: policy.clone(),
            principal: principal.clone(),
            abort: Some(abort),
        };
        let (upstream, channel) = self.upstream(method, principal, path, metadata, guarded)?;
        let mut client = tonic::client::Grpc::new(channel);
        client.ready().await.map_err(unavailable)?;
        let call = client.client_streaming(upstream, path_and_query(path)?, BytesCodec);
        tokio::select! {
            biased;
            Ok(status) = aborted => Err(status),
            res = call => res,
        }
    }
}

/// The inbound half of a forwarded client stream: passes messages that satisfy the policy;
/// on a refused message or a broken stream it signals the abort and never ends cleanly.
struct Guarded {
    inbound: Streaming<Bytes>,
    policy: Policy,
    principal: Principal,
    abort: Option<oneshot::Sender<Status>>,
}

impl tokio_stream::Stream for Guarded {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if self.abort.is_none() {
            // Aborted: stay open until the call is dropped.
            return Poll::Pending;
        }
        let failure = match std::task::ready!(Pin::new(&mut self.inbound).poll_next(cx)) {
            None => return Poll::Ready(None),
            Some(Ok(message)) => {
                match authorize::check_message(&self.policy, &self.principal, &message) {
                    Ok(()) => return Poll::Ready(Some(message)),
                    Err(status) => status,
                }
            }
            Some(Err(status)) => {
                Status::cancelled(format!("the client's stream broke: {}", status.message()))
            }
        };
        if let Some(abort) = self.abort.take() {
            let _ = abort.send(failure);
        }
        Poll::Pending
    }
}

fn path_and_query(path: &str) -> Result<PathAndQuery, Status> {
    PathAndQuery::try_from(path).map_err(|_| Status::unimplemented("bad method path"))
}

fn unavailable(e: tonic::transport::Error) -> Status {
    Status::unavailable(format!("service unavailable: {e}"))
}

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
