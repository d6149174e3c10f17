//! The training service through the gateway: HR sync in and out, cohorts and their
//! sessions, enrolment with a waitlist, registers, completions and the register's queries.

use std::time::Duration;

use chrono::{Days, NaiveDate};
use qi_e2e::{TestSuite, authed, today};
use qi_proto::google::r#type::Date;
use qi_proto::training as pb;
use qi_proto::training::training_service_client::TrainingServiceClient;
use tonic::Code;
use tonic::transport::Channel;

type Client = TrainingServiceClient<Channel>;

fn day(d: NaiveDate) -> Date {
    qi_platform::convert::date(d)
}

fn esr(emp: &str, site: &str, surname: &str) -> pb::EsrRow {
    pb::EsrRow {
        employee_number: emp.into(),
        assignment_number: emp.into(),
        primary_assignment: true,
        forename: "Sam".into(),
        surname: surname.into(),
        work_email: format!("{emp}@nhs.example"),
        staff_group: "03".into(),
        job_role: "Staff Nurse".into(),
        site: site.into(),
        person_type: "Employee".into(),
        ..Default::default()
    }
}

async fn sync(
    client: &mut Client,
    token: &str,
    mode: pb::SyncMode,
    extract_time: i64,
    rows: Vec<pb::EsrRow>,
) -> Result<pb::SyncStaffResponse, tonic::Status> {
    let mut messages = vec![pb::SyncStaffRequest {
        mode: mode as i32,
        extract_id: format!("extract-{extract_time}"),
        extract_time: Some(prost_types::Timestamp {
            seconds: extract_time,
            nanos: 0,
        }),
        ..Default::default()
    }];
    for chunk in rows.chunks(100) {
        messages.push(pb::SyncStaffRequest {
            rows: chunk.to_vec(),
            ..Default::default()
        });
    }
    if let Some(last) = messages.last_mut() {
        last.complete = true;
    }
    client
        .sync_staff(authed(token, tokio_stream::iter(messages)))
        .await
        .map(|r| r.into_inner())
}

