//! The caller is a person (issue 25): a token may carry the caller's ESR employee number in
//! the claim `QI_JWT_EMPLOYEE_CLAIM` names; the gateway checks it and passes it on in the
//! signed access context. A token without it reads as before; a malformed one is refused.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use qi_e2e::{LoneGateway, TestSuite, authed};
use qi_platform::access::{ACCESS_HEADER, AccessVerifier};
use qi_platform::server::{self, Component, ServerSettings};
use qi_proto::training as pb;
use qi_proto::training::training_service_client::TrainingServiceClient;
use tonic::Code;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::server::NamedService;

const LIST_COHORTS: &str = "/qi.training.v1.TrainingService/ListCohorts";

fn list_cohorts() -> pb::ListCohortsRequest {
    pb::ListCohortsRequest {
        parent: "sites/BAS".into(),
        ..Default::default()
    }
}

/// A token signed with the suite's secret, with `claim` set to `value` (any JSON).
fn token_with(suite: &TestSuite, claim: &str, value: serde_json::Value) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = serde_json::json!({"sub": "ward-7", "roles": ["viewer"], "sites": ["BAS"],
        "iss": suite.config.jwt.issuer, "aud": suite.config.jwt.audience,
        "exp": now + 600, "iat": now});
    claims[claim] = value;
    let secret = suite.config.jwt.hs256_secret.as_deref().unwrap();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn a_person_reads_as_before_and_a_malformed_employee_number_is_unauthenticated() {
    let suite = TestSuite::start_with(&[("QI_JWT_EMPLOYEE_CLAIM", "esr_number")]).await;
    // The training service verifies a context carrying the number, and one without.
    let person = suite.employee_caller("ward-7", &["viewer"], &["BAS"], "00123456");
    let anyone = suite.caller("ward-7", &["viewer"], &["BAS"]);
    for caller in [&person, &anyone] {
        caller
            .training()
            .list_cohorts(list_cohorts())
            .await
            .unwrap();
    }
    let mut client = TrainingServiceClient::new(suite.channel.clone());
    let integer = token_with(&suite, "esr_number", serde_json::json!(12_345_678));
    client
        .list_cohorts(authed(&integer, list_cohorts()))
        .await
        .unwrap();

    for bad in [
        serde_json::json!("12ab5678"),
        serde_json::json!("1234"),
        serde_json::json!(-12_345_678),
        serde_json::json!({"n": "12345678"}),
    ] {
        let token = token_with(&suite, "esr_number", bad.clone());
        let err = client
            .list_cohorts(authed(&token, list_cohorts()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{bad}: {err:?}");
        assert!(err.message().contains("`esr_number`"), "{bad}: {err:?}");
        let value = bad.as_str().map_or_else(|| bad.to_string(), str::to_owned);
        assert!(
            !err.message().contains(&value),
            "{bad}: the token's value is not echoed: {err:?}"
        );
    }
    // The default claim's name is just another claim under this configuration.
    let elsewhere = token_with(&suite, "employee_number", serde_json::json!("not a number"));
    client
        .list_cohorts(authed(&elsewhere, list_cohorts()))
        .await
        .unwrap();
    suite.stop().await.unwrap();
}

/// A backend standing where the training service would: it keeps the access context of
/// each call it is sent, then refuses the call, so the test reads exactly what the gateway
/// forwarded to a service.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl NamedService for Recorder {
    const NAME: &'static str = "qi.training.v1.TrainingService";
}

impl tonic::codegen::Service<http::Request<Body>> for Recorder {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let context = req
            .headers()
            .get(ACCESS_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        self.0.lock().unwrap().push(context);
        Box::pin(std::future::ready(Ok(tonic::Status::unimplemented(
            "recorded",
        )
        .into_http())))
    }
}

#[tokio::test]
async fn the_gateway_passes_the_employee_number_on_in_the_signed_context() {
    qi_platform::telemetry::init_for_tests();
    let recorder = Recorder::default();
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let backend = listener.local_addr().unwrap();
    let (stop_backend, backend_stopped) = tokio::sync::oneshot::channel::<()>();
    let component = Component {
        name: "recorder",
        routes: tonic::service::Routes::default().add_service(recorder.clone()),
        service_names: vec![Recorder::NAME],
        access: None,
        grpc_web: false,
        health_watch: None,
    };
    let backend_task = tokio::spawn(async move {
        server::serve(
            component,
            listener,
            &ServerSettings::from(&qi_platform::Config::defaults()),
            async {
                let _ = backend_stopped.await;
            },
        )
        .await
    });

    let gateway = LoneGateway::start(&[("QI_TRAINING_URL", &format!("http://{backend}"))]).await;
    let mint = |employee| qi_e2e::mint(&gateway.config, "ward-7", &["viewer"], &["BAS"], employee);
    // One subject with three tokens, twice over: the gateway's cache of signed contexts
    // must never hand one caller's number to another.
    let sent = [None, Some("12345678"), Some("87654321")];
    let mut client = TrainingServiceClient::new(gateway.channel.clone());
    for _ in 0..2 {
        for employee in sent {
            let err = client
                .list_cohorts(authed(&mint(employee), list_cohorts()))
                .await
                .unwrap_err();
            assert_eq!(
                (err.code(), err.message()),
                (Code::Unimplemented, "recorded"),
                "the call reached the backend: {err:?}"
            );
        }
    }
    // Read as a service reads them: verified with the shared key, bound to the method.
    let key = gateway.config.access_keys.current.clone().unwrap();
    let verifier = AccessVerifier::new(&key, None);
    let received: Vec<Option<String>> = recorder
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|context| {
            let ctx = verifier.verify(context, LIST_COHORTS).unwrap();
            assert_eq!(ctx.subject, "ward-7");
            ctx.employee.map(String::from)
        })
        .collect();
    let expected: Vec<Option<String>> = sent
        .iter()
        .chain(&sent)
        .map(|e| e.map(str::to_owned))
        .collect();
    assert_eq!(received, expected);

    gateway.stop().await.unwrap();
    let _ = stop_backend.send(());
    backend_task.await.unwrap().unwrap();
}
