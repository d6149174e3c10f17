//! Cross-origin calls from browsers (`QI_CORS_ALLOWED_ORIGINS`): a page served from an allowed
//! origin may call the gateway by gRPC-Web or HTTP/JSON. `tower-http`'s CORS layer writes
//! the headers; this gate decides who gets them:
//!
//! - a request from an allowed origin goes through the CORS layer (a preflight is answered
//!   there; any other call gets `Access-Control-Allow-Origin` and the exposed gRPC headers);
//! - a request from any other origin, or none, goes on untouched: no CORS headers, so the
//!   browser refuses the page the answer;
//! - every `OPTIONS` is unauthenticated traffic: it spends from the client address's budget
//!   (`QI_AUTH_FAILURE_RATE`), and is not a decision, so it is not audited. One that is not
//!   an allowed origin's preflight is refused here, as nothing else serves `OPTIONS`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use prost_reflect::DescriptorPool;
use qi_platform::Error;
use tower::ServiceExt as _;
use tower_http::cors::{AllowOrigin, Cors, CorsLayer};

use crate::proxy::Gateway;
use crate::transcode::status;

/// How long a browser may reuse a preflight's answer (Chromium caps it at two hours): each
/// preflight spends from the client's budget, so a dashboard should not repeat them often.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(3600);

/// The request headers a gRPC-Web client or an HTTP/JSON page sends beyond the simple ones.
const ALLOWED_HEADERS: [&str; 7] = [
    "authorization",
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "traceparent",
    "tracestate",
];

/// What a page must read of a gRPC-Web answer (a trailers-only answer carries its status
/// as headers).
const EXPOSED_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// Puts the gate in front of every route of the gateway.
#[derive(Clone)]
pub(crate) struct CorsGateLayer(Arc<Gate>);

struct Gate {
    allowed: Vec<HeaderValue>,
    cors: CorsLayer,
    gateway: Arc<Gateway>,
    /// Renders refusals as `google.rpc.Status` JSON, as every other HTTP answer.
    descriptors: DescriptorPool,
}

impl CorsGateLayer {
    /// The gate for `origins` (already checked by the config loader).
    pub(crate) fn new(
        origins: &[String],
        gateway: Arc<Gateway>,
        descriptors: DescriptorPool,
    ) -> anyhow::Result<Self> {
        let allowed = origins
            .iter()
            .map(|o| HeaderValue::from_str(o))
            .collect::<Result<Vec<_>, _>>()?;
        let cors = CorsLayer::new()
            .allow_origin(AllowOrigin::list(allowed.clone()))
            .allow_methods([
                http::Method::GET,
                http::Method::POST,
                http::Method::PATCH,
                http::Method::DELETE,
            ])
            .allow_headers(ALLOWED_HEADERS.map(HeaderName::from_static))
            .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
            .max_age(PREFLIGHT_MAX_AGE);
        Ok(CorsGateLayer(Arc::new(Gate {
            allowed,
            cors,
            gateway,
            descriptors,
        })))
    }
}

impl<S: Clone> tower::Layer<S> for CorsGateLayer {
    type Service = CorsGate<S>;

    fn layer(&self, inner: S) -> CorsGate<S> {
        CorsGate {
            cors: self.0.cors.layer(inner.clone()),
            plain: inner,
            gate: self.0.clone(),
        }
    }
}

/// The service of [`CorsGateLayer`].
#[derive(Clone)]
pub(crate) struct CorsGate<S> {
    cors: Cors<S>,
    plain: S,
    gate: Arc<Gate>,
}

impl<S, B, RB> tower::Service<http::Request<B>> for CorsGate<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    RB: Default + From<Bytes> + Send + 'static,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.plain.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let allowed = req
            .headers()
            .get(header::ORIGIN)
            .is_some_and(|o| self.gate.allowed.contains(o));
        if req.method() == http::Method::OPTIONS {
            if let Err(wait) = self.gate.gateway.spend_unauthenticated(&req) {
                let status: tonic::Status = Error::ResourceExhausted {
                    message: "too many unauthenticated requests from this address; retry later"
                        .into(),
                    retry_after: Some(wait.max(Duration::from_millis(1))),
                }
                .into();
                return self.refuse(&status);
            }
            let preflight = req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
            if !(allowed && preflight) {
                return self.refuse(
                    &Error::denied(
                        "OPTIONS is answered only as the CORS preflight of an allowed origin \
                     (QI_CORS_ALLOWED_ORIGINS)",
                    )
                    .into(),
                );
            }
        }
        if allowed {
            Box::pin(self.cors.clone().oneshot(req))
        } else {
            // The instance polled ready takes the call; a clone stays for the next.
            let mut plain = self.plain.clone();
            std::mem::swap(&mut plain, &mut self.plain);
            Box::pin(plain.call(req))
        }
    }
}

impl<S> CorsGate<S> {
    fn refuse<RB: From<Bytes> + Send + 'static, E: Send + 'static>(
        &self,
        status: &tonic::Status,
    ) -> Pin<Box<dyn Future<Output = Result<http::Response<RB>, E>> + Send>> {
        let mut out = http::Response::new(RB::from(Bytes::from(status::json(
            &self.gate.descriptors,
            status,
        ))));
        *out.status_mut() = status::http_status(status.code());
        out.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Box::pin(std::future::ready(Ok(out)))
    }
}
