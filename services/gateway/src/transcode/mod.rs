//! HTTP/JSON at the gateway (issue 35): each RPC's `google.api.http` rule (AIP-127), read
//! from the compiled contracts, maps an HTTP request onto the RPC. The request is read into
//! the RPC's message ([`request`]), framed as a gRPC call carrying the same headers, and
//! handed to [`Gateway::handle`] like any gRPC call, so authentication, the access policy,
//! site checks, audit, rate limits and deadlines are the same code path. The answer comes
//! back as the proto3 JSON mapping (lowerCamelCase, enums by name, 64-bit integers as
//! strings), an error as `google.rpc.Status` JSON with the HTTP status its code maps to
//! ([`status`]), a server stream as newline-delimited JSON.
//!
//! Nothing here is written per method: the routes, the fields and the JSON all come from
//! the descriptors, through prost-reflect's serde support (DESIGN.md's one JSON mapping).

mod openapi;
mod request;
pub(crate) mod status;
mod template;

use std::sync::Arc;

use bytes::{Buf as _, Bytes, BytesMut};
use http_body_util::BodyExt as _;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, SerializeOptions, Value};
use qi_platform::Error;
use qi_proto::google::api::HttpRule;
use qi_proto::google::api::http_rule::Pattern;
use tonic::body::Body;

use crate::proxy::Gateway;
use template::Template;

/// The largest JSON body read (the gRPC message limit's worth).
const MAX_BODY: usize = qi_platform::server::MAX_MESSAGE_BYTES;

/// One HTTP binding of an RPC.
#[derive(Debug)]
struct Route {
    verb: http::Method,
    template: Template,
    /// The template as the rule writes it.
    template_text: String,
    /// `""`, `"*"` or the request field the body holds.
    body: String,
    rpc: MethodDescriptor,
    /// `/qi.projects.v1.ProjectService/GetProject`.
    path: String,
}

impl Route {
    /// The request's top-level fields the path binds.
    fn bound_fields(&self) -> Vec<String> {
        self.template
            .fields()
            .map(|f| f.split('.').next().unwrap_or(f).to_owned())
            .collect()
    }
}

/// The gateway's HTTP/JSON face.
#[derive(Debug, Clone)]
pub(crate) struct Transcoder {
    gateway: Arc<Gateway>,
    pool: DescriptorPool,
    routes: Arc<[Route]>,
    /// `/openapi.json`, made once.
    openapi: Bytes,
}

/// The HTTP bindings of every `qi.*` RPC with a rule in `pool`, the most literal first
/// (`/v1/sites` before `/v1/{name=*}`).
fn routes(pool: &DescriptorPool) -> anyhow::Result<Vec<Route>> {
    let ext = pool
        .get_extension_by_name("google.api.http")
        .ok_or_else(|| anyhow::anyhow!("the contracts lack google.api.http"))?;
    let mut routes = Vec::new();
    for service in pool
        .services()
        .filter(|s| s.package_name().starts_with("qi."))
    {
        for rpc in service.methods().filter(|m| !m.is_client_streaming()) {
            let options = rpc.options();
            if !options.has_extension(&ext) {
                continue;
            }
            let Value::Message(m) = options.get_extension(&ext).into_owned() else {
                continue;
            };
            let rule: HttpRule = m.transcode_to()?;
            let path = format!("/{}/{}", service.full_name(), rpc.name());
            for binding in std::iter::once(&rule).chain(&rule.additional_bindings) {
                let (verb, template) = match binding.pattern.as_ref() {
                    Some(Pattern::Get(p)) => (http::Method::GET, p),
                    Some(Pattern::Post(p)) => (http::Method::POST, p),
                    Some(Pattern::Put(p)) => (http::Method::PUT, p),
                    Some(Pattern::Patch(p)) => (http::Method::PATCH, p),
                    Some(Pattern::Delete(p)) => (http::Method::DELETE, p),
                    Some(Pattern::Custom(c)) => (c.kind.parse()?, &c.path),
                    None => continue,
                };
                routes.push(Route {
                    verb,
                    template: Template::parse(template).map_err(anyhow::Error::msg)?,
                    template_text: template.clone(),
                    body: binding.body.clone(),
                    rpc: rpc.clone(),
                    path: path.clone(),
                });
            }
        }
    }
    routes.sort_by_key(|r| std::cmp::Reverse(r.template.literals()));
    Ok(routes)
}

/// The OpenAPI document of the contracts' HTTP/JSON face, as `/openapi.json` serves it.
pub fn openapi_document() -> anyhow::Result<Vec<u8>> {
    let pool = DescriptorPool::decode(qi_proto::FILE_DESCRIPTOR_SET)?;
    let routes = routes(&pool)?;
    Ok(serde_json::to_vec_pretty(&openapi::document(
        &pool, &routes,
    ))?)
}

