//! The staff register, as HR's sync keeps it, is seen only within the caller's sites.

use qi_e2e::TestSuite;
use qi_e2e::training::{EXTRACT_TIME, esr, sync};
use qi_proto::training as pb;
use tonic::Code;

#[tokio::test]
async fn staff_are_seen_only_within_the_callers_sites() {
    let suite = TestSuite::start().await;
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let people = [
        esr("60000001", "BAS", "Evans"),
        esr("60000002", "SOU", "Fisher"),
    ];
    sync(&hr, pb::SyncMode::Delta, EXTRACT_TIME, &people)
        .await
        .unwrap();
    let bas = suite.caller("bas-viewer", &["viewer"], &["BAS"]);
    let mut training = bas.training();
    let listed = training
        .list_staff(pb::ListStaffRequest {
            parent: "sites/-".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .staff;
    assert_eq!(
        listed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["sites/BAS/staff/60000001"]
    );
    for (name, code, why) in [
        (
            "sites/SOU/staff/60000002",
            Code::PermissionDenied,
            "another site",
        ),
        ("sites/-/staff/60000002", Code::NotFound, "any of mine"),
        (
            "sites/BAS/staff/60000002",
            Code::NotFound,
            "a name under the wrong site finds nothing",
        ),
    ] {
        let get = pb::GetStaffRequest { name: name.into() };
        let err = training.get_staff(get).await.unwrap_err();
        assert_eq!(err.code(), code, "{why}");
    }
    suite.stop().await.unwrap();
}
