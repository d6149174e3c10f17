//! Nightly extracts of the training, PDSA and metrics collections (issue 37): cohorts,
//! enrolments, completions, PDSA cycles, metrics and measurements read by change, page by
//! page, under a `-` wildcard parent for the enrolments, cycles and measurements of every
//! cohort, project and metric; whose rows each read returns, a trust-wide metric's and
//! cohort's included; `qi export` of each; and a delete, which the change feed carries.

use std::time::Duration;

use chrono::{DateTime, Utc};
use qi_e2e::metrics::{create, metric, month, record, update, update_metric, value};
use qi_e2e::projects::{create_pdsa_cycle, create_project, with_aim};
use qi_e2e::training::{EXTRACT_TIME, create_cohort, enrol, esr, new_cohort, sync};
use qi_e2e::{Caller, TestSuite, date, ymd};
use qi_proto::{metrics as mpb, projects as ppb, training as tpb};
use tonic::Code;

use ppb::ListPdsaCyclesRequest as Cycles;

/// What the suite holds once [`setup`] has run, by name.
struct Made {
    admin: Caller,
    hr: Caller,
    cohorts: [String; 3],
    projects: [String; 2],
    metrics: [String; 3],
}

/// Staff at BAS and SOU (two each); a cohort at each site with a learner of its own, and a
/// trust-wide one with a learner of each site; imported completions of a BAS and a SOU person; a
/// project with a PDSA cycle at each site; a metric at each site and a trust-wide one
/// broken down by site, each with measurements.
async fn setup(suite: &TestSuite) -> Made {
    let admin = suite.caller("qi-office", &["improvement_team"], &["*"]);
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let people = [
        esr("70000001", "BAS", "Archer"),
        esr("70000002", "BAS", "Baker"),
        esr("70000003", "SOU", "Carter"),
        esr("70000004", "SOU", "Dyer"),
    ];
    sync(&hr, tpb::SyncMode::Delta, EXTRACT_TIME, &people)
        .await
        .unwrap();
    let start = ymd(2027, 1, 11);
    let mut cohorts = Vec::new();
    for parent in ["sites/BAS", "sites/SOU", "trust"] {
        let made = create_cohort(&admin, new_cohort(parent, "Winter", start, 10))
            .await
            .unwrap();
        cohorts.push(made.name);
    }
    for (cohort, learner) in [
        (0, "staff/70000001"),
        (1, "staff/70000003"),
        (2, "staff/70000002"),
        (2, "staff/70000004"),
    ] {
        enrol(&admin, &cohorts[cohort], learner).await.unwrap();
    }
    import(&hr, &["70000002", "70000003"]).await;

    let mut projects = Vec::new();
    for site in ["BAS", "SOU"] {
        let id = format!("discharge-{}", site.to_lowercase());
        let p = create_project(&admin, site, &id, with_aim("Earlier discharge"))
            .await
            .unwrap();
        create_pdsa_cycle(&admin, &p.name, "Morning board round")
            .await
            .unwrap();
        projects.push(p.name);
    }

    let falls = metric(
        "Falls",
        mpb::MetricKind::Qms,
        mpb::ImprovementDirection::Decrease,
        mpb::MetricFrequency::Month,
        mpb::MetricValueType::Count,
        &[],
    );
    let mut metrics = Vec::new();
    for parent in ["sites/BAS", "sites/SOU"] {
        let m = create(&admin, parent, "falls", falls.clone())
            .await
            .unwrap();
        record(&admin, &m.name, vec![value(month(0), 3.0)], "")
            .await
            .unwrap();
        metrics.push(m.name);
    }
    let mut by_site = falls;
    by_site.location_breakdown = mpb::LocationBreakdown::Site as i32;
    let trust = create(&admin, "trust", "falls", by_site).await.unwrap();
    let at = |site: &str, v| mpb::Measurement {
        site: format!("sites/{site}"),
        ..value(month(0), v)
    };
    record(
        &admin,
        &trust.name,
        vec![at("BAS", 5.0), at("SOU", 9.0)],
        "",
    )
    .await
    .unwrap();
    metrics.push(trust.name);
    Made {
        admin,
        hr,
        cohorts: cohorts.try_into().unwrap(),
        projects: projects.try_into().unwrap(),
        metrics: metrics.try_into().unwrap(),
    }
}

