//! The caller is a person (issue 25): a token may carry the caller's ESR employee number in
//! the claim `QI_JWT_EMPLOYEE_CLAIM` names; the gateway checks it and passes it on in the
//! signed access context. A token without it reads as before; a malformed one is refused.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use qi_e2e::training::{EXTRACT_TIME, esr, sync};
use qi_e2e::{TestSuite, authed};
use qi_proto::training as pb;
use qi_proto::training::training_service_client::TrainingServiceClient;
use tonic::Code;

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

#[tokio::test]
async fn the_gateway_passes_the_employee_number_on_to_the_service_it_calls() {
    let suite = TestSuite::start().await;
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let people = [
        esr("12345678", "BAS", "Ames"),
        esr("87654321", "BAS", "Bell"),
    ];
    sync(&hr, pb::SyncMode::Delta, EXTRACT_TIME, &people)
        .await
        .unwrap();
    let mint = |employee| qi_e2e::mint(&suite.config, "ward-7", &["viewer"], &["BAS"], employee);
    let me = || pb::GetStaffRequest {
        name: "staff/me".into(),
    };
    // One subject with three tokens, twice over: the gateway's cache of signed contexts
    // must never hand one caller's number to another. The training service answers
    // `staff/me` from the number in the signed context it verified, so each answer shows
    // what reached it.
    let sent = [None, Some("12345678"), Some("87654321")];
    let mut client = TrainingServiceClient::new(suite.channel.clone());
    let mut received = Vec::new();
    for _ in 0..2 {
        for employee in sent {
            match client.get_staff(authed(&mint(employee), me())).await {
                Ok(answer) => received.push(answer.into_inner().staff.map(|s| s.name)),
                Err(err) => {
                    // Without a number, the service says which claim would carry it.
                    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
                    assert!(err.message().contains("`employee_number`"), "{err:?}");
                    received.push(None);
                }
            }
        }
    }
    let expected: Vec<Option<String>> = sent
        .iter()
        .chain(&sent)
        .map(|e| e.map(|n| format!("staff/{n}")))
        .collect();
    assert_eq!(received, expected);
    suite.stop().await.unwrap();
}