async fn count(suite: &TestSuite, sql: &str) -> i64 {
    let pool = sqlx::PgPool::connect(&suite.database_url).await.unwrap();
    let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

const T0: i64 = 1_790_000_000;

#[tokio::test]
async fn hr_sync_upserts_refuses_bad_rows_and_converges_on_a_resend() {
    let suite = TestSuite::start().await;
    let mut client = Client::new(suite.channel.clone());
    let hr = suite.token("esr", &["hr_sync"], &["*"]);
    let mut bad = esr("10000003", "XYZ", "Nowhere");
    bad.forename = String::new();
    let mut rows = vec![
        esr("10000001", "BAS", "Adams"),
        esr("10000002", "SOU", "Baker"),
        bad,
        esr("10000001", "BAS", "Adams"),
    ];
    let mut second_job = esr("10000002", "SOU", "Baker");
    second_job.assignment_number = "10000002-02".into();
    second_job.primary_assignment = false;
    rows.push(second_job);
    let first = sync(&mut client, &hr, pb::SyncMode::Delta, T0, rows.clone())
        .await
        .unwrap();
    assert_eq!(first.received_rows, 5);
    assert_eq!((first.inserted, first.updated, first.unchanged), (2, 0, 0));
    let refused: Vec<_> = first
        .rejected
        .iter()
        .map(|r| (r.row_number, r.field.as_str()))
        .collect();
    assert_eq!(refused, [(3, "site"), (4, "assignment_number")]);

    // The same extract again changes nothing.
    let again = sync(&mut client, &hr, pb::SyncMode::Delta, T0, rows)
        .await
        .unwrap();
    assert_eq!((again.inserted, again.updated, again.unchanged), (0, 0, 2));
    // An older row changes nothing; a newer one does.
    let mut moved = esr("10000001", "BAS", "Adams-Clark");
    let older = sync(
        &mut client,
        &hr,
        pb::SyncMode::Delta,
        T0 - 60,
        vec![moved.clone()],
    )
    .await
    .unwrap();
    assert_eq!(older.unchanged, 1);
    moved.job_role = "Ward Sister".into();
    let newer = sync(&mut client, &hr, pb::SyncMode::Delta, T0 + 60, vec![moved])
        .await
        .unwrap();
    assert_eq!(newer.updated, 1);
    let viewer = suite.token("bas-viewer", &["viewer"], &["BAS"]);
    let got = client
        .get_staff(authed(
            &viewer,
            pb::GetStaffRequest {
                name: "sites/BAS/staff/10000001".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .staff
        .unwrap();
    assert_eq!(
        (got.surname.as_str(), got.job_role.as_str()),
        ("Adams-Clark", "Ward Sister")
    );

    // Only HR's trust-wide sync account may sync.
    for token in [
        suite.token("team", &["improvement_team"], &["*"]),
        suite.token("esr-bas", &["hr_sync"], &["BAS"]),
    ] {
        let err = sync(
            &mut client,
            &token,
            pb::SyncMode::Delta,
            T0,
            vec![esr("10000009", "BAS", "X")],
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
    }
    assert_eq!(
        count(&suite, "SELECT count(*) FROM training.staff").await,
        2
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_full_sync_deactivates_the_absent_but_not_the_refused() {
    let suite = TestSuite::start().await;
    let mut client = Client::new(suite.channel.clone());
    let hr = suite.token("esr", &["hr_sync"], &["*"]);
    let everyone: Vec<_> = (1..=4)
        .map(|i| esr(&format!("2000000{i}"), "BRM", &format!("Person{i}")))
        .collect();
    sync(&mut client, &hr, pb::SyncMode::Full, T0, everyone.clone())
        .await
        .unwrap();
    // Next month: person 4 has gone, person 3's row is broken.
    let mut broken = everyone[2].clone();
    broken.work_email = "no at sign".into();
    let mut leaver = everyone[1].clone();
    leaver.termination_date = Some(day(today() - Days::new(10)));
    let next = sync(
        &mut client,
        &hr,
        pb::SyncMode::Full,
        T0 + 86_400,
        vec![everyone[0].clone(), leaver, broken],
    )
    .await
    .unwrap();
    assert_eq!(next.rejected.len(), 1);
    assert_eq!(next.deactivated, 2, "the leaver and the absent person");
    assert_eq!(
        count(&suite, "SELECT count(*) FROM training.staff WHERE active").await,
        2
    );
    assert_eq!(
        count(
            &suite,
            "SELECT count(*) FROM training.staff WHERE active AND employee_number = '20000003'"
        )
        .await,
        1,
        "a refused row's person stays active"
    );
    // A FULL sync with nothing valid in it would deactivate everyone: refused.
    let err = sync(&mut client, &hr, pb::SyncMode::Full, T0 + 90_000, vec![])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_sync_stream_cut_midway_or_oversized_changes_nothing_and_a_resend_converges() {
    let suite = TestSuite::start().await;
    let hr = suite.token("esr", &["hr_sync"], &["*"]);
    let rows: Vec<_> = (0..500)
        .map(|i| esr(&format!("{}", 30_000_000 + i), "SOU", &format!("P{i}")))
        .collect();
    // Send the header and two batches, then stall and drop the call.
    let mut messages = vec![pb::SyncStaffRequest {
        mode: pb::SyncMode::Delta as i32,
        extract_time: Some(prost_types::Timestamp {
            seconds: T0,
            nanos: 0,
        }),
        ..Default::default()
    }];
    for chunk in rows[..200].chunks(100) {
        messages.push(pb::SyncStaffRequest {
            rows: chunk.to_vec(),
            ..Default::default()
        });
    }
    let stalled =
        tokio_stream::StreamExt::chain(tokio_stream::iter(messages), tokio_stream::pending());
    let mut client = Client::new(suite.channel.clone());
    let call = tokio::spawn({
        let token = hr.clone();
        async move { client.sync_staff(authed(&token, stalled)).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    call.abort();
    let _ = call.await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        count(&suite, "SELECT count(*) FROM training.staff").await,
        0
    );

    // A stream that ends cleanly but without the `complete` marker is a cut one too.
    let mut client = Client::new(suite.channel.clone());
    let unmarked = vec![
        pb::SyncStaffRequest {
            extract_time: Some(prost_types::Timestamp {
                seconds: T0,
                nanos: 0,
            }),
            ..Default::default()
        },
        pb::SyncStaffRequest {
            rows: rows[..100].to_vec(),
            ..Default::default()
        },
    ];
    let err = client
        .sync_staff(authed(&hr, tokio_stream::iter(unmarked)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert_eq!(
        count(&suite, "SELECT count(*) FROM training.staff").await,
        0
    );

    // A message over the 4 MiB limit ends the sync RESOURCE_EXHAUSTED, with nothing kept.
    let mut huge = rows[..100].to_vec();
    huge[0].job_role = "x".repeat(5 * 1024 * 1024);
    let err = sync(&mut client, &hr, pb::SyncMode::Delta, T0, huge)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(
        count(&suite, "SELECT count(*) FROM training.staff").await,
        0
    );

    let whole = sync(&mut client, &hr, pb::SyncMode::Delta, T0, rows.clone())
        .await
        .unwrap();
    assert_eq!(whole.inserted, 500);
    let again = sync(&mut client, &hr, pb::SyncMode::Delta, T0, rows)
        .await
        .unwrap();
    assert_eq!(again.unchanged, 500);
    assert_eq!(
        count(&suite, "SELECT count(*) FROM training.staff").await,
        500
    );
    suite.stop().await.unwrap();
}

/// Staff at BAS and SOU, and a running BAS cohort of QSIR Practitioner that started five
/// weeks ago (so every session is in the past), capacity 2.
/// How many sessions are running `COPY` into a sync's temporary table.
async fn copies_running(suite: &TestSuite) -> i64 {
    count(
        suite,
        // This test's own database: the cluster is shared by the tests running beside it.
        "SELECT count(*) FROM pg_stat_activity
          WHERE datname = current_database() AND query LIKE 'COPY sync_row%' AND state = 'active'",
    )
    .await
}

#[tokio::test]
async fn a_sync_of_many_copy_batches_applies_whole_or_not_at_all() {
    let suite = TestSuite::start().await;
    let hr = suite.token("esr", &["hr_sync"], &["*"]);
    // 3,000 people, every tenth with a second assignment sent before their primary one.
    let mut rows = Vec::new();
    for i in 0..3_000 {
        let emp = format!("{}", 40_000_000 + i);
        let person = esr(&emp, "SOU", &format!("Person{i}"));
        if i % 10 == 0 {
            let mut bank = person.clone();
            bank.assignment_number = format!("{emp}-02");
            bank.primary_assignment = false;
            bank.job_role = "Bank Nurse".into();
            rows.push(bank);
        }
        rows.push(person);
    }
    // All but the last message, then the stream stalls: the rows are being copied.
    let mut messages = vec![pb::SyncStaffRequest {
        mode: pb::SyncMode::Full as i32,
        extract_time: Some(prost_types::Timestamp {
            seconds: T0,
            nanos: 0,
        }),
        ..Default::default()
    }];
    for chunk in rows[..rows.len() - 100].chunks(100) {
        messages.push(pb::SyncStaffRequest {
            rows: chunk.to_vec(),
            ..Default::default()
        });
    }
    let stalled =
        tokio_stream::StreamExt::chain(tokio_stream::iter(messages), tokio_stream::pending());
    let mut client = Client::new(suite.channel.clone());
    let call = tokio::spawn({
        let token = hr.clone();
        async move { client.sync_staff(authed(&token, stalled)).await }
    });
    for _ in 0..100 {
        if copies_running(&suite).await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(copies_running(&suite).await, 1, "the sync's COPY is open");
    call.abort();
    let _ = call.await;
    for _ in 0..100 {
        if copies_running(&suite).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(copies_running(&suite).await, 0, "the cut sync's COPY ended");
    assert_eq!(
        count(&suite, "SELECT count(*) FROM training.staff").await,
        0
    );

    // The whole extract: every person once, the primary row describing them.
    let mut client = Client::new(suite.channel.clone());
    let whole = sync(&mut client, &hr, pb::SyncMode::Full, T0, rows.clone())
        .await
        .unwrap();
    assert_eq!(whole.received_rows, 3_300);
    assert_eq!(whole.inserted, 3_000);
    assert!(whole.rejected.is_empty(), "{:?}", whole.rejected);
    assert_eq!(
        count(
            &suite,
            "SELECT count(*) FROM training.staff
             WHERE job_role = 'Staff Nurse' AND other_assignments = ARRAY[employee_number || '-02']"
        )
        .await,
        300
    );
    let again = sync(&mut client, &hr, pb::SyncMode::Full, T0, rows)
        .await
        .unwrap();
    assert_eq!(
        (again.inserted, again.updated, again.unchanged),
        (0, 0, 3_000)
    );
    assert_eq!(again.deactivated, 0);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn concurrent_syncs_of_the_same_new_people_both_succeed() {
    let suite = TestSuite::start().await;
    let hr = suite.token("esr", &["hr_sync"], &["*"]);
    let rows: Vec<_> = (0..2_000)
        .map(|i| esr(&format!("{}", 50_000_000 + i), "BAS", &format!("P{i}")))
        .collect();
    let (mut one, mut two) = (
        Client::new(suite.channel.clone()),
        Client::new(suite.channel.clone()),
    );
    // Their merges take turns: the second finds everyone already there.
    let (a, b) = tokio::join!(
        sync(&mut one, &hr, pb::SyncMode::Delta, T0, rows.clone()),
        sync(&mut two, &hr, pb::SyncMode::Delta, T0, rows),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.inserted + b.inserted, 2_000);
    assert_eq!(a.unchanged + b.unchanged, 2_000);
    assert_eq!(
        count(&suite, "SELECT count(*) FROM training.staff").await,
        2_000
    );
    suite.stop().await.unwrap();
}

async fn running_cohort(suite: &TestSuite, client: &mut Client) -> (String, String) {
    let hr = suite.token("esr", &["hr_sync"], &["*"]);
    sync(
        client,
        &hr,
        pb::SyncMode::Delta,
        T0,
        vec![
            esr("40000001", "BAS", "Ahmed"),
            esr("40000002", "BAS", "Brown"),
            esr("40000003", "BAS", "Clarke"),
            esr("40000004", "SOU", "Davies"),
        ],
    )
    .await
    .unwrap();
    let team = suite.token("bas-lead", &["improvement_team"], &["BAS"]);
    let cohort = client
        .create_cohort(authed(
            &team,
            pb::CreateCohortRequest {
                parent: "sites/BAS".into(),
                cohort_id: "autumn".into(),
                cohort: Some(pb::Cohort {
                    course: "trust/courses/qsir-prac".into(),
                    display_name: "QSIR Practitioner, autumn".into(),
                    start_date: Some(day(today() - Days::new(35))),
                    capacity: 2,
                    facilitators: vec!["A. Associate".into()],
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .cohort
        .unwrap();
    (cohort.name, team)
}

async fn enrol(
    client: &mut Client,
    token: &str,
    cohort: &str,
    staff: &str,
) -> Result<pb::Enrolment, tonic::Status> {
    client
        .create_enrolment(authed(
            token,
            pb::CreateEnrolmentRequest {
                parent: cohort.into(),
                enrolment: Some(pb::Enrolment {
                    staff: staff.into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner().enrolment.unwrap())
}

async fn register(
    client: &mut Client,
    token: &str,
    cohort: &str,
    session: i32,
    records: &[(&str, pb::AttendanceStatus)],
) -> Result<pb::RecordAttendanceResponse, tonic::Status> {
    client
        .record_attendance(authed(
            token,
            pb::RecordAttendanceRequest {
                session: format!("{cohort}/sessions/{session}"),
                records: records
                    .iter()
                    .map(|(s, st)| pb::AttendanceRecord {
                        staff: (*s).into(),
                        status: *st as i32,
                    })
                    .collect(),
            },
        ))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn a_cohort_runs_from_enrolment_to_completion_and_hr_exports_it() {
    use pb::AttendanceStatus::{Absent, Attended, CaughtUp};
    let suite = TestSuite::start().await;
    let mut client = Client::new(suite.channel.clone());
    let (cohort, team) = running_cohort(&suite, &mut client).await;
    let (ahmed, brown, clarke, davies) = (
        "sites/BAS/staff/40000001",
        "sites/BAS/staff/40000002",
        "sites/BAS/staff/40000003",
        "sites/SOU/staff/40000004",
    );

    // Five sessions, a week apart.
    let sessions = client
        .list_sessions(authed(
            &team,
            pb::ListSessionsRequest {
                parent: cohort.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .sessions;
    let dates: Vec<_> = sessions.iter().map(|s| s.date.unwrap()).collect();
    let start = today() - Days::new(35);
    assert_eq!(
        dates,
        (0..5)
            .map(|w| day(start + Days::new(7 * w)))
            .collect::<Vec<_>>()
    );

    // Capacity 2: the third learner waits; another site's learner is refused here.
    assert_eq!(
        enrol(&mut client, &team, &cohort, ahmed)
            .await
            .unwrap()
            .state,
        pb::EnrolmentState::Enrolled as i32
    );
    assert_eq!(
        enrol(&mut client, &team, &cohort, brown)
            .await
            .unwrap()
            .state,
        pb::EnrolmentState::Enrolled as i32
    );
    let waiting = enrol(&mut client, &team, &cohort, clarke).await.unwrap();
    assert_eq!(
        (waiting.state, waiting.waitlist_position),
        (pb::EnrolmentState::Waitlisted as i32, 1)
    );
    let err = enrol(&mut client, &team, &cohort, davies)
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::PermissionDenied,
        "a BAS token cannot name a SOU learner"
    );
    let trust = suite.token("qi-office", &["improvement_team"], &["*"]);
    let err = enrol(&mut client, &trust, &cohort, davies)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(
        enrol(&mut client, &team, &cohort, ahmed)
            .await
            .unwrap_err()
            .code(),
        Code::AlreadyExists
    );

    // Brown withdraws: Clarke takes the place.
    let withdrawn = client
        .withdraw_enrolment(authed(
            &team,
            pb::WithdrawEnrolmentRequest {
                name: format!("{cohort}/enrolments/40000002"),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(withdrawn.promoted.unwrap().staff, clarke);

    // Registers are for running cohorts.
    let err = register(&mut client, &team, &cohort, 1, &[(ahmed, Attended)])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    client
        .start_cohort(authed(
            &team,
            pb::StartCohortRequest {
                name: cohort.clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap();
    let err = register(
        &mut client,
        &team,
        &cohort,
        1,
        &[(ahmed, Attended), (brown, Attended)],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("records[1].staff"),
        "{}",
        err.message()
    );

    for session in 1..=4 {
        let r = register(
            &mut client,
            &team,
            &cohort,
            session,
            &[(ahmed, Attended), (clarke, Attended)],
        )
        .await
        .unwrap();
        assert!(r.new_completions.is_empty());
    }
    // Clarke missed the last day but caught up; both complete on session 5's date.
    let done = register(
        &mut client,
        &team,
        &cohort,
        5,
        &[(ahmed, Attended), (clarke, CaughtUp)],
    )
    .await
    .unwrap();
    assert_eq!(done.new_completions.len(), 2);
    assert!(
        done.new_completions
            .iter()
            .all(|c| c.completion_date == Some(dates[4]))
    );

    // The roster, the person's record, the register and the summary agree.
    let roster = client
        .list_enrolments(authed(
            &team,
            pb::ListEnrolmentsRequest {
                parent: cohort.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .enrolments;
    let states: Vec<_> = roster
        .iter()
        .map(|e| (e.staff.as_str(), e.state, e.attendance.len()))
        .collect();
    assert_eq!(
        states,
        [
            (ahmed, pb::EnrolmentState::Enrolled as i32, 5),
            (clarke, pb::EnrolmentState::Enrolled as i32, 5),
            (brown, pb::EnrolmentState::Withdrawn as i32, 0),
        ]
    );
    let record = client
        .get_training_record(authed(
            &team,
            pb::GetTrainingRecordRequest {
                staff: "sites/-/staff/40000003".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(record.completions.len(), 1);
    assert_eq!(
        record.completions[0].course_display_name,
        "QSIR Practitioner"
    );
    let summary = client
        .get_training_summary(authed(
            &team,
            pb::GetTrainingSummaryRequest {
                parent: "sites/-".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.staff_trained, 2);
    assert_eq!(summary.course_totals[0].course_code, "QSIR-PRAC");
    let sou = suite.token("sou-viewer", &["viewer"], &["SOU"]);
    let theirs = client
        .list_completions(authed(
            &sou,
            pb::ListCompletionsRequest {
                parent: "sites/-".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        theirs.completions.is_empty(),
        "SOU sees none of BAS's register"
    );

    // HR's export: two achievements; a corrected register revokes one, after the cursor.
    let hr = suite.token("esr", &["hr_sync"], &["*"]);
    let exporter = client.clone();
    let export = |since: String| {
        let mut c = exporter.clone();
        let hr = hr.clone();
        async move {
            let mut stream = c
                .stream_training_records(authed(
                    &hr,
                    pb::StreamTrainingRecordsRequest {
                        since_cursor: since,
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            let mut all = Vec::new();
            while let Some(m) = stream.message().await.unwrap() {
                all.extend(m.changes);
            }
            all
        }
    };
    let first = export(String::new()).await;
    assert_eq!(first.len(), 2);
    assert!(
        first
            .iter()
            .all(|c| c.kind == pb::TrainingRecordChangeKind::Achieved as i32
                && c.competence_name == "QSIR Practitioner")
    );
    let cursor = first.last().unwrap().cursor.clone();
    register(&mut client, &team, &cohort, 5, &[(clarke, Absent)])
        .await
        .unwrap();
    let later = export(cursor).await;
    assert_eq!(later.len(), 1);
    assert_eq!(
        (later[0].employee_number.as_str(), later[0].kind),
        ("40000003", pb::TrainingRecordChangeKind::Revoked as i32)
    );
    // Corrected back, the completion is restored as a new change; the same register sent
    // again (a retry) changes nothing and exports nothing.
    let cursor = later[0].cursor.clone();
    for round in 0..2 {
        let again = register(&mut client, &team, &cohort, 5, &[(clarke, CaughtUp)])
            .await
            .unwrap();
        let restored: Vec<_> = again.new_completions.iter().map(|c| &c.staff).collect();
        assert_eq!(restored.len(), 1 - round, "round {round}: {restored:?}");
    }
    let restored = export(cursor).await;
    assert_eq!(
        restored
            .iter()
            .map(|c| (c.employee_number.as_str(), c.kind))
            .collect::<Vec<_>>(),
        [("40000003", pb::TrainingRecordChangeKind::Achieved as i32)]
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn concurrent_enrolments_never_overfill_a_cohort() {
    let suite = TestSuite::start().await;
    let mut client = Client::new(suite.channel.clone());
    let hr = suite.token("esr", &["hr_sync"], &["*"]);
    let people: Vec<_> = (0..12)
        .map(|i| esr(&format!("{}", 50_000_000 + i), "BRM", &format!("L{i}")))
        .collect();
    sync(&mut client, &hr, pb::SyncMode::Delta, T0, people)
        .await
        .unwrap();
    let trust = suite.token("qi-office", &["improvement_team"], &["*"]);
    let cohort = client
        .create_cohort(authed(
            &trust,
            pb::CreateCohortRequest {
                parent: "trust".into(),
                cohort: Some(pb::Cohort {
                    course: "trust/courses/qsir-fund".into(),
                    display_name: "Fundamentals, cross-site".into(),
                    start_date: Some(day(today() + Days::new(30))),
                    capacity: 3,
                    ..Default::default()
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .cohort
        .unwrap()
        .name;
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (mut c, t, cohort) = (client.clone(), trust.clone(), cohort.clone());
            tokio::spawn(async move {
                enrol(
                    &mut c,
                    &t,
                    &cohort,
                    &format!("sites/BRM/staff/{}", 50_000_000 + i),
                )
                .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let enrolled = count(
        &suite,
        "SELECT count(*) FROM training.enrolment WHERE state = 'enrolled'",
    )
    .await;
    let waiting = count(
        &suite,
        "SELECT count(*) FROM training.enrolment WHERE state = 'waitlisted'",
    )
    .await;
    assert_eq!((enrolled, waiting), (3, 9));

    // Raising the capacity promotes the waitlist in order; lowering below the enrolled is refused.
    let got = client
        .get_cohort(authed(
            &trust,
            pb::GetCohortRequest {
                name: cohort.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .cohort
        .unwrap();
    let raise = pb::UpdateCohortRequest {
        cohort: Some(pb::Cohort {
            name: cohort.clone(),
            capacity: 5,
            etag: got.etag.clone(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["capacity".into()],
        }),
    };
    let raised = client
        .update_cohort(authed(&trust, raise.clone()))
        .await
        .unwrap()
        .into_inner()
        .cohort
        .unwrap();
    assert_eq!((raised.enrolled_count, raised.waitlist_count), (5, 7));
    let stale = client
        .update_cohort(authed(&trust, raise))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let lower = pb::UpdateCohortRequest {
        cohort: Some(pb::Cohort {
            name: cohort.clone(),
            capacity: 2,
            ..Default::default()
        }),
        update_mask: None,
    };
    assert_eq!(
        client
            .update_cohort(authed(&trust, lower))
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );
    let state = pb::UpdateCohortRequest {
        cohort: Some(pb::Cohort {
            name: cohort.clone(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["state".into()],
        }),
    };
    assert_eq!(
        client
            .update_cohort(authed(&trust, state))
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn cohorts_are_planned_moved_and_closed_by_their_lifecycle() {
    let suite = TestSuite::start().await;
    let mut client = Client::new(suite.channel.clone());
    let team = suite.token("sou-lead", &["improvement_team"], &["SOU"]);
    let first = NaiveDate::from_ymd_opt(2027, 1, 7).unwrap();
    let planned = client
        .plan_cohorts(authed(
            &team,
            pb::PlanCohortsRequest {
                parent: "sites/SOU".into(),
                course: "trust/courses/qsir-prac".into(),
                first_start_date: Some(day(first)),
                count: 4,
                capacity: 24,
                facilitators: vec![],
                request_id: "plan-2027".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .cohorts;
    let starts: Vec<_> = planned.iter().map(|c| c.start_date.unwrap()).collect();
    assert_eq!(
        starts,
        [0, 13, 26, 39].map(|w| day(first + Days::new(7 * w))),
        "four cohorts, thirteen weeks apart"
    );
    let c = planned[0].name.clone();
    // Move session 2 a day later.
    let moved = client
        .update_session(authed(
            &team,
            pb::UpdateSessionRequest {
                session: Some(pb::Session {
                    name: format!("{c}/sessions/2"),
                    date: Some(day(first + Days::new(8))),
                    ..Default::default()
                }),
                update_mask: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    assert_eq!(moved.date, Some(day(first + Days::new(8))));
    // Lifecycle: completing a planned cohort is refused; cancel needs a reason.
    let err = client
        .complete_cohort(authed(
            &team,
            pb::CompleteCohortRequest {
                name: c.clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = client
        .cancel_cohort(authed(
            &team,
            pb::CancelCohortRequest {
                name: c.clone(),
                reason: " ".into(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let cancelled = client
        .cancel_cohort(authed(
            &team,
            pb::CancelCohortRequest {
                name: c.clone(),
                reason: "Room unavailable".into(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .cohort
        .unwrap();
    assert_eq!(cancelled.state, pb::CohortState::Cancelled as i32);
    assert_eq!(cancelled.cancel_reason, "Room unavailable");
    let err = client
        .open_cohort(authed(
            &team,
            pb::OpenCohortRequest {
                name: c,
                etag: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn staff_are_seen_only_within_the_callers_sites() {
    let suite = TestSuite::start().await;
    let mut client = Client::new(suite.channel.clone());
    let hr = suite.token("esr", &["hr_sync"], &["*"]);
    sync(
        &mut client,
        &hr,
        pb::SyncMode::Delta,
        T0,
        vec![
            esr("60000001", "BAS", "Evans"),
            esr("60000002", "SOU", "Fisher"),
        ],
    )
    .await
    .unwrap();
    let bas = suite.token("bas-viewer", &["viewer"], &["BAS"]);
    let listed = client
        .list_staff(authed(
            &bas,
            pb::ListStaffRequest {
                parent: "sites/-".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .staff;
    assert_eq!(
        listed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["sites/BAS/staff/60000001"]
    );
    let err = client
        .get_staff(authed(
            &bas,
            pb::GetStaffRequest {
                name: "sites/SOU/staff/60000002".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = client
        .get_staff(authed(
            &bas,
            pb::GetStaffRequest {
                name: "sites/-/staff/60000002".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .get_staff(authed(
            &bas,
            pb::GetStaffRequest {
                name: "sites/BAS/staff/60000002".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::NotFound,
        "a name under the wrong site finds nothing"
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn qi_hr_import_and_export_move_csv_files_through_the_gateway() {
    let suite = TestSuite::start().await;
    let gateway = format!("http://{}", suite.addr);
    let hr = suite.token("esr", &["hr_sync"], &["*"]);
    let dir = tempfile_dir();
    let file = dir.join("extract.csv");
    std::fs::write(
        &file,
        "employee_number,assignment_number,primary_assignment,forename,surname,site,staff_group,hire_date\n\
         70000001,70000001,Y,Mo,Green,BAS,03,2020-02-01\n\
         70000002,70000002,Y,Jo,Hill,ZZZ,03,2020-02-01\n\
         70000003,70000003,Y,Al,Ince,SOU,03,not-a-date\n",
    )
    .unwrap();
    let mut report = Vec::new();
    let resp = qi::hr::import(&gateway, &hr, &file, false, "march", &mut report)
        .await
        .unwrap();
    assert_eq!(resp.inserted, 1);
    let report = String::from_utf8(report).unwrap();
    assert!(report.contains("line 3: site"), "{report}");
    assert!(report.contains("line 4: hire_date"), "{report}");
    // A FULL import with unreadable lines is refused before anything is sent.
    assert!(
        qi::hr::import(&gateway, &hr, &file, true, "march", &mut Vec::new())
            .await
            .is_err()
    );

    let mut out = Vec::new();
    let last = qi::hr::export(&gateway, &hr, "", &mut out).await.unwrap();
    assert_eq!(last, None);
    assert_eq!(
        String::from_utf8(out).unwrap().lines().next().unwrap(),
        qi::hr::EXPORT_COLUMNS.join(",")
    );
    std::fs::remove_dir_all(dir).ok();
    suite.stop().await.unwrap();
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("qi-hr-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
