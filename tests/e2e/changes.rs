//! Change feeds (`WatchChanges`) through the gateway: what a write publishes, in order, from
//! a cursor; what each site's caller sees (and a HIDDEN change when a project drops its
//! site); live delivery; the errors of a bad request, an expired token and a purged
//! cursor; and concurrent writers, none of whose acknowledged changes a consumer misses.

use std::collections::BTreeSet;
use std::time::Duration;

use qi_e2e::projects::{create_project, start_project, submit_idea, update_project, with_aim};
use qi_e2e::{Caller, TestSuite, fields};
use qi_proto::common::{ChangeKind, WatchStart};
use qi_proto::projects as pb;
use tonic::{Code, Streaming};

/// Long enough for any change to arrive on a loaded machine; the feed promises 1 s.
const PATIENCE: Duration = Duration::from_secs(20);

fn watch_from(cursor: &str) -> pb::WatchChangesRequest {
    pb::WatchChangesRequest {
        cursor: cursor.into(),
        ..Default::default()
    }
}

async fn open(c: &Caller, req: pb::WatchChangesRequest) -> Streaming<pb::WatchChangesResponse> {
    c.projects()
        .watch_changes(req)
        .await
        .expect("the feed opens")
        .into_inner()
}

/// The next message, within [`PATIENCE`].
async fn next(stream: &mut Streaming<pb::WatchChangesResponse>) -> pb::WatchChangesResponse {
    tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("a message in time")
        .expect("the feed stays up")
        .expect("the feed stays open")
}

/// Every change up to the feed's first checkpoint (its backlog delivered), and that cursor.
async fn backlog(
    stream: &mut Streaming<pb::WatchChangesResponse>,
) -> (Vec<pb::WatchChangesResponse>, String) {
    let mut changes = Vec::new();
    loop {
        let m = next(stream).await;
        if m.kind() == ChangeKind::Checkpoint {
            assert!(m.resource_name.is_empty() && m.resource.is_none(), "{m:?}");
            return (changes, m.cursor);
        }
        changes.push(m);
    }
}

/// The caller's whole feed from the oldest change retained.
async fn everything(c: &Caller) -> Vec<pb::WatchChangesResponse> {
    backlog(&mut open(c, pb::WatchChangesRequest::default()).await)
        .await
        .0
}

fn bas_team(suite: &TestSuite) -> Caller {
    suite.caller("bas-team", &["improvement_team"], &["BAS"])
}

fn viewer(suite: &TestSuite, sites: &[&str]) -> Caller {
    suite.caller("feed-reader", &["viewer"], sites)
}

fn project_of(m: &pb::WatchChangesResponse) -> &pb::Project {
    match &m.resource {
        Some(pb::watch_changes_response::Resource::Project(p)) => p,
        other => panic!("expected a project, got {other:?}"),
    }
}

