//! A client discovers the whole suite from the gateway's one address, without a token.

use qi_e2e::TestSuite;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

#[tokio::test]
async fn health_through_the_gateway_is_serving_for_the_suite_and_each_service() {
    let suite = TestSuite::start().await;
    let mut health = HealthClient::new(suite.channel.clone());
    for service in [
        "",
        "qi.training.v1.TrainingService",
        "qi.projects.v1.ProjectService",
        "qi.metrics.v1.MetricService",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("health of {service:?}: {e}"))
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "qi.nothing.v1.Nothing".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn reflection_through_the_gateway_lists_the_services_the_read_model_and_health() {
    let suite = TestSuite::start().await;
    let mut reflection = ServerReflectionClient::new(suite.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list, got {response:?}")
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "grpc.health.v1.Health",
            "qi.gateway.v1.GatewayService",
            "qi.insights.v1.InsightsService",
            "qi.metrics.v1.MetricService",
            "qi.projects.v1.ProjectService",
            "qi.training.v1.TrainingService",
        ]
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn qi_seed_creates_the_reference_trust_once() {
    use qi_e2e::authed;
    use qi_proto::projects as pj;
    use qi_proto::projects::project_service_client::ProjectServiceClient;
    let suite = TestSuite::start().await;
    let admin = suite.token("seeder", &["admin"], &["*"]);
    let gateway = format!("http://{}", suite.addr);
    let first = qi::seed::reference_trust(&gateway, &admin).await.unwrap();
    assert_eq!((first.created, first.existing), (63, 0));
    let again = qi::seed::reference_trust(&gateway, &admin).await.unwrap();
    assert_eq!((again.created, again.existing), (0, 63));
    let viewer = suite.token("board", &["viewer"], &["*"]);
    let mut projects = ProjectServiceClient::new(suite.channel.clone());
    let wards = projects
        .list_wards(authed(
            &viewer,
            pj::ListWardsRequest {
                parent: "sites/-".into(),
                page_size: 500,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(wards.wards.len(), 60);
    suite.stop().await.unwrap();
}
