//! The gateway's forwarding: every `qi.*` call is authenticated, authorized against its
//! method's policy, given a signed access context, and forwarded to the service that owns
//! it over gRPC. Upstream answers come back unchanged.
//!
//! A call carrying one message (unary or server-streaming) is forwarded as raw HTTP/2: its
//! frame is read and checked, the same bytes go on, and the answer (headers, messages,
//! trailers) is relayed as it arrives, with no codec on either side. Client streams (the HR
//! sync) go through tonic's codec, which hands over each message to be checked as it passes
//! ([`crate::guard`]). Access contexts are signed once and reused ([`crate::signing`]).
//! Calls to the gateway's own service are admitted the same way and then answered here, by
//! its generated server ([`crate::own`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::PathAndQuery;
use qi_platform::access::{ACCESS_HEADER, AccessSigner, EmployeeClaim};
use qi_platform::config::Cidr;
use qi_platform::deadline::{self, CallDeadline};
use qi_platform::{AccessContext, Error, SiteCode};
use sqlx::PgPool;
use tokio::sync::oneshot;
use tonic::body::Body;
use tonic::codec::Streaming;
use tonic::metadata::{Ascii, MetadataMap, MetadataValue};
use tonic::transport::Channel;
use tonic::transport::server::TcpConnectInfo;
use tonic::{Request, Response, Status};
use tower::{Service as _, ServiceExt as _};

use crate::audit::{AuditEvent, AuditLog};
use crate::auth::{Authenticator, Principal, unauthenticated};
use crate::authorize;
use crate::frame;
use crate::guard::Guarded;
use crate::own;
use crate::policy::{Method, Policy};
use crate::ratelimit::RateLimiter;
use crate::routes::{Backend as _, GatewayItself};
use crate::signing::SignedContexts;
use crate::traceparent::{ensure_traceparent, trace_id};
use qi_platform::codec::BytesCodec;

/// Everything a forwarded call needs.
pub struct Gateway {
    methods: HashMap<String, Method>,
    auth: Authenticator,
    signer: AccessSigner,
    backends: HashMap<String, Channel>,
    /// The deadline of a call that arrived without one fixed (not through the server stack).
    default_timeout: Duration,
    audit: AuditLog,
    limiter: Option<RateLimiter>,
    /// The gateway's own schema (the audit trail), for its own methods.
    pool: PgPool,
    /// Signed contexts ready to forward, by method and subject.
    contexts: SignedContexts,
    /// The trust's sites (`QI_SITES`).
    sites: Vec<SiteCode>,
    /// Whose `X-Forwarded-For` is believed (`QI_TRUSTED_PROXIES`).
    trusted_proxies: Vec<Cidr>,
    /// Failed authentications per client address (`QI_AUTH_FAILURE_RATE`), if limited.
    failures: Option<RateLimiter>,
    /// `QI_JWT_EMPLOYEE_CLAIM`, shared by every context rather than copied per call.
    employee_claim: EmployeeClaim,
}

/// What a [`Gateway`] is made of.
pub struct GatewayParts {
    /// Every method of the contracts, with its policy.
    pub methods: HashMap<String, Method>,
    /// Checks bearer tokens.
    pub auth: Authenticator,
    /// Signs access contexts.
    pub signer: AccessSigner,
    /// A channel per backend service name.
    pub backends: HashMap<String, Channel>,
    /// The deadline of calls that carry none.
    pub default_timeout: Duration,
    /// Where decisions are recorded.
    pub audit: AuditLog,
    /// The per-subject rate limit, if on.
    pub limiter: Option<RateLimiter>,
    /// The gateway's schema.
    pub pool: PgPool,
    /// The trust's sites (`QI_SITES`): a read under any other finds nothing.
    pub sites: Vec<SiteCode>,
    /// Whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// The limit on failed authentications per client address, if on.
    pub failures: Option<RateLimiter>,
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
    /// A gateway from its parts.
    pub fn new(parts: GatewayParts) -> Self {
        let GatewayParts {
            methods,
            auth,
            signer,
            backends,
            default_timeout,
            audit,
            limiter,
            pool,
            sites,
            trusted_proxies,
            failures,
        } = parts;
        let employee_claim = EmployeeClaim::new(auth.employee_claim());
        Gateway {
            methods,
            auth,
            signer,
            backends,
            default_timeout,
            audit,
            limiter,
            pool,
            contexts: SignedContexts::default(),
            sites,
            trusted_proxies,
            failures,
            employee_claim,
        }
    }

