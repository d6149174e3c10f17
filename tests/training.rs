//! Training requests the tests share: staff rows and the HR sync stream, cohorts, enrolment
//! and the register.

use chrono::NaiveDate;
use qi_proto::training as pb;
use tonic::Status;

use crate::{Caller, date};

/// When the tests' HR extracts were taken (a time in 2026), in Unix seconds.
pub const EXTRACT_TIME: i64 = 1_790_000_000;

/// An HR row for a primary assignment: a staff nurse at `site`.
pub fn esr(employee: &str, site: &str, surname: &str) -> pb::EsrRow {
    pb::EsrRow {
        employee_number: employee.into(),
        assignment_number: employee.into(),
        primary_assignment: true,
        forename: "Sam".into(),
        surname: surname.into(),
        work_email: format!("{employee}@nhs.example"),
        staff_group: "03".into(),
        job_role: "Staff Nurse".into(),
        site: site.into(),
        person_type: "Employee".into(),
        ..Default::default()
    }
}

/// An HR extract as the sync stream carries it: a header (mode, id and time), the rows in
/// messages of 100, and `complete` on the last message.
pub fn extract(mode: pb::SyncMode, time: i64, rows: &[pb::EsrRow]) -> Vec<pb::SyncStaffRequest> {
    let mut messages = vec![pb::SyncStaffRequest {
        mode: mode as i32,
        extract_id: format!("extract-{time}"),
        extract_time: Some(prost_types::Timestamp {
            seconds: time,
            nanos: 0,
        }),
        ..Default::default()
    }];
    messages.extend(rows.chunks(100).map(|chunk| pb::SyncStaffRequest {
        rows: chunk.to_vec(),
        ..Default::default()
    }));
    if let Some(last) = messages.last_mut() {
        last.complete = true;
    }
    messages
}

/// Syncs `rows` as one extract taken at `time`.
pub async fn sync(
    c: &Caller,
    mode: pb::SyncMode,
    time: i64,
    rows: &[pb::EsrRow],
) -> Result<pb::SyncStaffResponse, Status> {
    let messages = tokio_stream::iter(extract(mode, time, rows));
    Ok(c.training().sync_staff(messages).await?.into_inner())
}

/// A QSIR Practitioner cohort under `parent` starting on `start`, with a system id.
pub fn new_cohort(
    parent: &str,
    display_name: &str,
    start: NaiveDate,
    capacity: i32,
) -> pb::CreateCohortRequest {
    pb::CreateCohortRequest {
        parent: parent.into(),
        cohort_id: String::new(),
        cohort: Some(pb::Cohort {
            course: "trust/courses/qsir-prac".into(),
            display_name: display_name.into(),
            start_date: Some(date(start)),
            capacity,
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

/// Creates a cohort.
pub async fn create_cohort(c: &Caller, req: pb::CreateCohortRequest) -> Result<pb::Cohort, Status> {
    let made = c.training().create_cohort(req).await?.into_inner();
    Ok(made.cohort.expect("a cohort"))
}

/// The first page of the cohorts under `parent`.
pub fn list_cohorts(parent: &str) -> pb::ListCohortsRequest {
    pb::ListCohortsRequest {
        parent: parent.into(),
        ..Default::default()
    }
}

/// The names of the cohorts under `parent`, as listed.
pub async fn cohort_names(c: &Caller, parent: &str) -> Result<Vec<String>, Status> {
    let listed = c.training().list_cohorts(list_cohorts(parent)).await?;
    Ok(listed
        .into_inner()
        .cohorts
        .into_iter()
        .map(|c| c.name)
        .collect())
}

/// Enrols `staff` on `cohort`.
pub async fn enrol(c: &Caller, cohort: &str, staff: &str) -> Result<pb::Enrolment, Status> {
    let req = pb::CreateEnrolmentRequest {
        parent: cohort.into(),
        enrolment: Some(pb::Enrolment {
            staff: staff.into(),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let made = c.training().create_enrolment(req).await?.into_inner();
    Ok(made.enrolment.expect("an enrolment"))
}

/// Starts `cohort`.
pub async fn start_cohort(c: &Caller, cohort: &str) -> Result<pb::Cohort, Status> {
    let req = pb::StartCohortRequest {
        name: cohort.into(),
        etag: String::new(),
    };
    let started = c.training().start_cohort(req).await?.into_inner();
    Ok(started.cohort.expect("a cohort"))
}

/// Records the register of session `session` of `cohort`.
pub async fn register(
    c: &Caller,
    cohort: &str,
    session: i32,
    records: &[(&str, pb::AttendanceStatus)],
) -> Result<pb::RecordAttendanceResponse, Status> {
    let req = pb::RecordAttendanceRequest {
        session: format!("{cohort}/sessions/{session}"),
        records: records
            .iter()
            .map(|(staff, status)| pb::AttendanceRecord {
                staff: (*staff).into(),
                status: *status as i32,
            })
            .collect(),
    };
    Ok(c.training().record_attendance(req).await?.into_inner())
}

/// Sets `course`'s ESR competence (id and name; empty clears it), as a trust-wide admin does.
pub async fn set_competence(
    admin: &Caller,
    course: &str,
    id: &str,
    name: &str,
) -> Result<pb::Course, Status> {
    let req = pb::UpdateCourseRequest {
        course: Some(pb::Course {
            name: course.into(),
            esr_competence_id: id.into(),
            esr_competence_name: name.into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["esr_competence_id".into(), "esr_competence_name".into()],
        }),
    };
    let updated = admin.training().update_course(req).await?.into_inner();
    Ok(updated.course.expect("a course"))
}
