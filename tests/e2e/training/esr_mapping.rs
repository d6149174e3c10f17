//! The ESR mapping through the gateway: codes mapped to sites and wards under the site
//! rules, and the HR sync placing rows that carry codes instead of sites, refusing the
//! unmapped alone and counting them by code, with Staff giving back what came in.

use qi_e2e::training::{EXTRACT_TIME as T0, esr, sync};
use qi_e2e::{Caller, TestSuite, code, fields};
use qi_proto::training as pb;
use tonic::Code;

fn create(parent: &str, id: &str, ward: &str, request_id: &str) -> pb::CreateEsrMappingRequest {
    pb::CreateEsrMappingRequest {
        parent: parent.into(),
        esr_mapping_id: id.into(),
        esr_mapping: Some(pb::EsrMapping {
            ward: ward.into(),
            display_name: format!("{id} of {parent}"),
            ..Default::default()
        }),
        request_id: request_id.into(),
    }
}

async fn names(c: &Caller, parent: &str) -> Vec<String> {
    c.training()
        .list_esr_mappings(pb::ListEsrMappingsRequest {
            parent: parent.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .esr_mappings
        .into_iter()
        .map(|m| m.name)
        .collect()
}

#[tokio::test]
async fn a_site_caller_maps_codes_to_its_own_site_only_and_a_ward_must_be_one_of_that_site() {
    let suite = TestSuite::start().await;
    let bas_hr = suite.caller("bas-hr", &["hr_sync"], &["BAS"]);
    let made = bas_hr
        .training()
        .create_esr_mapping(create(
            "sites/BAS",
            "organisation.CC-ASH",
            "sites/BAS/wards/ash",
            "5c8f3a52-0d3c-4a55-9a61-3b2f3b0f0a01",
        ))
        .await
        .unwrap()
        .into_inner()
        .esr_mapping
        .unwrap();
    assert_eq!(made.name, "sites/BAS/esrMappings/organisation.CC-ASH");
    assert_eq!(
        (
            made.kind,
            made.code.as_str(),
            made.site.as_str(),
            made.ward.as_str()
        ),
        (
            pb::EsrCodeKind::Organisation as i32,
            "CC-ASH",
            "sites/BAS",
            "sites/BAS/wards/ash"
        )
    );
    // A retry with the same request id answers as the first call did.
    let again = bas_hr
        .training()
        .create_esr_mapping(create(
            "sites/BAS",
            "organisation.CC-ASH",
            "sites/BAS/wards/ash",
            "5c8f3a52-0d3c-4a55-9a61-3b2f3b0f0a01",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.esr_mapping, Some(made));
    // Another site is out of reach, whether to map to or to read.
    let to_sou = bas_hr
        .training()
        .create_esr_mapping(create("sites/SOU", "location.SOU-MAIN", "", ""))
        .await;
    assert_eq!(code(to_sou), Code::PermissionDenied);
    // A ward of another site, or a ward not shaped as a ward's name, names the field.
    let team = suite.caller("bas-team", &["improvement_team"], &["BAS"]);
    for ward in ["sites/SOU/wards/ash", "Ash Ward", "trust/wards/ash"] {
        let bad = team
            .training()
            .create_esr_mapping(create("sites/BAS", "organisation.CC-X", ward, ""))
            .await
            .unwrap_err();
        assert_eq!(fields(&bad), ["esr_mapping.ward"], "{ward}");
    }
    let bad_id = team
        .training()
        .create_esr_mapping(create("sites/BAS", "cost-centre.X", "", ""))
        .await
        .unwrap_err();
    assert_eq!(fields(&bad_id), ["esr_mapping_id"]);
    // A code maps to one site: a trust-wide caller cannot map it at SOU as well, and is
    // not told where it is.
    let trust_hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let twice = trust_hr
        .training()
        .create_esr_mapping(create("sites/SOU", "organisation.CC-ASH", "", ""))
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::AlreadyExists);
    assert!(!twice.message().contains("BAS"), "{}", twice.message());
    trust_hr
        .training()
        .create_esr_mapping(create("sites/SOU", "location.SOU-MAIN", "", ""))
        .await
        .unwrap();
    // Viewers read their own sites' mappings; a viewer may not write one.
    let bas_viewer = suite.caller("bas-viewer", &["viewer"], &["BAS"]);
    assert_eq!(
        names(&bas_viewer, "sites/-").await,
        ["sites/BAS/esrMappings/organisation.CC-ASH"]
    );
    assert_eq!(
        names(&trust_hr, "sites/-").await,
        [
            "sites/BAS/esrMappings/organisation.CC-ASH",
            "sites/SOU/esrMappings/location.SOU-MAIN"
        ]
    );
    let get = |c: &Caller, name: &str| {
        let mut t = c.training();
        let name = name.to_owned();
        async move { t.get_esr_mapping(pb::GetEsrMappingRequest { name }).await }
    };
    assert_eq!(
        code(get(&bas_viewer, "sites/SOU/esrMappings/location.SOU-MAIN").await),
        Code::PermissionDenied
    );
    let read = get(&bas_viewer, "sites/BAS/esrMappings/organisation.CC-ASH")
        .await
        .unwrap()
        .into_inner();
    let viewer_writes = bas_viewer
        .training()
        .create_esr_mapping(create("sites/BAS", "location.BAS-MAIN", "", ""))
        .await;
    assert_eq!(code(viewer_writes), Code::PermissionDenied);
    // Deleting: a stale etag is refused; then it is gone.
    let mut delete = pb::DeleteEsrMappingRequest {
        name: "sites/BAS/esrMappings/organisation.CC-ASH".into(),
        etag: "\"99\"".into(),
    };
    let stale = team.training().delete_esr_mapping(delete.clone()).await;
    assert_eq!(code(stale), Code::Aborted);
    delete.etag = read.esr_mapping.unwrap().etag;
    team.training().delete_esr_mapping(delete).await.unwrap();
    assert_eq!(
        code(get(&bas_viewer, "sites/BAS/esrMappings/organisation.CC-ASH").await),
        Code::NotFound
    );
    suite.stop().await.unwrap();
}

fn item(name: &str, ward: &str) -> pb::EsrMapping {
    pb::EsrMapping {
        name: name.into(),
        ward: ward.into(),
        ..Default::default()
    }
}

async fn upsert(
    c: &Caller,
    parent: &str,
    items: Vec<pb::EsrMapping>,
) -> pb::BatchUpsertEsrMappingsResponse {
    c.training()
        .batch_upsert_esr_mappings(pb::BatchUpsertEsrMappingsRequest {
            parent: parent.into(),
            esr_mappings: items,
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn a_batch_upsert_refuses_each_bad_item_alone_and_moves_a_code_only_for_a_caller_holding_both_sites()
 {
    let suite = TestSuite::start().await;
    let trust_hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let sou = upsert(
        &trust_hr,
        "sites/SOU",
        vec![item("sites/SOU/esrMappings/location.SHARED", "")],
    )
    .await;
    assert_eq!(sou.created, 1);
    let bas_hr = suite.caller("bas-hr", &["hr_sync"], &["BAS"]);
    let batch = vec![
        item("sites/BAS/esrMappings/location.BAS-MAIN", ""),
        item("sites/SOU/esrMappings/location.SOU-MAIN", ""),
        item(
            "sites/BAS/esrMappings/organisation.CC-ASH",
            "sites/BAS/wards/ash",
        ),
        item(
            "sites/BAS/esrMappings/organisation.CC-ELM",
            "sites/SOU/wards/elm",
        ),
        item("sites/BAS/esrMappings/location.SHARED", ""),
    ];
    let first = upsert(&bas_hr, "sites/BAS", batch.clone()).await;
    assert_eq!((first.created, first.updated, first.unchanged), (2, 0, 0));
    let refused: Vec<_> = first
        .rejected
        .iter()
        .map(|r| (r.index, r.field.as_str()))
        .collect();
    assert_eq!(
        refused,
        [
            (1, "esr_mappings[1].name"),
            (3, "esr_mappings[3].ward"),
            (4, "esr_mappings[4].name")
        ]
    );
    // The same again changes nothing; a trust-wide caller moves SOU's code to BAS.
    let again = upsert(&bas_hr, "sites/BAS", batch.clone()).await;
    assert_eq!((again.created, again.updated, again.unchanged), (0, 0, 2));
    let moved = upsert(&trust_hr, "sites/BAS", batch).await;
    assert_eq!((moved.created, moved.updated, moved.unchanged), (0, 1, 2));
    assert!(names(&trust_hr, "sites/SOU").await.is_empty());
    // A BAS caller's batch for SOU is refused at the gateway.
    let to_sou = bas_hr
        .training()
        .batch_upsert_esr_mappings(pb::BatchUpsertEsrMappingsRequest {
            parent: "sites/SOU".into(),
            esr_mappings: vec![item("sites/SOU/esrMappings/location.X", "")],
            request_id: String::new(),
        })
        .await;
    assert_eq!(code(to_sou), Code::PermissionDenied);
    suite.stop().await.unwrap();
}

/// A row of `employee` carrying no site, only these codes, and what ESR says of the job.
fn coded(employee: &str, location: &str, organisation: &str) -> pb::EsrRow {
    pb::EsrRow {
        location: location.into(),
        organisation: organisation.into(),
        occupation_code: "N0A".into(),
        area_of_work: "Acute Medicine".into(),
        assignment_status: "Active Assignment".into(),
        ..esr(employee, "", "Placed")
    }
}

#[tokio::test]
async fn a_sync_places_rows_by_their_codes_and_refuses_the_unmapped_alone_counted_by_code() {
    let suite = TestSuite::start().await;
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    for (site, items) in [
        (
            "sites/BAS",
            vec![
                item("sites/BAS/esrMappings/location.BAS-MAIN", ""),
                item(
                    "sites/BAS/esrMappings/organisation.CC-ASH",
                    "sites/BAS/wards/ash",
                ),
            ],
        ),
        (
            "sites/SOU",
            vec![item(
                "sites/SOU/esrMappings/organisation.CC-OAK",
                "sites/SOU/wards/oak",
            )],
        ),
    ] {
        assert!(upsert(&hr, site, items).await.rejected.is_empty());
    }
    let rows = [
        coded("50000001", "BAS-MAIN", "CC-ASH"),
        coded("50000002", "", "CC-OAK"),
        coded("50000003", "NEW-SITE", "CC-NEW"),
        // An explicit site wins over the codes.
        pb::EsrRow {
            site: "BRM".into(),
            ..coded("50000004", "BAS-MAIN", "")
        },
        coded("50000005", "NEW-SITE", ""),
    ];
    let r = sync(&hr, pb::SyncMode::Delta, T0, &rows).await.unwrap();
    assert_eq!((r.inserted, r.rejected_rows), (3, 2));
    let refused: Vec<_> = r
        .rejected
        .iter()
        .map(|x| (x.row_number, x.field.as_str()))
        .collect();
    assert_eq!(refused, [(3, "location"), (5, "location")]);
    assert!(
        r.rejected[0].reason.contains("NEW-SITE") && r.rejected[0].reason.contains("CC-NEW"),
        "{:?}",
        r.rejected[0]
    );
    let counted: Vec<_> = r
        .unmapped_codes
        .iter()
        .map(|c| (c.kind, c.code.as_str(), c.rows))
        .collect();
    assert_eq!(
        counted,
        [
            (pb::EsrCodeKind::Location as i32, "NEW-SITE", 2),
            (pb::EsrCodeKind::Organisation as i32, "CC-NEW", 1)
        ]
    );
    // Staff give back where the mapping placed them and what ESR said of their job.
    let bas_viewer = suite.caller("bas-viewer", &["viewer"], &["BAS"]);
    let ada = bas_viewer
        .training()
        .get_staff(pb::GetStaffRequest {
            name: "staff/50000001".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .staff
        .unwrap();
    assert_eq!(
        (
            ada.site.as_str(),
            ada.ward.as_str(),
            ada.occupation_code.as_str(),
            ada.area_of_work.as_str(),
            ada.assignment_status.as_str()
        ),
        (
            "sites/BAS",
            "sites/BAS/wards/ash",
            "N0A",
            "Acute Medicine",
            "Active Assignment"
        )
    );
    let everyone = suite.caller("trust-viewer", &["viewer"], &["*"]);
    let places: Vec<_> = everyone
        .training()
        .list_staff(pb::ListStaffRequest {
            parent: "sites/-".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .staff
        .into_iter()
        .map(|s| (s.employee_number, s.site, s.ward))
        .collect();
    let place = |e: &str, s: &str, w: &str| (e.to_owned(), s.to_owned(), w.to_owned());
    let mut places = places;
    places.sort();
    assert_eq!(
        places,
        [
            place("50000001", "sites/BAS", "sites/BAS/wards/ash"),
            place("50000002", "sites/SOU", "sites/SOU/wards/oak"),
            place("50000004", "sites/BRM", ""),
        ]
    );
    // With the code mapped, the same extract places the refused rows and changes nothing else.
    upsert(
        &hr,
        "sites/BRM",
        vec![item("sites/BRM/esrMappings/location.NEW-SITE", "")],
    )
    .await;
    let again = sync(&hr, pb::SyncMode::Delta, T0, &rows).await.unwrap();
    assert_eq!(
        (again.inserted, again.unchanged, again.rejected_rows),
        (2, 3, 0)
    );
    assert!(again.unmapped_codes.is_empty());
    suite.stop().await.unwrap();
}
