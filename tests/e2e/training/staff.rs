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
        ["staff/60000001"]
    );
    // A person out of the caller's sites is refused however they are named, and so is one
    // who does not exist: the answer never says which.
    for (name, why) in [
        ("staff/60000002", "another site's person"),
        ("sites/SOU/staff/60000002", "another site (the gateway)"),
        ("sites/-/staff/60000002", "any of mine"),
        ("sites/BAS/staff/60000002", "an alias's site grants nothing"),
        ("staff/69999999", "no such person"),
    ] {
        let get = pb::GetStaffRequest { name: name.into() };
        let err = training.get_staff(get).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{why}");
    }
    let own = pb::GetStaffRequest {
        name: "sites/-/staff/60000001".into(),
    };
    let own = training
        .get_staff(own)
        .await
        .unwrap()
        .into_inner()
        .staff
        .unwrap();
    assert_eq!(
        (own.name.as_str(), own.site.as_str()),
        ("staff/60000001", "sites/BAS")
    );
    suite.stop().await.unwrap();
}
