//! The gateway's access rules (the shared design's access model, summarised in the README's Access section) as a client meets them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use prost_reflect::DescriptorPool;
use qi_e2e::{TestSuite, authed};
use qi_proto::google::r#type::Date;
use qi_proto::training as pb;
use qi_proto::training::training_service_client::TrainingServiceClient;
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;
use tonic_types::StatusExt as _;

fn cohort_request(parent: &str) -> pb::CreateCohortRequest {
    pb::CreateCohortRequest {
        parent: parent.into(),
        cohort_id: String::new(),
        cohort: Some(pb::Cohort {
            course: "trust/courses/qsir-prac".into(),
            display_name: "QSIR Practitioner, spring 2027".into(),
            start_date: Some(Date {
                year: 2027,
                month: 3,
                day: 4,
            }),
            capacity: 24,
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

async fn create(
    client: &mut TrainingServiceClient<tonic::transport::Channel>,
    token: &str,
    parent: &str,
) -> Result<pb::Cohort, tonic::Status> {
    client
        .create_cohort(authed(token, cohort_request(parent)))
        .await
        .map(|r| r.into_inner().cohort.expect("a cohort"))
}

async fn list(
    client: &mut TrainingServiceClient<tonic::transport::Channel>,
    token: &str,
    parent: &str,
) -> Result<Vec<String>, tonic::Status> {
    let resp = client
        .list_cohorts(authed(
            token,
            pb::ListCohortsRequest {
                parent: parent.into(),
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    Ok(resp.cohorts.into_iter().map(|c| c.name).collect())
}

#[tokio::test]
async fn every_rpc_of_the_contract_refuses_a_call_without_a_token() {
    let suite = TestSuite::start().await;
    let pool = DescriptorPool::decode(qi_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut checked = 0;
    for service in pool.services().filter(|s| s.full_name().starts_with("qi.")) {
        for method in service.methods() {
            let path = format!("/{}/{}", service.full_name(), method.name());
            let mut grpc = tonic::client::Grpc::new(suite.channel.clone());
            grpc.ready().await.unwrap();
            let status = grpc
                .unary::<Bytes, Bytes, _>(
                    tonic::Request::new(Bytes::new()),
                    PathAndQuery::try_from(path.as_str()).unwrap(),
                    qi_platform::codec::BytesCodec,
                )
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::Unauthenticated, "{path}: {status:?}");
            // The gateway's own refusals carry the ErrorInfo every service error carries.
            let info = status.get_details_error_info().expect("an ErrorInfo");
            assert_eq!(
                (info.domain.as_str(), info.reason.as_str()),
                ("qi", "UNAUTHENTICATED")
            );
            checked += 1;
        }
    }
    assert!(checked >= 12, "only {checked} methods found");
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_site_token_schedules_and_sees_only_its_own_sites_cohorts() {
    let suite = TestSuite::start().await;
    let mut client = TrainingServiceClient::new(suite.channel.clone());
    let bas = suite.token("bas-lead", &["improvement_team"], &["BAS"]);
    let trust = suite.token("qi-office", &["improvement_team"], &["*"]);

    let own = create(&mut client, &bas, "sites/BAS").await.unwrap();
    assert!(own.name.starts_with("sites/BAS/cohorts/"), "{}", own.name);
    let refused = create(&mut client, &bas, "sites/BRM").await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let other = create(&mut client, &trust, "sites/BRM").await.unwrap();

    assert_eq!(
        list(&mut client, &bas, "sites/-").await.unwrap(),
        std::slice::from_ref(&own.name)
    );
    assert_eq!(
        list(&mut client, &bas, "sites/BAS").await.unwrap(),
        std::slice::from_ref(&own.name)
    );
    assert_eq!(
        list(&mut client, &bas, "sites/BRM")
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let mut everything = list(&mut client, &trust, "sites/-").await.unwrap();
    everything.sort();
    let mut expected = vec![own.name.clone(), other.name.clone()];
    expected.sort();
    assert_eq!(everything, expected);

    // Another site's cohort is refused whether or not it exists.
    for name in [
        other.name.clone(),
        "sites/BRM/cohorts/no-such-cohort".to_owned(),
    ] {
        let err = client
            .get_cohort(authed(&bas, pb::GetCohortRequest { name: name.clone() }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{name}");
    }
    // A name whose site is not where the cohort lives is not found, even trust-wide.
    let id = own.name.rsplit('/').next().unwrap();
    let err = client
        .get_cohort(authed(
            &trust,
            pb::GetCohortRequest {
                name: format!("sites/BRM/cohorts/{id}"),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn trust_wide_resources_are_readable_by_all_and_written_only_trust_wide() {
    let suite = TestSuite::start().await;
    let mut client = TrainingServiceClient::new(suite.channel.clone());
    let bas = suite.token("bas-lead", &["improvement_team"], &["BAS"]);
    let trust = suite.token("qi-office", &["improvement_team"], &["*"]);
    let err = create(&mut client, &bas, "trust").await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let cross_site = create(&mut client, &trust, "trust").await.unwrap();
    assert!(cross_site.name.starts_with("trust/cohorts/"));
    assert_eq!(
        list(&mut client, &bas, "trust").await.unwrap(),
        [cross_site.name]
    );
    // Trust-wide cohorts are not among any site's.
    assert!(list(&mut client, &bas, "sites/-").await.unwrap().is_empty());

    // The catalogue: admins only, and only trust-wide ones.
    let course = pb::CreateCourseRequest {
        parent: "trust".into(),
        course_id: "qsir-lead".into(),
        course: Some(pb::Course {
            code: "QSIR-LEAD".into(),
            display_name: "QSIR for leaders".into(),
            session_count: 2,
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let site_admin = suite.token("bas-admin", &["admin"], &["BAS"]);
    for token in [&trust, &site_admin] {
        let err = client
            .create_course(authed(token, course.clone()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
    }
    let admin = suite.token("admin", &["admin"], &["*"]);
    let made = client
        .create_course(authed(&admin, course))
        .await
        .unwrap()
        .into_inner()
        .course
        .unwrap();
    assert_eq!(made.name, "trust/courses/qsir-lead");
    let viewer = suite.token("ward-7", &["viewer"], &["SOU"]);
    let listed = client
        .list_courses(authed(
            &viewer,
            pb::ListCoursesRequest {
                parent: "trust".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let codes: Vec<_> = listed.courses.iter().map(|c| c.code.as_str()).collect();
    assert_eq!(codes, ["QSIR-FUND", "QSIR-LEAD", "QSIR-PRAC"]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn roles_decide_what_a_caller_may_do() {
    let suite = TestSuite::start().await;
    let mut client = TrainingServiceClient::new(suite.channel.clone());
    let viewer = suite.token("ward-7", &["viewer"], &["BAS"]);
    let hr = suite.token("esr-sync", &["hr_sync"], &["*"]);
    assert_eq!(
        create(&mut client, &viewer, "sites/BAS")
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    assert!(list(&mut client, &viewer, "sites/BAS").await.is_ok());
    // HR's sync account does nothing but sync.
    assert_eq!(
        list(&mut client, &hr, "sites/BAS")
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    suite.stop().await.unwrap();
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn bad_tokens_are_unauthenticated_and_good_ones_from_a_jwks_file_pass() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    // The key starts under another kid: the one our tokens name is rolled out later.
    let published = std::fs::read_to_string(format!("{fixtures}/jwks.json")).unwrap();
    let jwks_file = std::env::temp_dir().join(format!("qi-jwks-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&jwks_file, published.replace("test-es256", "retired")).unwrap();
    let jwks = jwks_file.display().to_string();
    let suite = TestSuite::start_with(&[("QI_JWKS_FILE", jwks.as_str())]).await;
    let mut client = TrainingServiceClient::new(suite.channel.clone());
    let pem = std::fs::read_to_string(format!("{fixtures}/es256-test-key.pem")).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body).unwrap();
    let key = EncodingKey::from_ec_der(&der);
    let sign = |kid: &str, claims: serde_json::Value| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    };
    let claims = |exp: u64, aud: &str| {
        serde_json::json!({"sub": "bi-tool", "roles": ["viewer"], "sites": ["BAS"],
            "iss": "qi-dev", "aud": aud, "exp": exp, "iat": exp - 600})
    };
    let good = sign("test-es256", claims(now() + 600, "qi"));
    assert_eq!(
        list(&mut client, &good, "sites/BAS")
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated,
        "not yet published"
    );
    // Rotation: the new key is published in the file; the gateway picks it up, no restart.
    std::fs::write(&jwks_file, &published).unwrap();
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert!(list(&mut client, &good, "sites/BAS").await.is_ok());

    let hs = suite.token("x", &["viewer"], &["BAS"]);
    let mut tampered = hs.clone();
    tampered.pop();
    tampered.push(if hs.ends_with('A') { 'B' } else { 'A' });
    let expired = sign("test-es256", claims(now() - 3600, "qi"));
    let wrong_aud = sign("test-es256", claims(now() + 600, "elsewhere"));
    let unknown_kid = sign("other", claims(now() + 600, "qi"));
    let mut no_iat = claims(now() + 600, "qi");
    no_iat.as_object_mut().unwrap().remove("iat");
    let no_iat = sign("test-es256", no_iat);
    let mut a_year = claims(now() + 600, "qi");
    a_year["iat"] = serde_json::json!(now() - 365 * 86_400);
    let a_year = sign("test-es256", a_year);
    for (what, token) in [
        // A development token, good beside no JWKS, is refused where a JWKS is configured.
        ("HS256 beside a JWKS", hs.clone()),
        ("no iat", no_iat),
        ("a lifetime over 24 h", a_year),
        ("tampered", tampered),
        ("expired", expired),
        ("wrong audience", wrong_aud),
        ("unknown kid", unknown_kid),
        ("not a jwt", "hello".to_owned()),
    ] {
        let err = list(&mut client, &token, "sites/BAS").await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{what}");
    }
    std::fs::remove_file(&jwks_file).ok();
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_client_cannot_pass_its_own_access_context_to_the_services() {
    let suite = TestSuite::start().await;
    let mut client = TrainingServiceClient::new(suite.channel.clone());
    let trust = suite.token("qi-office", &["improvement_team"], &["*"]);
    create(&mut client, &trust, "sites/BRM").await.unwrap();
    // A forged context signed with a guessed key claims trust-wide access.
    let forged = qi_platform::access::AccessSigner::new("guess", Duration::from_secs(60))
        .sign(&qi_platform::AccessContext {
            subject: "intruder".into(),
            roles: vec!["admin".into()],
            sites: qi_platform::SiteScope::TrustWide,
            method: "/qi.training.v1.TrainingService/ListCohorts".into(),
            employee: None,
            employee_claim: Default::default(),
            token_expiry: None,
        })
        .unwrap();
    let bas = suite.token("bas-nurse", &["viewer"], &["BAS"]);
    let mut req = authed(
        &bas,
        pb::ListCohortsRequest {
            parent: "sites/-".into(),
            ..Default::default()
        },
    );
    req.metadata_mut()
        .insert(qi_platform::access::ACCESS_HEADER, forged.parse().unwrap());
    let seen = client.list_cohorts(req).await.unwrap().into_inner().cohorts;
    assert!(
        seen.is_empty(),
        "the forged context widened the scope: {seen:?}"
    );
    suite.stop().await.unwrap();
}