#[tokio::test]
async fn a_feed_carries_each_change_in_order_with_the_resource_after_it_and_resumes_after_a_cursor()
{
    let suite = TestSuite::start().await;
    let team = bas_team(&suite);
    let made = create_project(&team, "BAS", "falls", with_aim("Falls at night"))
        .await
        .unwrap();
    let renamed = update_project(
        &team,
        pb::Project {
            name: made.name.clone(),
            title: "Falls at night, all wards".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let started = start_project(&team, &made.name).await.unwrap();

    let reader = viewer(&suite, &["*"]);
    let feed: Vec<_> = everything(&reader)
        .await
        .into_iter()
        .filter(|m| m.collection == "projects")
        .collect();
    let kinds: Vec<_> = feed.iter().map(|m| (m.kind(), m.verb.as_str())).collect();
    assert_eq!(
        kinds,
        [
            (ChangeKind::Created, ""),
            (ChangeKind::Updated, ""),
            (ChangeKind::StateChanged, "start"),
        ]
    );
    assert!(feed.iter().all(|m| m.resource_name == made.name));
    // Each carries the resource as the write's own answer gave it.
    assert_eq!(project_of(&feed[0]), &made);
    assert_eq!(project_of(&feed[1]), &renamed);
    assert_eq!(project_of(&feed[2]), &started);
    assert!(feed.iter().all(|m| m.commit_time.is_some()));
    let cursors: Vec<_> = feed.iter().map(|m| m.cursor.clone()).collect();
    assert_eq!(cursors.iter().collect::<BTreeSet<_>>().len(), 3);

    // Resuming after the second change gives the third, and nothing before it.
    let (rest, _) = backlog(&mut open(&reader, watch_from(&cursors[1])).await).await;
    let rest: Vec<_> = rest
        .into_iter()
        .filter(|m| m.collection == "projects")
        .collect();
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert_eq!(rest[0].cursor, cursors[2]);

    // Only the collections asked for.
    let ideas_only = pb::WatchChangesRequest {
        collections: vec!["ideas".into()],
        ..Default::default()
    };
    submit_idea(&team, "BAS", "Night lights").await.unwrap();
    let (ideas, _) = backlog(&mut open(&reader, ideas_only).await).await;
    assert_eq!(ideas.len(), 1, "{ideas:?}");
    assert_eq!(ideas[0].collection, "ideas");
    assert_eq!(ideas[0].kind(), ChangeKind::Created);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_site_caller_sees_only_its_sites_changes_and_is_told_when_a_project_leaves_its_view() {
    let suite = TestSuite::start().await;
    let team = bas_team(&suite);
    let sou_team = suite.caller("sou-team", &["improvement_team"], &["SOU"]);
    submit_idea(&team, "BAS", "BAS idea").await.unwrap();
    submit_idea(&sou_team, "SOU", "SOU idea").await.unwrap();
    let shared = create_project(
        &team,
        "BAS",
        "shared",
        pb::Project {
            participating_sites: vec!["sites/SOU".into()],
            ..with_aim("Shared across BAS and SOU")
        },
    )
    .await
    .unwrap();
    create_project(&sou_team, "SOU", "sou-only", with_aim("SOU alone"))
        .await
        .unwrap();

    let bas = everything(&viewer(&suite, &["BAS"])).await;
    let text = format!("{bas:?}");
    assert!(
        !text.contains("SOU idea") && !text.contains("sou-only"),
        "{text}"
    );
    assert!(text.contains("BAS idea") && text.contains("sites/BAS/projects/shared"));

    // SOU takes part in the shared project: its callers see it, and are told when it drops
    // them; BAS's callers, who still see it, are not.
    let sou_reader = viewer(&suite, &["SOU"]);
    let mut sou = open(&sou_reader, pb::WatchChangesRequest::default()).await;
    let (before, _) = backlog(&mut sou).await;
    assert!(before.iter().any(|m| m.resource_name == shared.name));
    assert!(!format!("{before:?}").contains("BAS idea"));
    let dropped = pb::UpdateProjectRequest {
        project: Some(pb::Project {
            name: shared.name.clone(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["participating_sites".into()],
        }),
    };
    team.projects().update_project(dropped).await.unwrap();
    let hidden = loop {
        let m = next(&mut sou).await;
        if m.kind() != ChangeKind::Checkpoint {
            break m;
        }
    };
    assert_eq!(hidden.kind(), ChangeKind::Hidden);
    assert_eq!(hidden.resource_name, shared.name);
    assert!(hidden.resource.is_none());

    for reader in [viewer(&suite, &["BAS"]), viewer(&suite, &["*"])] {
        let all = everything(&reader).await;
        assert!(
            all.iter().all(|m| m.kind() != ChangeKind::Hidden),
            "{all:?}"
        );
        let last = all
            .iter()
            .rfind(|m| m.resource_name == shared.name)
            .unwrap();
        assert!(project_of(last).participating_sites.is_empty());
    }
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_feed_opened_now_delivers_changes_as_they_commit() {
    let suite = TestSuite::start().await;
    let team = bas_team(&suite);
    let before = submit_idea(&team, "BAS", "Before the feed").await.unwrap();
    let reader = viewer(&suite, &["BAS"]);
    let mut feed = open(
        &reader,
        pb::WatchChangesRequest {
            start: WatchStart::Now as i32,
            ..Default::default()
        },
    )
    .await;
    // "Now" starts below the oldest transaction in flight anywhere in the cluster (so
    // nothing committing later can be skipped): a change committed just before may come
    // too, while another test's transaction holds that horizon back; nothing older.
    let (backlog_now, _) = backlog(&mut feed).await;
    assert!(
        backlog_now.iter().all(|m| m.resource_name == before.name),
        "{backlog_now:?}"
    );
    let idea = submit_idea(&team, "BAS", "After the feed").await.unwrap();
    let m = loop {
        let m = next(&mut feed).await;
        if m.kind() != ChangeKind::Checkpoint {
            break m;
        }
    };
    assert_eq!(m.resource_name, idea.name);
    assert_eq!(m.kind(), ChangeKind::Created);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_bad_request_names_its_field_and_an_expired_token_ends_the_feed_unauthenticated() {
    let suite = TestSuite::start_with(&[("QI_CHANGES_POLL_MS", "50")]).await;
    let reader = viewer(&suite, &["BAS"]);
    for (req, field) in [
        (watch_from("not-a-cursor"), "cursor"),
        (
            pb::WatchChangesRequest {
                collections: vec!["projects".into(), "staff".into()],
                ..Default::default()
            },
            "collections[1]",
        ),
        (
            pb::WatchChangesRequest {
                cursor: "1.1".into(),
                start: WatchStart::Now as i32,
                ..Default::default()
            },
            "start",
        ),
        (
            pb::WatchChangesRequest {
                page_size: 100_000,
                ..Default::default()
            },
            "page_size",
        ),
    ] {
        let err = reader.projects().watch_changes(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert_eq!(fields(&err), [field]);
    }

    // A token that expires in a few seconds: the feed ends there, UNAUTHENTICATED.
    let short = suite.short_lived_caller("feed-reader", &["viewer"], &["BAS"], 3);
    let mut feed = open(&short, pb::WatchChangesRequest::default()).await;
    let ended = tokio::time::timeout(PATIENCE, async {
        loop {
            match feed.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the feed ended without a status"),
                Err(status) => return status,
            }
        }
    })
    .await
    .expect("the feed ends when the token expires");
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_cursor_older_than_the_retention_is_out_of_range_and_names_where_to_resume() {
    let suite = TestSuite::start().await;
    let team = bas_team(&suite);
    submit_idea(&team, "BAS", "Old news").await.unwrap();
    let reader = viewer(&suite, &["*"]);
    let first = everything(&reader).await.remove(0).cursor;
    submit_idea(&team, "BAS", "Newer").await.unwrap();
    // Age every change past the retention, then purge as the service's schedule would.
    let projects = qi_platform::db::connect(&suite.database_url, "projects", &suite.config)
        .await
        .unwrap();
    sqlx::query("UPDATE changes SET commit_time = now() - interval '40 days'")
        .execute(&projects)
        .await
        .unwrap();
    let purged = qi_platform::changes::purge_expired(&projects, Duration::from_secs(30 * 86_400))
        .await
        .unwrap();
    assert_eq!(purged, 2);
    let err = reader
        .projects()
        .watch_changes(watch_from(&first))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert!(err.message().contains("oldest"), "{err:?}");
    // From the oldest retained: nothing of the purged changes, and what comes next.
    let fresh = submit_idea(&team, "BAS", "After the purge").await.unwrap();
    let all = everything(&reader).await;
    assert_eq!(
        all.iter()
            .map(|m| m.resource_name.as_str())
            .collect::<Vec<_>>(),
        [fresh.name.as_str()]
    );
    suite.stop().await.unwrap();
}

/// Writers in parallel while a consumer follows the feed and, halfway, drops it and resumes
/// from its last cursor: every acknowledged write arrives, in an order consistent with each
/// resource's own changes.
#[tokio::test]
async fn concurrent_writers_lose_nothing_to_a_consumer_that_resumes_from_its_cursor() {
    let suite = TestSuite::start_with(&[("QI_RATE_LIMIT_PER_SUBJECT", "0")]).await;
    let team = bas_team(&suite);
    let reader = viewer(&suite, &["BAS"]);
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..8 {
        let team = team.clone();
        writers.spawn(async move {
            let mut names = Vec::new();
            for i in 0..15 {
                let idea = submit_idea(&team, "BAS", &format!("Idea {w}-{i}"))
                    .await
                    .expect("an acknowledged write");
                names.push(idea.name);
            }
            names
        });
    }
    let mut seen = BTreeSet::new();
    let mut cursor = String::new();
    let mut feed = open(&reader, pb::WatchChangesRequest::default()).await;
    // Half way: drop the stream and resume after the last cursor received.
    for _ in 0..60 {
        let m = next(&mut feed).await;
        if m.kind() == ChangeKind::Created {
            assert!(seen.insert(m.resource_name.clone()), "{m:?} twice");
        }
        cursor = m.cursor;
    }
    drop(feed);
    let mut acknowledged = BTreeSet::new();
    while let Some(names) = writers.join_next().await {
        acknowledged.extend(names.unwrap());
    }
    assert_eq!(acknowledged.len(), 120);
    let mut feed = open(&reader, watch_from(&cursor)).await;
    while !acknowledged.is_subset(&seen) {
        let m = next(&mut feed).await;
        if m.kind() == ChangeKind::Created {
            assert!(seen.insert(m.resource_name.clone()), "{m:?} twice");
        }
    }
    assert_eq!(seen, acknowledged);
    suite.stop().await.unwrap();
}

/// The training feed of `c` for `req`, up to its first checkpoint.
async fn training_feed(
    c: &Caller,
    req: qi_proto::training::WatchChangesRequest,
) -> Vec<qi_proto::training::WatchChangesResponse> {
    let mut feed = c
        .training()
        .watch_changes(req)
        .await
        .expect("the feed opens")
        .into_inner();
    let mut out = Vec::new();
    loop {
        let m = tokio::time::timeout(PATIENCE, feed.message())
            .await
            .expect("in time")
            .expect("the feed stays up")
            .expect("the feed stays open");
        if m.kind() == ChangeKind::Checkpoint {
            return out;
        }
        out.push(m);
    }
}

/// The training feed of `c`, up to its first checkpoint: (collection, name, kind, verb) and
/// the person's site when the change carries a person.
async fn training_backlog(c: &Caller) -> Vec<(String, String, ChangeKind, String, String)> {
    let feed = training_feed(c, qi_proto::training::WatchChangesRequest::default()).await;
    feed.into_iter()
        .map(|m| {
            let site = match &m.resource {
                Some(qi_proto::training::watch_changes_response::Resource::Staff(s)) => {
                    s.site.clone()
                }
                _ => String::new(),
            };
            (
                m.collection.clone(),
                m.resource_name.clone(),
                m.kind(),
                m.verb,
                site,
            )
        })
        .collect()
}

#[tokio::test]
async fn the_hr_sync_publishes_joiners_leavers_and_moves_and_a_move_hides_the_person_from_the_old_site()
 {
    use qi_e2e::training::{EXTRACT_TIME, esr, sync};
    use qi_proto::training::SyncMode;
    let suite = TestSuite::start().await;
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let first = [
        esr("10000001", "BAS", "Stays"),
        esr("10000002", "BAS", "Moves"),
        esr("10000003", "SOU", "Leaves"),
    ];
    sync(&hr, SyncMode::Full, EXTRACT_TIME, &first)
        .await
        .unwrap();
    // The mover is on a trust-wide cohort: BAS's callers see that enrolment while they are
    // at BAS, and are told when it leaves their view.
    let office = suite.caller("qi-office", &["improvement_team"], &["*"]);
    let cohort = qi_e2e::training::create_cohort(
        &office,
        qi_e2e::training::new_cohort("trust", "Trust QSIR", qi_e2e::ymd(2027, 3, 1), 20),
    )
    .await
    .unwrap();
    let enrolment = qi_e2e::training::enrol(&office, &cohort.name, "staff/10000002")
        .await
        .unwrap();
    // The mover goes to SOU; the leaver is absent from the next FULL extract; the one who
    // stays is sent unchanged, and publishes nothing.
    let second = [
        esr("10000001", "BAS", "Stays"),
        esr("10000002", "SOU", "Moves"),
    ];
    sync(&hr, SyncMode::Full, EXTRACT_TIME + 86_400, &second)
        .await
        .unwrap();

    let staff = |feed: Vec<(String, String, ChangeKind, String, String)>| -> Vec<_> {
        feed.into_iter()
            .filter(|c| c.0 == "staff")
            .map(|c| (c.1, c.2, c.3, c.4))
            .collect()
    };
    // The sync's changes carry each person as they are when the feed delivers them: the
    // mover's first change already shows them at SOU, where the move that follows left them.
    let trust = staff(training_backlog(&viewer(&suite, &["*"])).await);
    let p = |n: &str| format!("staff/{n}");
    let s = |x: &str| format!("sites/{x}");
    assert_eq!(
        trust,
        [
            (p("10000001"), ChangeKind::Created, String::new(), s("BAS")),
            (p("10000002"), ChangeKind::Created, String::new(), s("SOU")),
            (p("10000003"), ChangeKind::Created, String::new(), s("SOU")),
            (
                p("10000002"),
                ChangeKind::StateChanged,
                "move".into(),
                s("SOU")
            ),
            (
                p("10000003"),
                ChangeKind::StateChanged,
                "leave".into(),
                s("SOU")
            ),
        ]
    );
    // BAS's callers never see the mover's record as it is now (at SOU): their first change
    // is withheld, and the move reaches them as a HIDDEN change.
    let bas = staff(training_backlog(&viewer(&suite, &["BAS"])).await);
    assert_eq!(
        bas,
        [
            (p("10000001"), ChangeKind::Created, String::new(), s("BAS")),
            (
                p("10000002"),
                ChangeKind::Hidden,
                String::new(),
                String::new()
            ),
        ]
    );
    let bas_enrolment: Vec<_> = training_backlog(&viewer(&suite, &["BAS"]))
        .await
        .into_iter()
        .filter(|c| c.1 == enrolment.name)
        .map(|c| c.2)
        .collect();
    assert_eq!(
        bas_enrolment.first(),
        Some(&ChangeKind::Created),
        "{bas_enrolment:?}"
    );
    assert_eq!(
        bas_enrolment.last(),
        Some(&ChangeKind::Hidden),
        "{bas_enrolment:?}"
    );
    let sou = staff(training_backlog(&viewer(&suite, &["SOU"])).await);
    assert_eq!(
        sou,
        [
            (p("10000003"), ChangeKind::Created, String::new(), s("SOU")),
            (
                p("10000002"),
                ChangeKind::StateChanged,
                "move".into(),
                s("SOU")
            ),
            (
                p("10000003"),
                ChangeKind::StateChanged,
                "leave".into(),
                s("SOU")
            ),
        ]
    );
    suite.stop().await.unwrap();
}

/// The staff changes of the training feed from `cursor` (the oldest when empty) up to its
/// checkpoint, `page_size` at a time: each with its cursor, name and site.
async fn staff_from(c: &Caller, cursor: &str, page_size: i32) -> Vec<(String, String, String)> {
    use qi_proto::training::watch_changes_response::Resource;
    let req = qi_proto::training::WatchChangesRequest {
        cursor: cursor.into(),
        collections: vec!["staff".into()],
        page_size,
        ..Default::default()
    };
    training_feed(c, req)
        .await
        .into_iter()
        .map(|m| {
            let Some(Resource::Staff(person)) = m.resource else {
                panic!("a staff change without its person: {m:?}");
            };
            assert_eq!(person.name, m.resource_name);
            (m.cursor, m.resource_name, person.site)
        })
        .collect()
}

#[tokio::test]
async fn a_consumer_resumes_inside_a_syncs_changes_and_sees_each_person_once_at_its_sites() {
    use qi_e2e::training::{EXTRACT_TIME, esr, sync};
    use qi_proto::training::SyncMode;
    let suite = TestSuite::start().await;
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let rows: Vec<_> = (1..=7)
        .map(|i| {
            let site = if i % 3 == 0 { "SOU" } else { "BAS" };
            esr(&format!("2000000{i}"), site, "Bulk")
        })
        .collect();
    sync(&hr, SyncMode::Full, EXTRACT_TIME, &rows)
        .await
        .unwrap();
    let all = staff_from(&viewer(&suite, &["*"]), "", 2).await;
    let names: Vec<&str> = all.iter().map(|c| c.1.as_str()).collect();
    let expected: Vec<String> = (1..=7).map(|i| format!("staff/2000000{i}")).collect();
    assert_eq!(names, expected, "every person once, in the sync's order");
    // Cursors inside the sync's one bulk change, each after the one before.
    let cursors: Vec<&str> = all.iter().map(|c| c.0.as_str()).collect();
    assert!(
        cursors[..6].iter().all(|c| c.split('.').count() == 3),
        "{cursors:?}"
    );
    // From any of them, a consumer gets exactly the rest.
    for (i, (cursor, _, _)) in all.iter().enumerate() {
        let rest = staff_from(&viewer(&suite, &["*"]), cursor, 2).await;
        assert_eq!(rest, all[i + 1..], "resuming after {cursor}");
    }
    // A one-site caller gets its site's people only, a page at a time, and resumes the
    // same way.
    let bas = staff_from(&viewer(&suite, &["BAS"]), "", 1).await;
    assert!(bas.iter().all(|c| c.2 == "sites/BAS"), "{bas:?}");
    assert_eq!(bas.len(), 5);
    let rest = staff_from(&viewer(&suite, &["BAS"]), &bas[1].0, 3).await;
    assert_eq!(rest, bas[2..]);
    let sou = staff_from(&viewer(&suite, &["SOU"]), "", 1).await;
    let sou: Vec<&str> = sou.iter().map(|c| c.1.as_str()).collect();
    assert_eq!(sou, ["staff/20000003", "staff/20000006"]);
    // A cursor that names a place inside a change is checked like any other.
    let bad = viewer(&suite, &["*"])
        .training()
        .watch_changes(qi_proto::training::WatchChangesRequest {
            cursor: format!("{}.x", all[0].0),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_stopping_server_ends_its_open_feeds_unavailable_rather_than_waiting_out_its_grace() {
    let suite = TestSuite::start_with(&[("QI_SHUTDOWN_GRACE_MS", "60000")]).await;
    let reader = viewer(&suite, &["BAS"]);
    let mut feed = open(&reader, pb::WatchChangesRequest::default()).await;
    backlog(&mut feed).await;
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(30), suite.stop())
        .await
        .expect("the stop does not wait out the 60 s grace for an open feed")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    let ended = tokio::time::timeout(PATIENCE, async {
        loop {
            match feed.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                Err(status) => return Some(status.code()),
            }
        }
    })
    .await
    .expect("the feed ends with the server");
    assert!(
        matches!(ended, Some(Code::Unavailable)),
        "a feed cut by a stop says UNAVAILABLE (resume elsewhere): {ended:?}"
    );
}

/// A consumer that stops reading is not buffered for: the feed waits on it (backpressure),
/// then drops it after the idle time, having sent only what the transport's windows hold.
#[tokio::test]
async fn a_consumer_that_stops_reading_is_disconnected_after_the_idle_time() {
    let suite = TestSuite::start_with(&[("QI_CHANGES_IDLE_TIMEOUT_MS", "1000")]).await;
    let team = bas_team(&suite);
    let idea = submit_idea(&team, "BAS", "The one real idea")
        .await
        .unwrap();
    // A backlog far larger than any window: the real idea's change, 60,000 times over.
    let projects = qi_platform::db::connect(&suite.database_url, "projects", &suite.config)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO changes (pos, collection, name, kind, sites, payload)
         SELECT pg_current_xact_id(), collection, name, kind, sites, payload
         FROM changes, generate_series(1, 60000)
         WHERE name = $1",
    )
    .bind(&idea.name)
    .execute(&projects)
    .await
    .unwrap();
    let reader = viewer(&suite, &["BAS"]);
    let mut feed = open(&reader, pb::WatchChangesRequest::default()).await;
    // Not reading: the server fills what the transport holds, waits, and gives up. Filling
    // takes a busy machine seconds (a CI run beside other work took over 4), and only then
    // does the idle second start: the wait leaves room for both.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut received = 0;
    let ended = tokio::time::timeout(PATIENCE, async {
        loop {
            match feed.message().await {
                Ok(Some(m)) if m.kind() == ChangeKind::Checkpoint => return None,
                Ok(Some(_)) => received += 1,
                Ok(None) => return Some(Code::Ok),
                Err(status) => return Some(status.code()),
            }
        }
    })
    .await
    .expect("the feed ends");
    assert!(
        ended.is_some() && received < 60_000,
        "a stalled consumer is dropped, not buffered for: {received} messages, then {ended:?}"
    );
    suite.stop().await.unwrap();
}

/// A long transaction elsewhere holds the feed's horizon back: a change committed after it
/// began is not handed out until it ends (so nothing can commit behind a cursor), and the
/// backlog's checkpoint waits for it, so "caught up" still means every change committed
/// before the call.
#[tokio::test]
async fn a_long_transaction_holds_changes_back_and_the_backlog_waits_for_them() {
    let suite = TestSuite::start().await;
    let team = bas_team(&suite);
    let pool = sqlx::PgPool::connect(&suite.database_url).await.unwrap();
    let mut long = qi_platform::db::begin(&pool).await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *long)
        .await
        .unwrap();
    let idea = submit_idea(&team, "BAS", "Committed behind a long one")
        .await
        .unwrap();
    let reader = viewer(&suite, &["BAS"]);
    let mut feed = open(&reader, pb::WatchChangesRequest::default()).await;
    // Held back: nothing, not even the backlog's checkpoint, while the long one runs.
    let early = tokio::time::timeout(Duration::from_millis(1500), feed.message()).await;
    assert!(early.is_err(), "{early:?}");
    long.commit().await.unwrap();
    let (changes, _) = backlog(&mut feed).await;
    assert_eq!(
        changes
            .iter()
            .map(|m| m.resource_name.as_str())
            .collect::<Vec<_>>(),
        [idea.name.as_str()]
    );
    suite.stop().await.unwrap();
}
