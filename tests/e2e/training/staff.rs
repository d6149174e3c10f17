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

/// Every person a ListStaff request lists, a page at a time (`page_size` 1).
async fn all_staff(c: &qi_e2e::Caller, req: pb::ListStaffRequest) -> Vec<String> {
    let (mut names, mut token) = (Vec::new(), String::new());
    loop {
        let resp = c
            .training()
            .list_staff(pb::ListStaffRequest {
                page_size: 1,
                page_token: token,
                ..req.clone()
            })
            .await
            .unwrap()
            .into_inner();
        names.extend(resp.staff.into_iter().map(|s| s.name));
        if resp.next_page_token.is_empty() {
            return names;
        }
        token = resp.next_page_token;
    }
}

#[tokio::test]
async fn a_nightly_extract_of_staff_reads_what_the_last_sync_changed_leavers_included() {
    let suite = TestSuite::start().await;
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let first = [
        esr("60000001", "BAS", "Evans"),
        esr("60000002", "SOU", "Fisher"),
        esr("60000003", "BAS", "Grant"),
    ];
    sync(&hr, pb::SyncMode::Full, EXTRACT_TIME, &first)
        .await
        .unwrap();
    let bi = suite.caller("bi", &["viewer"], &["*"]);
    let by_change = pb::ListStaffRequest {
        parent: "sites/-".into(),
        show_inactive: true,
        order_by: "update_time".into(),
        ..Default::default()
    };
    let listed = bi
        .training()
        .list_staff(by_change.clone())
        .await
        .unwrap()
        .into_inner()
        .staff;
    assert_eq!(listed.len(), 3);
    let last = listed.last().unwrap().update_time.unwrap();
    let since = chrono::DateTime::from_timestamp(last.seconds, u32::try_from(last.nanos).unwrap())
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);

    // The next extract: Evans renamed, Fisher as before, Grant gone (a leaver), Hughes new.
    let second = [
        esr("60000001", "BAS", "Evans-Jones"),
        esr("60000002", "SOU", "Fisher"),
        esr("60000004", "SOU", "Hughes"),
    ];
    sync(&hr, pb::SyncMode::Full, EXTRACT_TIME + 86_400, &second)
        .await
        .unwrap();
    let changed = pb::ListStaffRequest {
        filter: format!("update_time > \"{since}\""),
        ..by_change.clone()
    };
    assert_eq!(
        all_staff(&bi, changed.clone()).await,
        ["staff/60000001", "staff/60000003", "staff/60000004"]
    );
    // A site term narrows it; a caller of BAS asking for SOU's finds nothing.
    let sou = pb::ListStaffRequest {
        filter: format!("update_time > \"{since}\" AND site = SOU"),
        ..by_change.clone()
    };
    assert_eq!(all_staff(&bi, sou.clone()).await, ["staff/60000004"]);
    let bas = suite.caller("bas-viewer", &["viewer"], &["BAS"]);
    assert!(all_staff(&bas, sou).await.is_empty());
    // Time bounds in the default order, by name.
    let by_name = pb::ListStaffRequest {
        order_by: String::new(),
        ..changed
    };
    assert_eq!(
        all_staff(&bi, by_name).await,
        ["staff/60000001", "staff/60000003", "staff/60000004"]
    );
    for (filter, order_by, field) in [
        ("ward = x", "", "filter"),
        ("site > BAS", "", "filter"),
        ("", "surname", "order_by"),
    ] {
        let status = bi
            .training()
            .list_staff(pb::ListStaffRequest {
                filter: filter.into(),
                order_by: order_by.into(),
                ..by_change.clone()
            })
            .await
            .unwrap_err();
        assert_eq!(qi_e2e::fields(&status), [field], "{filter} {order_by}");
    }
    suite.stop().await.unwrap();
}
