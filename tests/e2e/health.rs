//! The gateway's health follows the services behind it: one service stopped shows as
//! NOT_SERVING under its name and under `""`, the others and the gateway itself stay
//! SERVING, and all is SERVING again once the service is back on its address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use qi::Role;
use qi_e2e::{authed, random_secret};
use qi_platform::Config;
use qi_platform::server::{self, ServerSettings};
use qi_proto::training as pb;
use qi_proto::training::training_service_client::TrainingServiceClient;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// A component serving on its own listener until told to stop.
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

async fn run(
    component: server::Component,
    addr: SocketAddr,
    settings: &ServerSettings,
) -> (Running, SocketAddr) {
    let listener = server::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let settings = settings.clone();
    let task = tokio::spawn(async move {
        server::serve(component, listener, &settings, async move {
            let _ = stopped.await;
        })
        .await
    });
    (Running { stop, task }, addr)
}

async fn status(channel: &Channel, service: &str) -> ServingStatus {
    let answer = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner();
    ServingStatus::try_from(answer.status).unwrap()
}

/// Waits (boundedly) until the gateway reports `want` for `service`.
async fn until(channel: &Channel, service: &str, want: ServingStatus) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = status(channel, service).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{service:?} stayed {got:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_gateways_health_follows_a_service_going_down_and_coming_back() {
    qi_platform::telemetry::init_for_tests();
    let url = qi_test_kit::database().await.unwrap();
    let secret = random_secret();
    let vars: HashMap<&str, String> = HashMap::from([
        ("QI_DATABASE_URL", url.clone()),
        ("QI_JWT_SECRET", secret.clone()),
        ("QI_ACCESS_KEY", random_secret()),
        ("QI_DB_MAX_CONNECTIONS", "3".into()),
        ("QI_BACKEND_CHECK_INTERVAL_MS", "100".into()),
    ]);
    let config = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let settings = ServerSettings::from(&config);
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));

    let mut pools = HashMap::new();
    let mut services = HashMap::new();
    let mut backends = HashMap::new();
    for service in qi::SERVICES {
        let pool = qi::connect_and_migrate(service.into(), &config, &qi::DatabaseUrls::one(&url))
            .await
            .unwrap();
        let component = qi::service_component(service, &config, pool.clone()).unwrap();
        let name = component.service_names[0];
        let (running, addr) = run(component, loopback, &settings).await;
        backends.insert(name, format!("http://{addr}"));
        services.insert(name, (running, addr, service));
        pools.insert(name, pool);
    }
    let gateway_pool =
        qi::connect_and_migrate(Role::Gateway, &config, &qi::DatabaseUrls::one(&url))
            .await
            .unwrap();
    let (gateway, audit) = qi_gateway::component(&config, &backends, gateway_pool).unwrap();
    let (gateway, gateway_addr) = run(gateway, loopback, &settings).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{gateway_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();

    let training = qi_proto::training::training_service_server::SERVICE_NAME;
    let projects = qi_proto::projects::project_service_server::SERVICE_NAME;
    let own = qi_proto::gateway::gateway_service_server::SERVICE_NAME;
    until(&channel, "", ServingStatus::Serving).await;
    until(&channel, training, ServingStatus::Serving).await;

    // Training goes down.
    let (running, training_addr, service) = services.remove(training).unwrap();
    running.stop().await;
    until(&channel, training, ServingStatus::NotServing).await;
    until(&channel, "", ServingStatus::NotServing).await;
    assert_eq!(status(&channel, projects).await, ServingStatus::Serving);
    assert_eq!(status(&channel, own).await, ServingStatus::Serving);
    // Its calls are answered UNAVAILABLE, not left hanging.
    let token = qi_gateway::auth::mint_dev_token(
        &secret,
        &config.jwt,
        "ward-7",
        &["viewer".into()],
        &["BAS".into()],
        Duration::from_secs(60),
    )
    .unwrap();
    let err = TrainingServiceClient::new(channel.clone())
        .list_cohorts(authed(
            &token,
            pb::ListCohortsRequest {
                parent: "sites/BAS".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");

    // And comes back on its address: the gateway reports the suite serving again.
    let component = qi::service_component(service, &config, pools[training].clone()).unwrap();
    let (running, _) = run(component, training_addr, &settings).await;
    until(&channel, training, ServingStatus::Serving).await;
    until(&channel, "", ServingStatus::Serving).await;

    gateway.stop().await;
    audit.shutdown().await;
    running.stop().await;
    for (running, _, _) in services.into_values() {
        running.stop().await;
    }
}
