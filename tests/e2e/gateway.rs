//! The gateway's own duties: the audit trail, rate limits, trace ids, and answering for a
//! backend that is down.

use std::time::{Duration, Instant};

use qi_e2e::{TestSuite, authed, random_secret};
use qi_proto::gateway as gw;
use qi_proto::gateway::gateway_service_client::GatewayServiceClient;
use qi_proto::training as pb;
use qi_proto::training::training_service_client::TrainingServiceClient;
use tonic::Code;
use tonic_types::StatusExt as _;

fn list_cohorts(parent: &str) -> pb::ListCohortsRequest {
    pb::ListCohortsRequest {
        parent: parent.into(),
        ..Default::default()
    }
}

async fn audit(
    suite: &TestSuite,
    admin: &str,
    req: gw::ListAuditEventsRequest,
) -> Vec<gw::AuditEvent> {
    GatewayServiceClient::new(suite.channel.clone())
        .list_audit_events(authed(admin, req))
        .await
        .unwrap()
        .into_inner()
        .audit_events
}

#[tokio::test]
async fn every_decision_is_in_the_audit_trail_with_its_trace_id() {
    let suite = TestSuite::start().await;
    let mut training = TrainingServiceClient::new(suite.channel.clone());
    let nurse = suite.token("bas-nurse", &["viewer"], &["BAS"]);
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let mut allowed = authed(&nurse, list_cohorts("sites/BAS"));
    allowed.metadata_mut().insert(
        "traceparent",
        format!("00-{trace}-b7ad6b7169203331-01").parse().unwrap(),
    );
    training.list_cohorts(allowed).await.unwrap();
    let denied = training
        .list_cohorts(authed(&nurse, list_cohorts("sites/SOU")))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let anonymous = training
        .list_cohorts(list_cohorts("sites/BAS"))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);

    // The writer batches off the hot path: wait (boundedly) until both events are in.
    let admin = suite.token("auditor", &["admin"], &["*"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mine = loop {
        let mine = audit(
            &suite,
            &admin,
            gw::ListAuditEventsRequest {
                parent: "trust".into(),
                subject: "bas-nurse".into(),
                ..Default::default()
            },
        )
        .await;
        if mine.len() >= 2 || Instant::now() > deadline {
            break mine;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(mine.len(), 2, "{mine:#?}");
    let (deny, allow) = (&mine[0], &mine[1]);
    assert_eq!(
        (allow.decision, allow.site.as_str(), allow.trace_id.as_str()),
        (gw::AuditDecision::Allow as i32, "BAS", trace)
    );
    assert_eq!(allow.method, "/qi.training.v1.TrainingService/ListCohorts");
    assert_eq!(
        (deny.decision, deny.site.as_str(), deny.code.as_str()),
        (gw::AuditDecision::Deny as i32, "SOU", "PermissionDenied")
    );
    assert_eq!(
        deny.trace_id.len(),
        32,
        "a trace is started when the caller sent none"
    );
    // Refusals before authentication are counted into one row a minute: see
    // `a_flood_of_garbage_tokens_writes_aggregated_audit_rows_and_is_limited_per_address`.

    // Only trust-wide admins read the trail.
    let err = GatewayServiceClient::new(suite.channel.clone())
        .list_audit_events(authed(
            &nurse,
            gw::ListAuditEventsRequest {
                parent: "trust".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn the_audit_trail_pages_a_sites_events_newest_first_within_a_time_window() {
    let suite = TestSuite::start().await;
    let mut training = TrainingServiceClient::new(suite.channel.clone());
    let started = prost_types::Timestamp::from(std::time::SystemTime::now());
    let (bas, brm) = (
        suite.token("bas-clerk", &["viewer"], &["BAS"]),
        suite.token("brm-clerk", &["viewer"], &["BRM"]),
    );
    for (token, parent) in [(&bas, "sites/BAS"), (&brm, "sites/BRM")] {
        for _ in 0..3 {
            training
                .list_cohorts(authed(token, list_cohorts(parent)))
                .await
                .unwrap();
        }
    }
    let admin = suite.token("auditor", &["admin"], &["*"]);
    let page = |page_token: String| gw::ListAuditEventsRequest {
        parent: "trust".into(),
        site: "BAS".into(),
        start_time: Some(started),
        page_size: 2,
        page_token,
        ..Default::default()
    };
    // The writer batches off the hot path: wait (boundedly) for the third BAS event.
    let deadline = Instant::now() + Duration::from_secs(10);
    let all = || gw::ListAuditEventsRequest {
        page_size: 10,
        ..page(String::new())
    };
    while audit(&suite, &admin, all()).await.len() < 3 {
        assert!(Instant::now() < deadline, "the BAS events never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut client = GatewayServiceClient::new(suite.channel.clone());
    let first = client
        .list_audit_events(authed(&admin, page(String::new())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.audit_events.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let second = client
        .list_audit_events(authed(&admin, page(first.next_page_token)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.audit_events.len(), 1, "{second:#?}");
    assert!(second.next_page_token.is_empty());
    let events: Vec<_> = first
        .audit_events
        .iter()
        .chain(&second.audit_events)
        .collect();
    assert!(
        events
            .iter()
            .all(|e| e.site == "BAS" && e.subject == "bas-clerk")
    );
    let mut traces: Vec<_> = events.iter().map(|e| e.trace_id.as_str()).collect();
    traces.sort_unstable();
    traces.dedup();
    assert_eq!(traces.len(), 3, "a page repeated an event");
    let times: Vec<_> = events
        .iter()
        .map(|e| e.time.map(|t| (t.seconds, t.nanos)))
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "not newest first: {times:?}"
    );
    // A window that ends before the calls holds none of them.
    let before = audit(
        &suite,
        &admin,
        gw::ListAuditEventsRequest {
            parent: "trust".into(),
            site: "BAS".into(),
            end_time: Some(started),
            ..Default::default()
        },
    )
    .await;
    assert!(before.is_empty(), "{before:#?}");
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_graceful_stop_flushes_the_audit_trail() {
    let suite = TestSuite::start().await;
    let mut training = TrainingServiceClient::new(suite.channel.clone());
    let nurse = suite.token("ward-7", &["viewer"], &["BRM"]);
    for _ in 0..25 {
        training
            .list_cohorts(authed(&nurse, list_cohorts("sites/BRM")))
            .await
            .unwrap();
    }
    let url = suite.database_url.clone();
    suite.stop().await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM gateway.audit_event WHERE subject = 'ward-7'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(n, 25);
}

#[tokio::test]
async fn a_caller_over_its_rate_is_told_to_slow_down_and_others_are_not() {
    let suite = TestSuite::start_with(&[
        ("QI_RATE_LIMIT_PER_SUBJECT", "1"),
        ("QI_RATE_LIMIT_BURST", "5"),
    ])
    .await;
    let mut training = TrainingServiceClient::new(suite.channel.clone());
    let busy = suite.token("dashboard", &["viewer"], &["BAS"]);
    let (mut codes, mut waits) = (Vec::new(), Vec::new());
    for _ in 0..8 {
        codes.push(
            match training
                .list_cohorts(authed(&busy, list_cohorts("sites/BAS")))
                .await
            {
                Ok(_) => Code::Ok,
                Err(s) => {
                    waits.push(s.get_details_retry_info().and_then(|r| r.retry_delay));
                    let info = s.get_details_error_info().expect("an ErrorInfo");
                    assert_eq!(
                        (info.domain.as_str(), info.reason.as_str()),
                        ("qi", "RATE_LIMITED")
                    );
                    assert!(info.metadata.contains_key("retry_after_ms"), "{info:?}");
                    s.code()
                }
            },
        );
    }
    // Each refusal says when a call will pass: under a second at one call a second.
    assert!(
        waits
            .iter()
            .all(|w| w.is_some_and(|w| w > Duration::ZERO && w <= Duration::from_secs(1))),
        "{waits:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == Code::Ok).count(),
        5,
        "{codes:?}"
    );
    assert!(
        codes[5..].iter().all(|c| *c == Code::ResourceExhausted),
        "{codes:?}"
    );
    let other = suite.token("intranet", &["viewer"], &["BAS"]);
    training
        .list_cohorts(authed(&other, list_cohorts("sites/BAS")))
        .await
        .unwrap();
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_backend_that_is_down_is_unavailable_at_once_and_served_again_when_it_returns() {
    qi_platform::telemetry::init_for_tests();
    let url = qi_test_kit::database().await.unwrap();
    let secret = random_secret();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let listen = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let vars = [
        ("QI_DATABASE_URL", url),
        ("QI_JWT_SECRET", secret.clone()),
        ("QI_ACCESS_KEY", random_secret()),
        ("QI_LISTEN", listen.to_string()),
        ("QI_TRAINING_URL", format!("http://{closed}")),
    ];
    let config = qi_platform::Config::from_lookup(|k| {
        vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    })
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let gateway = tokio::spawn({
        let config = config.clone();
        async move {
            qi::serve(qi::Role::Gateway, &config, async {
                let _ = stopped.await;
            })
            .await
        }
    });
    let token = qi_gateway::auth::mint_dev_token(
        &secret,
        &config.jwt,
        "nurse",
        &["viewer".into()],
        &["BAS".into()],
        Duration::from_secs(60),
    )
    .unwrap();
    let channel = loop {
        match tonic::transport::Endpoint::from_shared(format!("http://{listen}"))
            .unwrap()
            .connect()
            .await
        {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    // The call carries a deadline: a gateway that waited on the dead backend would end it
    // as DEADLINE_EXCEEDED; it must answer UNAVAILABLE before that.
    let call = || {
        let mut req = authed(&token, list_cohorts("sites/BAS"));
        req.set_timeout(Duration::from_secs(5));
        req
    };
    let mut client = TrainingServiceClient::new(channel);
    let err = client.list_cohorts(call()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    // What the transport said (the address, the OS error) is logged, not told the caller.
    let info = err.get_details_error_info().expect("an ErrorInfo");
    assert_eq!(
        (info.domain.as_str(), info.reason.as_str()),
        ("qi", "DEPENDENCY_UNAVAILABLE")
    );
    assert_eq!(err.message(), "service unavailable", "{err:?}");
    assert!(
        !format!("{err:?}").contains(&closed.port().to_string()),
        "{err:?}"
    );

    // The service comes up where the gateway expects it: the same gateway, not restarted,
    // serves again (its channel reconnects with backoff, so allow it a few tries).
    let service_vars = [
        ("QI_DATABASE_URL", config.database_url.clone().unwrap()),
        ("QI_ACCESS_KEY", config.access_keys.current.clone().unwrap()),
        ("QI_LISTEN", closed.to_string()),
    ];
    let service_config = qi_platform::Config::from_lookup(|k| {
        service_vars
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.clone())
    })
    .unwrap();
    let (stop_service, service_stopped) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(async move {
        qi::serve(qi::Role::Training, &service_config, async {
            let _ = service_stopped.await;
        })
        .await
    });
    let mut codes = Vec::new();
    let served = loop {
        match client.list_cohorts(call()).await {
            Ok(r) => break r.into_inner(),
            Err(e) => {
                assert_eq!(e.code(), Code::Unavailable, "{e:?}");
                codes.push(e.code());
                assert!(codes.len() < 100, "the gateway never recovered");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert!(served.cohorts.is_empty());
    let _ = stop_service.send(());
    service.await.unwrap().unwrap();
    let _ = stop.send(());
    gateway.await.unwrap().unwrap();
}

/// One gRPC-Web call over HTTP/1.1, as a browser makes it; returns the raw response.
async fn grpc_web(
    addr: std::net::SocketAddr,
    path: &str,
    token: Option<&str>,
    message: &[u8],
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(message);
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: qi\r\ncontent-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\n{auth}content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    // Trailers come as a frame (`grpc-status:0`) or, for a trailers-only answer, as headers
    // (`grpc-status: 16`): read both alike.
    String::from_utf8_lossy(&out).replace("grpc-status: ", "grpc-status:")
}

#[tokio::test]
async fn a_browser_calls_the_gateway_with_grpc_web() {
    use prost::Message as _;
    let suite = TestSuite::start().await;
    let health = grpc_web(suite.addr, "/grpc.health.v1.Health/Check", None, &[]).await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("grpc-status:0"), "{health}");
    let viewer = suite.token("intranet", &["viewer"], &["BAS"]);
    let req = pb::ListCoursesRequest {
        parent: "trust".into(),
        ..Default::default()
    }
    .encode_to_vec();
    let courses = grpc_web(
        suite.addr,
        "/qi.training.v1.TrainingService/ListCourses",
        Some(&viewer),
        &req,
    )
    .await;
    assert!(courses.contains("grpc-status:0"), "{courses}");
    assert!(courses.contains("QSIR Practitioner"), "{courses}");
    let refused = grpc_web(
        suite.addr,
        "/qi.training.v1.TrainingService/ListCourses",
        None,
        &req,
    )
    .await;
    assert!(
        refused.contains("grpc-status:16"),
        "unauthenticated: {refused}"
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn the_overview_gathers_each_services_headline_for_the_callers_sites() {
    use qi_proto::projects as pj;
    use qi_proto::projects::project_service_client::ProjectServiceClient;
    let suite = TestSuite::start().await;
    let mut training = TrainingServiceClient::new(suite.channel.clone());
    let hr = suite.token("esr", &["hr_sync"], &["*"]);
    let person = |emp: &str, site: &str| pb::EsrRow {
        employee_number: emp.into(),
        assignment_number: emp.into(),
        primary_assignment: true,
        forename: "Kim".into(),
        surname: format!("S{emp}"),
        site: site.into(),
        ..Default::default()
    };
    let extract = vec![pb::SyncStaffRequest {
        extract_time: Some(prost_types::Timestamp {
            seconds: 1_790_000_000,
            nanos: 0,
        }),
        rows: vec![person("80000001", "BAS"), person("80000002", "SOU")],
        complete: true,
        ..Default::default()
    }];
    training
        .sync_staff(authed(&hr, tokio_stream::iter(extract)))
        .await
        .unwrap();
    // A cross-site Fundamentals day last week, both attended: two people trained.
    let team = suite.token("qi-office", &["improvement_team"], &["*"]);
    let day = chrono::Utc::now().date_naive() - chrono::Days::new(7);
    let cohort = training
        .create_cohort(authed(
            &team,
            pb::CreateCohortRequest {
                parent: "trust".into(),
                cohort: Some(pb::Cohort {
                    course: "trust/courses/qsir-fund".into(),
                    display_name: "Fundamentals".into(),
                    start_date: Some(qi_platform::convert::date(day)),
                    capacity: 10,
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
    for staff in ["sites/BAS/staff/80000001", "sites/SOU/staff/80000002"] {
        training
            .create_enrolment(authed(
                &team,
                pb::CreateEnrolmentRequest {
                    parent: cohort.clone(),
                    enrolment: Some(pb::Enrolment {
                        staff: staff.into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
            ))
            .await
            .unwrap();
    }
    training
        .start_cohort(authed(
            &team,
            pb::StartCohortRequest {
                name: cohort.clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap();
    training
        .record_attendance(authed(
            &team,
            pb::RecordAttendanceRequest {
                session: format!("{cohort}/sessions/1"),
                records: ["sites/BAS/staff/80000001", "sites/SOU/staff/80000002"]
                    .into_iter()
                    .map(|s| pb::AttendanceRecord {
                        staff: s.into(),
                        status: pb::AttendanceStatus::Attended as i32,
                    })
                    .collect(),
            },
        ))
        .await
        .unwrap();
    // An idea at each site.
    let mut projects = ProjectServiceClient::new(suite.channel.clone());
    for site in ["BAS", "SOU"] {
        let lead = suite.token("lead", &["contributor"], &[site]);
        projects
            .create_idea(authed(
                &lead,
                pj::CreateIdeaRequest {
                    parent: format!("sites/{site}"),
                    idea: Some(pj::Idea {
                        title: "Earlier discharge".into(),
                        submitter: "A nurse".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
    }
    let overview = |token: String| {
        let channel = suite.channel.clone();
        async move {
            GatewayServiceClient::new(channel)
                .get_overview(authed(&token, gw::GetOverviewRequest {}))
                .await
                .unwrap()
                .into_inner()
                .overview
                .unwrap()
        }
    };
    let whole = overview(suite.token("board", &["viewer"], &["*"])).await;
    assert!(whole.unavailable.is_empty(), "{:?}", whole.unavailable);
    assert_eq!((whole.staff_trained, whole.ideas_received), (2, 2));
    assert_eq!(whole.trained_by_course[0].course_code, "QSIR-FUND");
    let bas = overview(suite.token("bas-board", &["viewer"], &["BAS"])).await;
    assert_eq!(
        (bas.staff_trained, bas.ideas_received),
        (1, 1),
        "only Basildon's share"
    );
    assert_eq!(bas.sites, ["BAS"]);
    suite.stop().await.unwrap();
}

/// A call with a garbage token, from `client` as the trusted proxy (this test) says.
async fn garbage_call(suite: &TestSuite, client: &str) -> tonic::Status {
    let mut req = authed("not.a.token", list_cohorts("sites/BAS"));
    req.metadata_mut()
        .insert("x-forwarded-for", client.parse().unwrap());
    TrainingServiceClient::new(suite.channel.clone())
        .list_cohorts(req)
        .await
        .expect_err("a garbage token is refused")
}

#[tokio::test]
async fn a_flood_of_garbage_tokens_writes_aggregated_audit_rows_and_is_limited_per_address() {
    // This test plays the ingress: its loopback address is the trusted proxy.
    let suite = TestSuite::start_with(&[
        ("QI_TRUSTED_PROXIES", "127.0.0.1, ::1"),
        ("QI_AUTH_FAILURE_RATE", "5"),
    ])
    .await;
    let (attacker, bystander) = ("203.0.113.66", "198.51.100.7");
    let mut codes = std::collections::BTreeMap::new();
    let mut limited = None;
    let started = Instant::now();
    for _ in 0..300 {
        let status = garbage_call(&suite, attacker).await;
        *codes.entry(format!("{:?}", status.code())).or_insert(0) += 1;
        if status.code() == Code::ResourceExhausted {
            limited = Some(status);
        }
    }
    // The burst (ten times the rate, plus what refilled meanwhile) is refused as
    // unauthenticated; the rest, without their tokens being looked at, as too many.
    let unauthenticated = codes["Unauthenticated"];
    let refilled = (started.elapsed().as_secs_f64() * 5.0).ceil() as i32;
    assert!(
        (50..=50 + refilled).contains(&unauthenticated),
        "{codes:?} in {:?}",
        started.elapsed()
    );
    assert_eq!(
        unauthenticated + codes["ResourceExhausted"],
        300,
        "{codes:?}"
    );
    // A refusal for the rate says when to retry. (Taken from the flood itself: a call after
    // it may find a token refilled, on a loaded machine, and be judged on its token again.)
    let limited = limited.expect("some calls were refused for the rate");
    assert!(limited.get_details_retry_info().is_some(), "{limited:?}");
    // Another address is judged on its own.
    assert_eq!(
        garbage_call(&suite, bystander).await.code(),
        Code::Unauthenticated
    );

    // The trail: one row per kind of refusal and address, carrying the count.
    let url = suite.database_url.clone();
    suite.stop().await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let rows: Vec<(String, String, i32)> = sqlx::query_as(
        "SELECT client_address, code, count FROM gateway.audit_event
         WHERE subject = '' ORDER BY client_address, code",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(
        rows,
        [
            (bystander.to_owned(), "Unauthenticated".to_owned(), 1),
            (
                attacker.to_owned(),
                "ResourceExhausted".to_owned(),
                300 - unauthenticated
            ),
            (
                attacker.to_owned(),
                "Unauthenticated".to_owned(),
                unauthenticated
            ),
        ]
    );
}

#[tokio::test]
async fn forwarded_for_is_ignored_from_a_peer_that_is_not_a_trusted_proxy() {
    let suite = TestSuite::start().await;
    let _ = garbage_call(&suite, "203.0.113.66").await;
    let url = suite.database_url.clone();
    suite.stop().await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let addresses: Vec<Option<String>> =
        sqlx::query_scalar("SELECT client_address FROM gateway.audit_event WHERE subject = ''")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    assert_eq!(addresses.len(), 1);
    let address = addresses[0].clone().unwrap_or_default();
    assert!(
        address == "127.0.0.1" || address == "::1",
        "the peer, not the header: {address}"
    );
}