/// A message as JSON: the proto3 mapping, with 64-bit integers as strings.
pub(crate) fn to_json(message: &DynamicMessage) -> Result<Vec<u8>, serde_json::Error> {
    let options = SerializeOptions::new().stringify_64_bit_integers(true);
    let mut out = Vec::new();
    message.serialize_with_options(&mut serde_json::Serializer::new(&mut out), &options)?;
    Ok(out)
}

impl Transcoder {
    /// The routes of every `qi.*` RPC with a rule in `pool`, forwarded through `gateway`.
    pub(crate) fn new(gateway: Arc<Gateway>, pool: DescriptorPool) -> anyhow::Result<Self> {
        let routes = routes(&pool)?;
        let openapi = Bytes::from(serde_json::to_vec(&openapi::document(&pool, &routes))?);
        Ok(Transcoder {
            gateway,
            pool,
            routes: routes.into(),
            openapi,
        })
    }

    /// Answers one HTTP request.
    pub(crate) async fn call<B>(&self, req: http::Request<B>) -> http::Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match self.transcode(req).await {
            Ok(answer) => answer,
            Err(status) => status::response(&self.pool, &status),
        }
    }

    async fn transcode<B>(
        &self,
        req: http::Request<B>,
    ) -> Result<http::Response<Body>, tonic::Status>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = req.into_parts();
        if parts.uri.path() == "/openapi.json" && parts.method == http::Method::GET {
            return Ok(json_response(self.openapi.clone()));
        }
        let Some((segments, verb)) = template::split(parts.uri.path()) else {
            return Err(not_found(parts.uri.path()));
        };
        let mut found = None;
        let mut other_verb = false;
        for route in self.routes.iter() {
            if let Some(bindings) = route.template.matches(&segments, verb.as_deref()) {
                if route.verb == parts.method {
                    found = Some((route, bindings));
                    break;
                }
                other_verb = true;
            }
        }
        let Some((route, bindings)) = found else {
            return Err(if other_verb {
                tonic::Status::unimplemented(format!(
                    "{} does not take {}",
                    parts.uri.path(),
                    parts.method
                ))
            } else {
                not_found(parts.uri.path())
            });
        };
        let body = http_body_util::Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|e| {
                tonic::Status::from(Error::invalid("body", format!("could not be read: {e}")))
            })?
            .to_bytes();
        let message = request::read(
            &route.rpc.input(),
            &route.body,
            &body,
            &bindings,
            parts.uri.query(),
        )?;
        let grpc = grpc_request(&parts, &route.path, &message.encode_to_vec())?;
        let answer = self.gateway.clone().handle(grpc).await;
        if route.rpc.is_server_streaming() {
            Ok(self.stream(route.rpc.output(), answer))
        } else {
            self.unary(route.rpc.output(), answer).await
        }
    }

    /// A unary call's answer: its message as JSON, or its status.
    async fn unary(
        &self,
        output: prost_reflect::MessageDescriptor,
        answer: http::Response<Body>,
    ) -> Result<http::Response<Body>, tonic::Status> {
        let (parts, body) = answer.into_parts();
        if let Some(status) = tonic::Status::from_header_map(&parts.headers)
            && status.code() != tonic::Code::Ok
        {
            return Err(status);
        }
        let collected = body
            .collect()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("the answer broke off: {e}")))?;
        if let Some(status) = collected
            .trailers()
            .and_then(tonic::Status::from_header_map)
            .filter(|s| s.code() != tonic::Code::Ok)
        {
            return Err(status);
        }
        let mut data = collected.to_bytes();
        let message = next_frame(&mut data)
            .ok_or_else(|| tonic::Status::internal("the service answered no message"))?;
        let decoded = DynamicMessage::decode(output, message)
            .map_err(|e| tonic::Status::internal(format!("an undecodable answer: {e}")))?;
        let json = to_json(&decoded).map_err(|e| tonic::Status::internal(e.to_string()))?;
        Ok(json_response(Bytes::from(json)))
    }

    /// A server stream's answer: each message as a line of JSON as it comes, and a failure
    /// as a last line `{"error": {google.rpc.Status}}` (the HTTP status is sent already).
    fn stream(
        &self,
        output: prost_reflect::MessageDescriptor,
        answer: http::Response<Body>,
    ) -> http::Response<Body> {
        let (parts, body) = answer.into_parts();
        if let Some(status) = tonic::Status::from_header_map(&parts.headers)
            && status.code() != tonic::Code::Ok
        {
            return status::response(&self.pool, &status);
        }
        // A task relays the lines; when the client goes, its send fails and the upstream
        // call is dropped with it.
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(relay(body, output, self.pool.clone(), tx));
        let lines = tokio_stream::wrappers::ReceiverStream::new(rx);
        let mut out = http::Response::new(Body::new(http_body_util::StreamBody::new(lines)));
        out.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-ndjson"),
        );
        out
    }
}

