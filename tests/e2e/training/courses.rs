//! The course catalogue's ESR competences: set when a course is created or by UpdateCourse,
//! by trust-wide admins only, refused with the field named when malformed, and guarded by
//! the etag.

use qi_e2e::training::set_competence;
use qi_e2e::{Caller, TestSuite, fields};
use qi_proto::training as pb;
use tonic::Code;

const PRACTITIONER: &str = "trust/courses/qsir-prac";

async fn get(c: &Caller, name: &str) -> pb::Course {
    c.training()
        .get_course(pb::GetCourseRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
        .course
        .unwrap()
}

fn update(course: pb::Course, paths: &[&str]) -> pb::UpdateCourseRequest {
    pb::UpdateCourseRequest {
        course: Some(course),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).into()).collect(),
        }),
    }
}

#[tokio::test]
async fn an_admin_creates_a_course_with_its_competence_and_changes_it_later() {
    let suite = TestSuite::start().await;
    let admin = suite.caller("admin", &["admin"], &["*"]);
    let made = admin
        .training()
        .create_course(pb::CreateCourseRequest {
            parent: "trust".into(),
            course_id: "lean".into(),
            course: Some(pb::Course {
                code: "LEAN".into(),
                display_name: "Lean for Healthcare".into(),
                session_count: 1,
                esr_competence_id: "10492".into(),
                esr_competence_name: "123|LOCAL|Lean for Healthcare|".into(),
                ..Default::default()
            }),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .course
        .unwrap();
    assert_eq!(
        (
            made.esr_competence_id.as_str(),
            made.esr_competence_name.as_str()
        ),
        ("10492", "123|LOCAL|Lean for Healthcare|")
    );
    let viewer = suite.caller("ward-7", &["viewer"], &["SOU"]);
    assert_eq!(get(&viewer, "trust/courses/lean").await, made);

    // The migrations' courses name no competence until the trust sets theirs.
    let before = get(&admin, PRACTITIONER).await;
    assert_eq!(before.esr_competence_id, "");
    let set = set_competence(
        &admin,
        PRACTITIONER,
        "10490",
        "123|LOCAL|QSIR Practitioner|",
    )
    .await
    .unwrap();
    assert_eq!(set.esr_competence_id, "10490");
    assert_eq!(set.display_name, before.display_name);
    assert_ne!(set.etag, before.etag);
    // Sent again, it changes nothing, not even the etag.
    let again = set_competence(
        &admin,
        PRACTITIONER,
        "10490",
        "123|LOCAL|QSIR Practitioner|",
    )
    .await
    .unwrap();
    assert_eq!(again, set);
    // The etag read before the change is stale now.
    let mut stale = before.clone();
    stale.esr_competence_id = "10491".into();
    let err = admin
        .training()
        .update_course(update(stale, &["esr_competence_id"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert_eq!(get(&admin, PRACTITIONER).await, set);
    // With no mask, the fields set change: here the title alone.
    let retitled = admin
        .training()
        .update_course(pb::UpdateCourseRequest {
            course: Some(pb::Course {
                name: PRACTITIONER.into(),
                display_name: "QSIR Practitioner (five days)".into(),
                etag: set.etag.clone(),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .course
        .unwrap();
    assert_eq!(
        (
            retitled.display_name.as_str(),
            retitled.esr_competence_id.as_str()
        ),
        ("QSIR Practitioner (five days)", "10490")
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_malformed_competence_or_course_is_refused_naming_the_field_and_nothing_changes() {
    let suite = TestSuite::start().await;
    let admin = suite.caller("admin", &["admin"], &["*"]);
    let before = get(&admin, PRACTITIONER).await;
    let long_name = "n".repeat(201);
    for (id, name, field) in [
        ("QSIR Practitioner", "ok", "course.esr_competence_id"),
        ("a,b", "ok", "course.esr_competence_id"),
        ("10490", long_name.as_str(), "course.esr_competence_name"),
    ] {
        let err = set_competence(&admin, PRACTITIONER, id, name)
            .await
            .unwrap_err();
        assert_eq!(fields(&err), [field], "{id:?} / {name:?}");
    }
    // Paths that cannot change, and a name outside the catalogue.
    for path in ["code", "session_count", "required_sessions", "etag"] {
        let err = admin
            .training()
            .update_course(update(before.clone(), &[path]))
            .await
            .unwrap_err();
        assert_eq!(fields(&err), ["update_mask"], "{path}");
    }
    let mut elsewhere = before.clone();
    elsewhere.name = "trust/courses/absent".into();
    let err = admin
        .training()
        .update_course(update(elsewhere, &["display_name"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // CreateCourse checks the same rule.
    let err = admin
        .training()
        .create_course(pb::CreateCourseRequest {
            parent: "trust".into(),
            course_id: "lean".into(),
            course: Some(pb::Course {
                code: "LEAN".into(),
                display_name: "Lean for Healthcare".into(),
                session_count: 1,
                esr_competence_id: "10492 ".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["course.esr_competence_id"]);
    assert_eq!(get(&admin, PRACTITIONER).await, before);
    assert_eq!(suite.count("SELECT count(*) FROM training.course").await, 2);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn only_trust_wide_admins_change_the_catalogue() {
    let suite = TestSuite::start().await;
    for (sub, roles, sites) in [
        ("qi-office", &["improvement_team"][..], &["*"][..]),
        ("bas-admin", &["admin"], &["BAS"]),
        ("esr", &["hr_sync"], &["*"]),
    ] {
        let caller = suite.caller(sub, roles, sites);
        let err = set_competence(&caller, PRACTITIONER, "10490", "QSIR Practitioner")
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{sub}");
    }
    let admin = suite.caller("admin", &["admin"], &["*"]);
    assert_eq!(get(&admin, PRACTITIONER).await.esr_competence_id, "");
    suite.stop().await.unwrap();
}