    /// The signed access context for `ctx` as a header value (see [`crate::signing`]).
    pub(crate) fn signed(&self, ctx: &AccessContext) -> Result<MetadataValue<Ascii>, Status> {
        self.contexts.signed(&self.signer, ctx)
    }

    /// The deadline of a call that arrived without one fixed.
    pub(crate) fn default_timeout(&self) -> Duration {
        self.default_timeout
    }

    /// The gateway's own schema (the audit trail).
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The channel to a backend service, by full name.
    pub(crate) fn backend_channel(&self, service: &str) -> Option<Channel> {
        self.backends.get(service).cloned()
    }

    /// Records a decision.
    fn record(&self, call: &CallInfo<'_>, resource: Option<&str>, outcome: Result<&str, &Status>) {
        let (allowed, code, reason) = match outcome {
            Ok(reason) => (true, "Ok".to_owned(), reason.to_owned()),
            Err(status) => (
                false,
                format!("{:?}", status.code()),
                status.message().to_owned(),
            ),
        };
        // Every decision is in the audit trail; a refusal is the caller's to handle, and
        // under load (a caller over its rate) there are thousands: the log gets them at DEBUG.
        if !allowed {
            tracing::debug!(
                path = call.path,
                subject = call.subject,
                code,
                reason,
                "denied"
            );
        }
        let event = AuditEvent {
            time: chrono::Utc::now(),
            subject: call.subject.to_owned(),
            method: qi_names::clip(call.path),
            site: resource.and_then(authorize::site_of),
            resource: resource.map(qi_names::clip),
            allowed,
            code,
            reason,
            trace_id: call.trace_id.clone(),
            client_address: call.client.map(|a| a.to_string()),
            count: 1,
        };
        // Refused before any token was accepted: counted, not a row per call.
        if allowed || !call.subject.is_empty() {
            self.audit.record(event);
        } else {
            self.audit.record_unauthenticated(event);
        }
    }

    /// The caller's address, as the gateway judges it ([`crate::client`]).
    fn client_of<B>(&self, req: &http::Request<B>) -> Option<IpAddr> {
        let peer = req
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
            .map(|a| a.ip());
        crate::client::address(peer, req.headers(), &self.trusted_proxies)
    }

    /// Spends from the caller's budget for traffic that carries no token (a CORS
    /// preflight), the one failed authentications spend (`QI_AUTH_FAILURE_RATE`); when it is
    /// spent, how long until it has a token again.
    pub(crate) fn spend_unauthenticated<B>(&self, req: &http::Request<B>) -> Result<(), Duration> {
        match (self.failures.as_ref(), self.client_of(req)) {
            (Some(limiter), Some(addr)) => limiter.check(&addr.to_string(), Instant::now()),
            _ => Ok(()),
        }
    }

    /// Serves one call of any route: a call of one message is forwarded raw, a client
    /// stream through the codec; a refusal is answered here.
    pub(crate) async fn handle(
        self: Arc<Self>,
        mut req: http::Request<Body>,
    ) -> http::Response<Body> {
        let path = req.uri().path().to_owned();
        let client = self.client_of(&req);
        req.extensions_mut().insert(ClientAddress(client));
        let Some(method) = self.methods.get(&path) else {
            let status = unknown_method(&path);
            let trace_id = trace_id(req.headers().get("traceparent"));
            let call = CallInfo {
                path: &path,
                subject: "",
                trace_id,
                client,
            };
            self.record(&call, None, Err(&status));
            return status.into_http();
        };
        if !method.client_streaming {
            return self
                .forward(&path, req)
                .await
                .unwrap_or_else(Status::into_http);
        }
        if method.server_streaming {
            // No contract has a bidirectional RPC: forwarding one would need the abort
            // handling of client streams on a response already under way.
            return Status::from(Error::Unimplemented {
                message: format!(
                    "{path}: the gateway forwards no bidirectional calls and has no streaming \
                     methods of its own"
                ),
            })
            .into_http();
        }
        let mut grpc = tonic::server::Grpc::new(BytesCodec)
            .apply_max_message_size_config(Some(qi_platform::server::MAX_MESSAGE_BYTES), None);
        let svc = tower::service_fn(move |r: Request<Streaming<Bytes>>| {
            let (gw, path) = (self.clone(), path.clone());
            async move { gw.client_streaming(&path, r).await }
        });
        grpc.client_streaming(svc, req).await
    }