impl<B> tower::Service<http::Request<B>> for Transcoder
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            // A gRPC call of a service the gateway does not serve is answered in gRPC.
            let grpc = req
                .headers()
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
            if grpc {
                let path = req.uri().path().to_owned();
                return Ok(crate::proxy::unknown_method(&path).into_http());
            }
            Ok(this.call(req).await)
        })
    }
}

/// A server stream's line of JSON, as a body frame.
type Line = Result<http_body::Frame<Bytes>, tonic::Status>;

/// Relays a server stream's messages to `tx` as lines of JSON, then its failure, if any, as
/// a last line.
async fn relay(
    mut body: Body,
    output: prost_reflect::MessageDescriptor,
    pool: DescriptorPool,
    tx: tokio::sync::mpsc::Sender<Line>,
) {
    let line = |json: Vec<u8>| {
        let mut j = json;
        j.push(b'\n');
        Ok(http_body::Frame::data(Bytes::from(j)))
    };
    let error = |status: &tonic::Status| {
        let mut j = b"{\"error\":".to_vec();
        j.extend(status::json(&pool, status));
        j.push(b'}');
        line(j)
    };
    let mut buf = BytesMut::new();
    loop {
        while let Some(message) = next_frame_mut(&mut buf) {
            let json = DynamicMessage::decode(output.clone(), message)
                .map_err(|e| tonic::Status::internal(format!("an undecodable answer: {e}")))
                .and_then(|m| to_json(&m).map_err(|e| tonic::Status::internal(e.to_string())));
            let sent = match json {
                Ok(json) => tx.send(line(json)).await,
                Err(status) => tx.send(error(&status)).await,
            };
            if sent.is_err() {
                return;
            }
        }
        match body.frame().await {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => buf.extend_from_slice(&data),
                Err(frame) => {
                    if let Some(status) = frame
                        .trailers_ref()
                        .and_then(tonic::Status::from_header_map)
                        .filter(|s| s.code() != tonic::Code::Ok)
                    {
                        let _ = tx.send(error(&status)).await;
                    }
                    return;
                }
            },
            Some(Err(e)) => {
                let status = tonic::Status::unavailable(format!("the stream broke off: {e}"));
                let _ = tx.send(error(&status)).await;
                return;
            }
            None => return,
        }
    }
}

/// The gRPC call an HTTP request makes: `path`, `message` framed, and the request's own
/// headers (the bearer token, trace context, forwarding and deadline headers) and
/// extensions (the connection's address).
fn grpc_request(
    parts: &http::request::Parts,
    path: &str,
    message: &[u8],
) -> Result<http::Request<Body>, tonic::Status> {
    let mut framed = BytesMut::with_capacity(message.len() + 5);
    framed.extend_from_slice(&[0]);
    framed.extend_from_slice(
        &u32::try_from(message.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    framed.extend_from_slice(message);
    let mut req = http::Request::new(Body::new(http_body_util::Full::new(framed.freeze())));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = path
        .parse()
        .map_err(|_| tonic::Status::internal("an unroutable method"))?;
    *req.version_mut() = http::Version::HTTP_2;
    for name in [
        http::header::AUTHORIZATION,
        http::header::USER_AGENT,
        http::HeaderName::from_static("traceparent"),
        http::HeaderName::from_static("tracestate"),
        http::HeaderName::from_static("x-forwarded-for"),
        http::HeaderName::from_static("grpc-timeout"),
    ] {
        if let Some(v) = parts.headers.get(&name) {
            req.headers_mut().insert(name, v.clone());
        }
    }
    req.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    req.headers_mut()
        .insert(http::header::TE, http::HeaderValue::from_static("trailers"));
    *req.extensions_mut() = parts.extensions.clone();
    Ok(req)
}

/// The next whole message of a gRPC body, its prefix taken off.
fn next_frame(data: &mut Bytes) -> Option<Bytes> {
    if data.len() < 5 {
        return None;
    }
    let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
    if data.len() < 5 + len {
        return None;
    }
    data.advance(5);
    Some(data.split_to(len))
}

/// The same, from a buffer still filling.
fn next_frame_mut(buf: &mut BytesMut) -> Option<Bytes> {
    if buf.len() < 5 {
        return None;
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if buf.len() < 5 + len {
        return None;
    }
    buf.advance(5);
    Some(buf.split_to(len).freeze())
}

fn json_response(json: Bytes) -> http::Response<Body> {
    let mut out = http::Response::new(Body::new(http_body_util::Full::new(json)));
    out.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    out
}

fn not_found(path: &str) -> tonic::Status {
    tonic::Status::not_found(format!(
        "no method is at {}",
        qi_platform::names::clip(path)
    ))
}
