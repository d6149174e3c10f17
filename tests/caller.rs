//! A caller of the gateway: a bearer token and a client of each service that sends it on
//! every call; and what the tests read from an answer (its code, the fields it names).

use qi_proto::gateway::gateway_service_client::GatewayServiceClient;
use qi_proto::insights::insights_service_client::InsightsServiceClient;
use qi_proto::metrics::metric_service_client::MetricServiceClient;
use qi_proto::projects::project_service_client::ProjectServiceClient;
use qi_proto::training::training_service_client::TrainingServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt as _;

/// The channel of a [`Caller`]'s clients: the gateway's, adding the caller's token.
pub type Authed = InterceptedService<Channel, Bearer>;

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Debug, Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// One caller with its token, as [`crate::TestSuite::caller`] mints it.
#[derive(Debug, Clone)]
pub struct Caller {
    channel: Channel,
    token: String,
    bearer: Bearer,
}

impl Caller {
    /// A caller sending `token` over `channel`.
    pub fn new(channel: Channel, token: &str) -> Caller {
        let bearer = format!("Bearer {token}").parse().expect("a token is ASCII");
        Caller {
            channel,
            token: token.to_owned(),
            bearer: Bearer(bearer),
        }
    }

    /// The caller's token, for requests built by hand.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// A training client.
    pub fn training(&self) -> TrainingServiceClient<Authed> {
        TrainingServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    /// A projects client.
    pub fn projects(&self) -> ProjectServiceClient<Authed> {
        ProjectServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    /// A metrics client.
    pub fn metrics(&self) -> MetricServiceClient<Authed> {
        MetricServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    /// The read model's client, through the gateway.
    pub fn insights(&self) -> InsightsServiceClient<Authed> {
        InsightsServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    /// A client of the gateway's own service.
    pub fn gateway(&self) -> GatewayServiceClient<Authed> {
        GatewayServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }
}

/// A request carrying a bearer token (for clients without one, and raw calls).
pub fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut req = Request::new(message);
    if let Ok(v) = format!("Bearer {token}").parse() {
        req.metadata_mut().insert("authorization", v);
    }
    req
}

/// The fields a refusal names, asserting it is INVALID_ARGUMENT.
pub fn fields(s: &Status) -> Vec<String> {
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    s.get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|f| f.field).collect())
        .unwrap_or_default()
}

/// The code of an answer: `OK`, or the refusal's.
pub fn code<T>(r: Result<T, Status>) -> Code {
    r.err().map_or(Code::Ok, |s| s.code())
}