    /// Checks what needs no message: the method has a policy, the token is good, the
    /// caller is within their rate and has the role (and is trust-wide where the method
    /// requires it). Every refusal is recorded.
    fn admit(
        &self,
        path: &str,
        metadata: &mut MetadataMap,
        client: Option<IpAddr>,
    ) -> Result<(&Method, &Policy, Principal, String), Status> {
        let trace_id = ensure_traceparent(metadata);
        let mut call = CallInfo {
            path,
            subject: "",
            trace_id,
            client,
        };
        let refuse = |call: &CallInfo<'_>, status: Status| {
            self.record(call, None, Err(&status));
            Err(status)
        };
        let Some(method) = self.methods.get(path) else {
            return refuse(&call, unknown_method(path));
        };
        // Fail closed: a call whose decision cannot be queued for the audit trail is not
        // served (its refusal still reaches the log).
        if !self.audit.accepting() {
            return refuse(
                &call,
                Error::NotServing {
                    message:
                        "auditing is unavailable: the audit trail cannot be written; retry later"
                            .into(),
                }
                .into(),
            );
        }
        let policy = match method.policy.as_ref() {
            Ok(p) => p,
            Err(why) => {
                tracing::error!(path, why, "refused a method without a usable access policy");
                return refuse(
                    &call,
                    Error::denied(format!("{path} has no access policy")).into(),
                );
            }
        };
        let auth_header = match metadata.get("authorization").map(|v| v.to_str()) {
            Some(Ok(v)) => Some(v),
            Some(Err(_)) => {
                return refuse(&call, unauthenticated("authorization is not text"));
            }
            None => None,
        };
        // An address that keeps failing authentication is refused before its token is
        // even looked at; each failure spends from its budget.
        let failures = self.failures.as_ref().zip(client);
        if let Some((limiter, addr)) = failures
            && let Err(wait) = limiter.peek(&addr.to_string(), Instant::now())
        {
            // One message whatever the wait, so these refusals are counted as one kind.
            let message = "too many failed authentications from this address; RetryInfo says \
                           when to retry";
            return refuse(&call, too_many(message.to_owned(), wait));
        }
        let principal = match self.auth.authenticate(auth_header) {
            Ok(p) => p,
            Err(status) => {
                if let Some((limiter, addr)) = failures {
                    let _ = limiter.check(&addr.to_string(), Instant::now());
                }
                return refuse(&call, status);
            }
        };
        call.subject = &principal.subject;
        if let Some(limiter) = &self.limiter
            && let Err(wait) = limiter.check(&principal.subject, std::time::Instant::now())
        {
            let message = format!(
                "too many calls from this caller; retry in {} ms",
                wait.max(Duration::from_millis(1)).as_millis()
            );
            return refuse(&call, too_many(message, wait));
        }
        if let Err(status) = authorize::admit(policy, &principal) {
            return refuse(&call, status);
        }
        let trace_id = call.trace_id;
        Ok((method, policy, principal, trace_id))
    }

    /// The site rule and the bounds of the repeated fields on one message, recorded
    /// either way.
    fn check(
        &self,
        path: &str,
        (method, policy): (&Method, &Policy),
        principal: &Principal,
        trace_id: &str,
        client: Option<IpAddr>,
        message: &[u8],
    ) -> Result<(), Status> {
        let call = CallInfo {
            path,
            subject: &principal.subject,
            trace_id: trace_id.to_owned(),
            client,
        };
        let decision = authorize::check_message(policy, principal, message)
            .and_then(|resource| {
                authorize::check_known_site(policy, resource.as_deref(), &self.sites)
                    .map(|()| resource)
            })
            .and_then(|resource| method.input.check_bounds(message).map(|()| resource));
        match decision {
            Ok(resource) => {
                self.record(&call, resource.as_deref(), Ok("allowed"));
                Ok(())
            }
            Err(status) => {
                let resource = crate::wire::find_string(message, &policy.resource_path)
                    .ok()
                    .flatten();
                self.record(&call, resource.as_deref(), Err(&status));
                Err(status)
            }
        }
    }

    /// Turns an admitted call's metadata into the upstream's: the caller's token and any
    /// client-supplied context are removed, the signed access context added.
    /// The service is given what is left of the call's deadline (see `qi_platform::deadline`).
    fn upstream(
        &self,
        principal: Principal,
        path: &str,
        deadline: Option<&CallDeadline>,
        metadata: &mut MetadataMap,
    ) -> Result<AccessContext, Status> {
        let ctx = AccessContext {
            subject: principal.subject,
            roles: principal.roles,
            sites: principal.sites,
            method: path.to_owned(),
            employee: principal.employee,
            employee_claim: self.employee_claim.clone(),
            token_expiry: Some(principal.expires),
        };
        let value = self.signed(&ctx)?;
        let remaining = deadline.map_or(self.default_timeout, CallDeadline::remaining);
        metadata.insert("grpc-timeout", deadline::grpc_timeout(remaining));
        metadata.remove("authorization");
        metadata.remove(ACCESS_HEADER);
        metadata.insert(ACCESS_HEADER, value);
        Ok(ctx)
    }

    /// Forwards a call carrying one message as raw HTTP/2 (see the module docs). A refusal
    /// is the `Err`, answered by the caller as a trailers-only response.
    async fn forward(
        self: &Arc<Self>,
        path: &str,
        req: http::Request<Body>,
    ) -> Result<http::Response<Body>, Status> {
        let (parts, body) = req.into_parts();
        let mut metadata = MetadataMap::from_headers(parts.headers);
        let client = client_of(&parts.extensions);
        let (method, policy, principal, trace_id) = self.admit(path, &mut metadata, client)?;
        let frame = match frame::read(body, qi_platform::server::MAX_MESSAGE_BYTES).await {
            Ok(frame) => frame,
            Err(status) => {
                let call = CallInfo {
                    path,
                    subject: &principal.subject,
                    trace_id,
                    client,
                };
                self.record(&call, None, Err(&status));
                return Err(status);
            }
        };
        self.check(
            path,
            (method, policy),
            &principal,
            &trace_id,
            client,
            frame.message(),
        )?;
        let deadline = parts.extensions.get::<CallDeadline>().copied();
        let ctx = self.upstream(principal, path, deadline.as_ref(), &mut metadata)?;
        let mut headers = metadata.into_headers();
        // What described the caller's connection, not the call.
        headers.remove(http::header::HOST);
        headers.remove(http::header::CONTENT_LENGTH);
        let mut upstream = http::Request::new(frame.into_body());
        *upstream.method_mut() = http::Method::POST;
        *upstream.version_mut() = http::Version::HTTP_2;
        *upstream.headers_mut() = headers;
        *upstream.uri_mut() = http::Uri::from(path_and_query(path)?);
        if method.service == GatewayItself::NAME {
            // Answered here, given what the services' layers would give it.
            upstream.extensions_mut().insert(ctx);
            if let Some(deadline) = deadline {
                upstream.extensions_mut().insert(deadline);
            }
            return Ok(own::serve(self.clone(), upstream).await);
        }
        let mut channel = self
            .backend_channel(&method.service)
            .ok_or_else(|| no_backend(path))?;
        channel
            .ready()
            .await
            .map_err(|e| unavailable(&method.service, e))?;
        channel
            .call(upstream)
            .await
            .map_err(|e| upstream_error(&method.service, e))
    }

    /// Forwards a client stream, checking every message. A refused message or a broken
    /// inbound stream aborts the upstream call (its HTTP/2 stream is reset), so the service
    /// sees a failed stream, never a clean end it might commit.
    async fn client_streaming(
        &self,
        path: &str,
        req: Request<Streaming<Bytes>>,
    ) -> Result<Response<Bytes>, Status> {
        let (mut metadata, extensions, inbound) = req.into_parts();
        let client = client_of(&extensions);
        let (method, policy, principal, trace_id) = self.admit(path, &mut metadata, client)?;
        // The stream is admitted as a whole; its messages are checked as they pass.
        self.record(
            &CallInfo {
                path,
                subject: &principal.subject,
                trace_id: trace_id.clone(),
                client,
            },
            None,
            Ok("stream admitted"),
        );
        let (abort, aborted) = oneshot::channel();
        let guarded = Guarded {
            inbound,
            policy: policy.clone(),
            input: method.input.clone(),
            principal: principal.clone(),
            abort: Some(abort),
            audit: self.audit.clone(),
            path: path.to_owned(),
            trace_id,
            client,
        };
        self.upstream(
            principal,
            path,
            extensions.get::<CallDeadline>(),
            &mut metadata,
        )?;
        let upstream = Request::from_parts(metadata, Default::default(), guarded);
        let channel = self
            .backend_channel(&method.service)
            .ok_or_else(|| no_backend(path))?;
        let mut client = tonic::client::Grpc::new(channel);
        client
            .ready()
            .await
            .map_err(|e| unavailable(&method.service, e))?;
        let call = client.client_streaming(upstream, path_and_query(path)?, BytesCodec);
        tokio::select! {
            biased;
            Ok(status) = aborted => Err(status),
            res = call => res,
        }
    }
}