/// Imports a historic-register completion of QSIR Practitioner for each person.
async fn import(hr: &Caller, numbers: &[&str]) {
    let completions = numbers
        .iter()
        .map(|n| tpb::ImportedCompletion {
            employee_number: (*n).into(),
            course: "QSIR-PRAC".into(),
            completion_date: Some(date(ymd(2020, 9, 7))),
            source: tpb::CompletionSource::HistoricRegister as i32,
            source_reference: "QSIR register 2019-20".into(),
            ..Default::default()
        })
        .collect();
    let req = tpb::ImportCompletionsRequest {
        parent: "sites/-".into(),
        completions,
        request_id: String::new(),
    };
    let done = hr.training().import_completions(req).await.unwrap();
    assert_eq!(done.into_inner().inserted as usize, numbers.len());
}

/// A filter of what changed after `since`.
fn after(since: DateTime<Utc>) -> String {
    let since = since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    format!("update_time > \"{since}\"")
}

/// Reads every page (of one row each) of a List by change, as `(name, update_time)`; each
/// arm is one collection.
macro_rules! by_change {
    ($caller:expr, $client:ident, $rpc:ident, $req:ident { $($field:ident: $value:expr),* }, $items:ident) => {{
        let (mut rows, mut token) = (Vec::new(), String::new());
        loop {
            #[allow(clippy::needless_update)] // Some requests have no more fields.
            let req = $req {
                page_size: 1,
                page_token: token,
                order_by: "update_time".into(),
                $($field: $value,)*
                ..Default::default()
            };
            let page = $caller
                .$client()
                .$rpc(req)
                .await
                .map(|r| r.into_inner());
            let page = match page {
                Ok(page) => page,
                Err(status) => break Err::<Vec<(String, DateTime<Utc>)>, tonic::Status>(status),
            };
            assert!(page.$items.len() <= 1);
            rows.extend(page.$items.into_iter().map(|i| (i.name, time(i.update_time))));
            if page.next_page_token.is_empty() {
                break Ok(rows);
            }
            token = page.next_page_token;
        }
    }};
}

/// A timestamp as chrono holds it.
fn time(t: Option<prost_types::Timestamp>) -> DateTime<Utc> {
    let t = t.expect("a time");
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap()).unwrap()
}

/// The names of rows read by change, after checking they came oldest change first.
fn names(rows: Result<Vec<(String, DateTime<Utc>)>, tonic::Status>) -> Vec<String> {
    let rows = rows.expect("a read");
    assert!(
        rows.windows(2).all(|w| w[0].1 <= w[1].1),
        "oldest change first: {rows:?}"
    );
    rows.into_iter().map(|(n, _)| n).collect()
}

/// Every collection, read whole and since a time by a reader: its rows, oldest change first.
struct Extract {
    cohorts: Vec<String>,
    trust_cohorts: Vec<String>,
    enrolments: Vec<String>,
    trust_enrolments: Vec<String>,
    completions: Vec<String>,
    cycles: Vec<String>,
    metrics: Vec<String>,
    trust_metrics: Vec<String>,
    measurements: Vec<String>,
    trust_measurements: Vec<String>,
}

