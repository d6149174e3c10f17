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

/// An internal consumer (the read model, another service) follows a feed straight from the
/// service, with a trust-wide context it signs naming itself (`qi watch --as`): it sees every
/// site's changes; without the key it is refused.
#[tokio::test]
async fn an_internal_consumer_follows_a_feed_straight_from_the_service() {
    use qi_proto::projects as ppb;
    use qi_proto::projects::project_service_client::ProjectServiceClient;
    let service = LoneService::start(Service::Projects).await;
    let signer = AccessSigner::new(&service.key, Duration::from_secs(60));
    let mut client = ProjectServiceClient::new(service.channel.clone());
    for site in ["BAS", "SOU"] {
        let ctx = AccessContext {
            subject: "team".into(),
            roles: vec!["improvement_team".into()],
            sites: SiteScope::TrustWide,
            method: "/qi.projects.v1.ProjectService/CreateIdea".into(),
            employee: None,
            employee_claim: Default::default(),
            token_expiry: None,
        };
        let mut req = tonic::Request::new(ppb::CreateIdeaRequest {
            parent: format!("sites/{site}"),
            idea: Some(ppb::Idea {
                title: format!("An idea at {site}"),
                submitter: "A. Nurse".into(),
                theme: "Patient flow".into(),
                ..Default::default()
            }),
            ..Default::default()
        });
        req.metadata_mut()
            .insert(ACCESS_HEADER, signer.sign(&ctx).unwrap().parse().unwrap());
        client.create_idea(req).await.unwrap();
    }
    let args = |key: &str| qi::watch::WatchArgs {
        service: "projects".into(),
        gateway: String::new(),
        token: None,
        token_command: None,
        from: None,
        cursor_file: None,
        now: false,
        collections: vec!["ideas".into()],
        until_caught_up: true,
        internal: Some(qi::watch::Internal {
            service_url: format!("http://{}", service.addr),
            name: "insights".into(),
            key: key.into(),
        }),
    };
    let mut out = Vec::new();
    qi::watch::run(&args(&service.key), &mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("An idea at BAS") && text.contains("An idea at SOU"),
        "{text}"
    );
    let err = qi::watch::run(
        &args("not-the-key-not-the-key-not-the-key"),
        &mut Vec::new(),
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("Unauthenticated"), "{err:#}");
    service.stop().await.unwrap();
}
