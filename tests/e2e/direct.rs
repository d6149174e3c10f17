//! Services trust only the gateway: a call straight to a service needs a valid access
//! context, and all three services migrate one database side by side.

use std::time::Duration;

use qi::{Role, Service};
use qi_e2e::LoneService;
use qi_platform::access::{ACCESS_HEADER, AccessSigner};
use qi_platform::{AccessContext, Config, SiteScope};
use qi_proto::training as pb;
use qi_proto::training::training_service_client::TrainingServiceClient;
use tonic::Code;

#[tokio::test]
async fn a_service_refuses_calls_without_a_valid_access_context() {
    let service = LoneService::start(Service::Training).await;
    let key = service.key.clone();
    let mut client = TrainingServiceClient::new(service.channel.clone());
    let list = || pb::ListCoursesRequest {
        parent: "trust".into(),
        ..Default::default()
    };
    let method = "/qi.training.v1.TrainingService/ListCourses";
    let ctx = |method: &str| AccessContext {
        subject: "t".into(),
        roles: vec!["viewer".into()],
        sites: SiteScope::TrustWide,
        method: method.into(),
        employee: None,
        employee_claim: Default::default(),
        token_expiry: None,
    };
    let with = |token: String| {
        let mut req = tonic::Request::new(list());
        req.metadata_mut()
            .insert(ACCESS_HEADER, token.parse().unwrap());
        req
    };
    let err = client.list_courses(list()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let wrong_key = AccessSigner::new("not-the-key", Duration::from_secs(60))
        .sign(&ctx(method))
        .unwrap();
    assert_eq!(
        client
            .list_courses(with(wrong_key))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let signer = AccessSigner::new(&key, Duration::from_secs(60));
    let other_method = signer
        .sign(&ctx("/qi.training.v1.TrainingService/CreateCourse"))
        .unwrap();
    assert_eq!(
        client
            .list_courses(with(other_method))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let good = signer.sign(&ctx(method)).unwrap();
    let courses = client
        .list_courses(with(good))
        .await
        .unwrap()
        .into_inner()
        .courses;
    assert_eq!(courses.len(), 2, "the default QSIR courses");
    service.stop().await.unwrap();
}

#[tokio::test]
async fn each_service_keeps_its_migrations_in_its_own_schema() {
    qi_platform::telemetry::init_for_tests();
    let url = qi_test_kit::database().await.unwrap();
    let config = Config::defaults();
    let urls = qi::DatabaseUrls::one(&url);
    // All three at once against one database, as `qi up` and a rollout do.
    let (a, b, c) = tokio::join!(
        qi::connect_and_migrate(Role::Training, &config, &urls),
        qi::connect_and_migrate(Role::Projects, &config, &urls),
        qi::connect_and_migrate(Role::Metrics, &config, &urls),
    );
    let pool = a.unwrap();
    b.unwrap();
    c.unwrap();
    // Running them again changes nothing.
    qi::migrate(
        &qi::SERVICES.map(Role::from),
        &Config::from_lookup(|k| (k == "QI_DATABASE_URL").then(|| url.clone())).unwrap(),
    )
    .await
    .unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_schema FROM information_schema.tables
         WHERE table_name = '_sqlx_migrations' ORDER BY table_schema",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(tables, ["metrics", "projects", "training"]);
}