async fn extract(c: &Caller, filter: &str) -> Extract {
    let filter = filter.to_owned();
    use mpb::{ListMeasurementsRequest as Measurements, ListMetricsRequest as Metrics};
    use tpb::{
        ListCohortsRequest as Cohorts, ListCompletionsRequest as Completions,
        ListEnrolmentsRequest as Enrolments,
    };
    macro_rules! read {
        ($client:ident, $rpc:ident, $req:ident, $parent:expr, $items:ident) => {
            names(by_change!(
                c,
                $client,
                $rpc,
                $req {
                    parent: $parent.into(),
                    filter: filter.clone()
                },
                $items
            ))
        };
    }
    Extract {
        cohorts: read!(training, list_cohorts, Cohorts, "sites/-", cohorts),
        trust_cohorts: read!(training, list_cohorts, Cohorts, "trust", cohorts),
        enrolments: read!(
            training,
            list_enrolments,
            Enrolments,
            "sites/-/cohorts/-",
            enrolments
        ),
        trust_enrolments: read!(
            training,
            list_enrolments,
            Enrolments,
            "trust/cohorts/-",
            enrolments
        ),
        completions: read!(
            training,
            list_completions,
            Completions,
            "sites/-",
            completions
        ),
        cycles: read!(
            projects,
            list_pdsa_cycles,
            Cycles,
            "sites/-/projects/-",
            pdsa_cycles
        ),
        metrics: read!(metrics, list_metrics, Metrics, "sites/-", metrics),
        trust_metrics: read!(metrics, list_metrics, Metrics, "trust", metrics),
        measurements: read!(
            metrics,
            list_measurements,
            Measurements,
            "sites/-/metrics/-",
            measurements
        ),
        trust_measurements: read!(
            metrics,
            list_measurements,
            Measurements,
            "trust/metrics/-",
            measurements
        ),
    }
}

/// The names, with their collection's prefix checked and cut off to what follows `under`.
fn under<'a>(rows: &'a [String], under: &str) -> Vec<&'a str> {
    rows.iter()
        .map(|r| {
            r.strip_prefix(under)
                .unwrap_or_else(|| panic!("{r} is not under {under}"))
        })
        .collect()
}