/// Who and what a decision is about.
struct CallInfo<'a> {
    path: &'a str,
    subject: &'a str,
    trace_id: String,
    client: Option<IpAddr>,
}

/// The caller's address (see [`crate::client`]), in the request's extensions.
#[derive(Debug, Clone, Copy)]
struct ClientAddress(Option<IpAddr>);

fn client_of(extensions: &http::Extensions) -> Option<IpAddr> {
    extensions.get::<ClientAddress>().and_then(|c| c.0)
}

/// A rate limit's refusal, saying `message`. RetryInfo says when the next call can pass:
/// the least a client backs off (its own concurrent calls compete for that token).
fn too_many(message: String, wait: Duration) -> Status {
    Error::ResourceExhausted {
        message,
        retry_after: Some(wait.max(Duration::from_millis(1))),
    }
    .into()
}

pub(crate) fn unknown_method(path: &str) -> Status {
    Error::Unimplemented {
        message: format!("unknown method {}", qi_names::clip(path)),
    }
    .into()
}

pub(crate) fn no_backend(path: &str) -> Status {
    Error::Unimplemented {
        message: format!("no backend serves {path}"),
    }
    .into()
}

fn path_and_query(path: &str) -> Result<PathAndQuery, Status> {
    PathAndQuery::try_from(path).map_err(|_| unknown_method(path))
}

/// A service that cannot be reached: the transport's words (addresses, OS errors) go to
/// the log, the caller reads UNAVAILABLE.
fn unavailable(service: &str, e: tonic::transport::Error) -> Status {
    Error::Unavailable(anyhow::Error::new(e).context(format!("reaching {service}"))).into()
}

/// A forwarded call that failed below gRPC: a reset stream keeps its meaning (a cancel is
/// CANCELLED), anything else means the service could not be reached. Either way the
/// transport's words are logged, not returned.
fn upstream_error(service: &str, e: tonic::transport::Error) -> Status {
    match Status::try_from_error(Box::new(e)) {
        Ok(reset) if reset.code() == tonic::Code::Cancelled => {
            tracing::debug!(service, error = %reset.message(), "a forwarded call was cancelled");
            Error::Cancelled {
                message: "the call was cancelled".into(),
            }
            .into()
        }
        Ok(reset) => Error::Unavailable(anyhow::anyhow!(
            "forwarding to {service}: the stream was reset ({:?}: {})",
            reset.code(),
            reset.message()
        ))
        .into(),
        Err(e) => Error::Unavailable(
            anyhow::Error::from_boxed(e).context(format!("forwarding to {service}")),
        )
        .into(),
    }
}