#[tokio::test]
async fn every_collection_reads_what_changed_since_and_only_the_callers_sites() {
    let suite = TestSuite::start().await;
    let made = setup(&suite).await;
    let [bas_cohort, sou_cohort, trust_cohort] = &made.cohorts;
    let [bas_metric, sou_metric, trust_metric] = &made.metrics;
    let bas = suite.caller("bas-bi", &["viewer"], &["BAS"]);

    // Everything a BAS reader may read, and nothing of SOU's: a trust-wide cohort's roster
    // and a trust-wide metric's measurements only where they are BAS's.
    let all = extract(&bas, "").await;
    assert_eq!(all.cohorts, [bas_cohort.as_str()]);
    assert_eq!(all.trust_cohorts, [trust_cohort.as_str()]);
    assert_eq!(
        all.enrolments,
        [format!("{bas_cohort}/enrolments/70000001")]
    );
    assert_eq!(
        all.trust_enrolments,
        [format!("{trust_cohort}/enrolments/70000002")]
    );
    assert_eq!(
        under(&all.completions, "staff/70000002/completions/").len(),
        1
    );
    assert_eq!(under(&all.cycles, &made.projects[0]), ["/pdsaCycles/1"]);
    assert_eq!(all.metrics, [bas_metric.as_str()]);
    assert_eq!(all.trust_metrics, [trust_metric.as_str()]);
    assert_eq!(under(&all.measurements, bas_metric).len(), 1);
    assert_eq!(under(&all.trust_measurements, trust_metric).len(), 1);
    // A trust-wide reader reads both sites.
    let whole = extract(&made.admin, "").await;
    assert_eq!(whole.cohorts.len(), 2);
    assert_eq!(whole.trust_enrolments.len(), 2);
    assert_eq!(whole.completions.len(), 2);
    assert_eq!(whole.cycles.len(), 2);
    assert_eq!(whole.measurements.len(), 2);
    assert_eq!(whole.trust_measurements.len(), 2);

    // The last extract ran now; then one change in each collection, at each site.
    let since = Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let rename = |name: &str| tpb::UpdateCohortRequest {
        cohort: Some(tpb::Cohort {
            name: name.into(),
            display_name: "Winter (moved)".into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["display_name".into()],
        }),
    };
    for cohort in [sou_cohort, bas_cohort] {
        made.admin
            .training()
            .update_cohort(rename(cohort))
            .await
            .unwrap();
    }
    let withdraw = tpb::WithdrawEnrolmentRequest {
        name: format!("{trust_cohort}/enrolments/70000002"),
    };
    made.admin
        .training()
        .withdraw_enrolment(withdraw)
        .await
        .unwrap();
    import(&made.hr, &["70000001"]).await;
    for project in made.projects.iter().rev() {
        create_pdsa_cycle(&made.admin, project, "Discharge lounge")
            .await
            .unwrap();
    }
    for m in [sou_metric, bas_metric] {
        let mut changed = qi_e2e::metrics::get_metric(&made.admin, m).await.unwrap();
        changed.description = "Inpatient falls a month".into();
        update_metric(&made.admin, update(changed, &["description"]))
            .await
            .unwrap();
    }
    record(&made.admin, bas_metric, vec![value(month(1), 4.0)], "")
        .await
        .unwrap();

    let changed = extract(&bas, &after(since)).await;
    assert_eq!(changed.cohorts, [bas_cohort.as_str()]);
    assert!(
        changed.trust_cohorts.is_empty(),
        "{:?}",
        changed.trust_cohorts
    );
    assert!(changed.enrolments.is_empty(), "{:?}", changed.enrolments);
    // A withdrawal is a change of state, which the extract sees.
    assert_eq!(
        changed.trust_enrolments,
        [format!("{trust_cohort}/enrolments/70000002")]
    );
    let withdrawn = bas
        .training()
        .list_enrolments(tpb::ListEnrolmentsRequest {
            parent: "trust/cohorts/-".into(),
            filter: format!("{} AND state = WITHDRAWN", after(since)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .enrolments;
    assert_eq!(withdrawn.len(), 1);
    assert_eq!(
        under(&changed.completions, "staff/70000001/completions/").len(),
        1
    );
    assert_eq!(under(&changed.cycles, &made.projects[0]), ["/pdsaCycles/2"]);
    assert_eq!(changed.metrics, [bas_metric.as_str()]);
    assert!(changed.trust_metrics.is_empty());
    assert_eq!(under(&changed.measurements, bas_metric).len(), 1);
    assert!(changed.trust_measurements.is_empty());
    // The whole trust's changes, oldest first: SOU's before BAS's where SOU's came first.
    let trust_wide = extract(&made.admin, &after(since)).await;
    assert_eq!(
        trust_wide.cohorts,
        [sou_cohort.as_str(), bas_cohort.as_str()]
    );
    assert_eq!(
        trust_wide.cycles,
        [
            format!("{}/pdsaCycles/2", made.projects[1]),
            format!("{}/pdsaCycles/2", made.projects[0])
        ]
    );
    assert_eq!(
        trust_wide.metrics,
        [sou_metric.as_str(), bas_metric.as_str()]
    );

    // Another site's wildcard is refused by the gateway, as its one resource would be.
    for parent in ["sites/SOU/cohorts/-", "sites/SOU/metrics/-"] {
        let refused = if parent.contains("cohorts") {
            bas.training()
                .list_enrolments(tpb::ListEnrolmentsRequest {
                    parent: parent.into(),
                    ..Default::default()
                })
                .await
                .map(|_| ())
        } else {
            bas.metrics()
                .list_measurements(mpb::ListMeasurementsRequest {
                    parent: parent.into(),
                    ..Default::default()
                })
                .await
                .map(|_| ())
        };
        assert_eq!(
            refused.unwrap_err().code(),
            Code::PermissionDenied,
            "{parent}"
        );
    }
    // A project SOU leads is read by BAS only where BAS takes part: here, not at all.
    let sou_cycles = names(by_change!(
        bas,
        projects,
        list_pdsa_cycles,
        Cycles {
            parent: "sites/SOU/projects/-".into()
        },
        pdsa_cycles
    ));
    assert!(sou_cycles.is_empty(), "{sou_cycles:?}");

    // The same extract over HTTP/JSON: every cohort's enrolments changed since.
    let token = suite.token("bas-bi", &["viewer"], &["BAS"]);
    let body = reqwest::Client::new()
        .get(format!(
            "http://{}/v1/trust/cohorts/-/enrolments",
            suite.addr
        ))
        .query(&[
            ("filter", after(since).as_str()),
            ("orderBy", "update_time"),
        ])
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["enrolments"][0]["state"], "ENROLMENT_STATE_WITHDRAWN",
        "{body}"
    );
    assert_eq!(body["enrolments"].as_array().map(Vec::len), Some(1));
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_bad_extract_request_is_refused_naming_the_field() {
    let suite = TestSuite::start().await;
    let made = setup(&suite).await;
    let c = &made.admin;
    let code_and_message = |r: Result<(), tonic::Status>| {
        let e = r.unwrap_err();
        (e.code(), e.message().to_owned())
    };
    let cohorts = |parent: &str, filter: &str| {
        let req = tpb::ListCohortsRequest {
            parent: parent.into(),
            filter: filter.into(),
            ..Default::default()
        };
        async move { c.training().list_cohorts(req).await.map(|_| ()) }
    };
    for (parent, filter, says) in [
        ("sites/-", "title = Winter", "`title = …`: no field `title`"),
        ("sites/-", "state = BUSY", "`BUSY` is not a state"),
        ("sites/-", "update_time > yesterday", "update_time"),
        ("trust", "site = BAS", "trust-wide cohorts are at no site"),
    ] {
        let (code, message) = code_and_message(cohorts(parent, filter).await);
        assert_eq!(code, Code::InvalidArgument, "{filter}");
        assert!(
            message.contains("filter") && message.contains(says),
            "{filter}: {message}"
        );
    }
    let enrolments = |parent: &str, filter: &str| {
        let req = tpb::ListEnrolmentsRequest {
            parent: parent.into(),
            filter: filter.into(),
            ..Default::default()
        };
        async move { c.training().list_enrolments(req).await.map(|_| ()) }
    };
    let (code, message) = code_and_message(enrolments("sites/-/cohorts/-", "site = BAS").await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("fields: update_time, state"), "{message}");
    let (code, message) = code_and_message(enrolments("sites/-/cohort/-", "").await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("parent"), "{message}");
    let cycles = |req: Cycles| async move { c.projects().list_pdsa_cycles(req).await.map(|_| ()) };
    for (req, field) in [
        (
            Cycles {
                parent: "trust/projects/-".into(),
                ..Default::default()
            },
            "parent",
        ),
        (
            Cycles {
                parent: "sites/-/projects/-".into(),
                ramp: format!("{}/pdsaCycles/1", made.projects[0]),
                ..Default::default()
            },
            "ramp",
        ),
        (
            Cycles {
                parent: made.projects[0].clone(),
                order_by: "update_time desc".into(),
                ..Default::default()
            },
            "order_by",
        ),
    ] {
        let (code, message) = code_and_message(cycles(req).await);
        assert_eq!(code, Code::InvalidArgument, "{field}");
        assert!(message.contains(field), "{field}: {message}");
    }
    let measurements = mpb::ListMeasurementsRequest {
        parent: "sites/-/metrics/-".into(),
        filter: "period > 2026-01-01".into(),
        ..Default::default()
    };
    let (code, message) = code_and_message(
        c.metrics()
            .list_measurements(measurements)
            .await
            .map(|_| ()),
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("no field `period`"), "{message}");
    let completions = tpb::ListCompletionsRequest {
        parent: "sites/-".into(),
        order_by: "completion_date".into(),
        ..Default::default()
    };
    let (code, message) =
        code_and_message(c.training().list_completions(completions).await.map(|_| ()));
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("order_by"), "{message}");
    suite.stop().await.unwrap();
}

/// `qi export` of `collection` with a trust-wide reader's token, in pages of two.
async fn export(
    suite: &TestSuite,
    collection: &str,
    since: Option<DateTime<Utc>>,
    site: Option<&str>,
    format: qi::export::Format,
) -> (Vec<String>, qi::export::Exported) {
    let args = qi::export::ExportArgs {
        collection: collection.into(),
        since,
        site: site.map(str::to_owned),
        format,
        gateway: format!("http://{}", suite.addr),
        token: suite.token("bi", &["viewer"], &["*"]),
        page_size: 2,
    };
    let (mut out, mut progress) = (Vec::new(), Vec::new());
    let done = qi::export::run(&args, &mut out, &mut progress, false)
        .await
        .unwrap();
    let lines = String::from_utf8(out).unwrap();
    (lines.lines().map(str::to_owned).collect(), done)
}

#[tokio::test]
async fn qi_export_writes_every_collection_and_resumes_each() {
    use qi::export::Format;
    let suite = TestSuite::start().await;
    let made = setup(&suite).await;
    // Every parent of a collection in turn: the trust-wide rows too, unless --site.
    for (collection, rows, at_bas) in [
        ("cohorts", 3, 1),
        ("enrolments", 4, 1),
        ("completions", 2, 1),
        ("pdsa-cycles", 2, 1),
        ("metrics", 3, 1),
        ("measurements", 4, 1),
    ] {
        let (lines, done) = export(&suite, collection, None, None, Format::Jsonl).await;
        assert_eq!(
            (lines.len(), done.rows),
            (rows, rows as u64),
            "{collection}"
        );
        let resume = done.resume.expect("a resume point");
        let (lines, _) = export(&suite, collection, None, Some("BAS"), Format::Jsonl).await;
        assert_eq!(lines.len(), at_bas, "{collection} at BAS: {lines:?}");
        // Nothing changed since: from the newest change it wrote, nothing; from the resume
        // point it gave (30 minutes earlier), everything again.
        let newest = resume + qi_platform::extract::RESUME_OVERLAP;
        let (lines, again) = export(&suite, collection, Some(newest), None, Format::Jsonl).await;
        assert!(lines.is_empty(), "{collection}: {lines:?}");
        assert_eq!(
            again.resume,
            Some(newest),
            "{collection}: no change keeps --since"
        );
        let (lines, _) = export(&suite, collection, Some(resume), None, Format::Csv).await;
        assert_eq!(lines.len(), rows + 1, "{collection}: a header and the rows");
        assert!(lines[0].starts_with("name,"), "{collection}: {}", lines[0]);
        assert!(
            lines[0].contains("updateTime"),
            "{collection}: {}",
            lines[0]
        );
    }
    // After one change, only it.
    record(
        &made.admin,
        &made.metrics[1],
        vec![value(month(1), 7.0)],
        "",
    )
    .await
    .unwrap();
    let (_, before) = export(&suite, "measurements", None, None, Format::Jsonl).await;
    let newest = before.resume.unwrap() + qi_platform::extract::RESUME_OVERLAP;
    let since = newest - chrono::Duration::microseconds(1);
    let (lines, _) = export(&suite, "measurements", Some(since), None, Format::Jsonl).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains(&made.metrics[1]), "{}", lines[0]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_delete_is_not_in_an_extract_but_in_the_change_feed() {
    let suite = TestSuite::start().await;
    let made = setup(&suite).await;
    let bas_metric = &made.metrics[0];
    qi_e2e::metrics::annotate(&made.admin, bas_metric, "ward-move", month(0), "Ward moved")
        .await
        .unwrap();
    let note = format!("{bas_metric}/annotations/ward-move");
    let since = Utc::now();
    qi_e2e::metrics::delete_annotation(&made.admin, &note, false)
        .await
        .unwrap();
    // The extract of the metric's measurements since then holds nothing of it.
    let (lines, _) = export(
        &suite,
        "measurements",
        Some(since),
        None,
        qi::export::Format::Jsonl,
    )
    .await;
    assert!(lines.is_empty(), "{lines:?}");
    // The feed, from its oldest change, carries the delete, after the creation.
    let bas = suite.caller("bas-bi", &["viewer"], &["BAS"]);
    let req = mpb::WatchChangesRequest {
        collections: vec!["annotations".into()],
        ..Default::default()
    };
    let mut feed = bas.metrics().watch_changes(req).await.unwrap().into_inner();
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        let m = tokio::time::timeout(Duration::from_secs(20), feed.message())
            .await
            .expect("a change in time")
            .unwrap()
            .expect("the feed stays open");
        if m.resource_name == note {
            kinds.push(m.kind());
        }
    }
    use qi_proto::common::ChangeKind;
    assert_eq!(kinds, [ChangeKind::Created, ChangeKind::Deleted]);
    suite.stop().await.unwrap();
}
