//! Change feeds with the binary as a process: across a SIGKILL of `qi up` in the middle of
//! a burst of writes, a consumer that resumes from its last cursor, on the restarted suite,
//! receives every acknowledged write, and nothing the feed delivered is missing from what is
//! stored (a write rolled back by the kill is never published); and `qi watch` writes a feed
//! as JSON lines and resumes from its cursor file.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qi_proto::common::ChangeKind;
use qi_proto::projects as pb;
use qi_proto::projects::project_service_client::ProjectServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::{QI, announced_port, token, up_with, wait_serving};

/// Writers at once.
const WRITERS: usize = 4;
/// Writes acknowledged before the kill.
const BEFORE_KILL: usize = 40;

fn bearer(data: &Path, sub: &str, role: &str, site: &str) -> MetadataValue<Ascii> {
    format!("Bearer {}", token(data, sub, role, site))
        .parse()
        .unwrap()
}

async fn client(port: u16) -> ProjectServiceClient<Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await
        .unwrap();
    ProjectServiceClient::new(channel)
}

/// What the consumer has seen: the ideas created, and the last cursor.
#[derive(Default)]
struct Seen {
    ideas: BTreeSet<String>,
    cursor: String,
}

/// Follows the projects feed from `seen`'s cursor until it fails (or `until` holds).
async fn follow(
    port: u16,
    viewer: &MetadataValue<Ascii>,
    seen: &Mutex<Seen>,
    until: impl Fn(&Seen) -> bool,
) {
    let mut req = tonic::Request::new(pb::WatchChangesRequest {
        cursor: seen.lock().unwrap().cursor.clone(),
        ..Default::default()
    });
    req.metadata_mut().insert("authorization", viewer.clone());
    let Ok(feed) = client(port).await.watch_changes(req).await else {
        return;
    };
    let mut feed = feed.into_inner();
    while let Ok(Some(m)) = feed.message().await {
        let mut s = seen.lock().unwrap();
        if m.collection == "ideas" && m.kind() == ChangeKind::Created {
            s.ideas.insert(m.resource_name.clone());
        }
        s.cursor = m.cursor;
        if until(&s) {
            return;
        }
    }
}

/// Every BAS idea stored.
async fn stored(port: u16, viewer: &MetadataValue<Ascii>) -> BTreeSet<String> {
    let mut client = client(port).await;
    let (mut found, mut page_token) = (BTreeSet::new(), String::new());
    loop {
        let mut req = tonic::Request::new(pb::ListIdeasRequest {
            parent: "sites/BAS".into(),
            page_size: 500,
            page_token: page_token.clone(),
            ..Default::default()
        });
        req.metadata_mut().insert("authorization", viewer.clone());
        let page = client.list_ideas(req).await.unwrap().into_inner();
        found.extend(page.ideas.into_iter().map(|i| i.name));
        if page.next_page_token.is_empty() {
            return found;
        }
        page_token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigkill_under_a_burst_of_writes_loses_no_acknowledged_change_and_publishes_no_rolled_back_one()
 {
    let dir = tempfile::Builder::new()
        .prefix("qi-feed-kill-")
        .tempdir_in("/tmp")
        .unwrap();
    let data = dir.path().join("data");
    let env = [
        ("QI_RATE_LIMIT_PER_SUBJECT", "0"),
        ("QI_CHANGES_POLL_MS", "50"),
    ];
    let mut child = up_with(&data, &dir.path().join("qi-1.log"), &env);
    let port = announced_port(&mut child);
    wait_serving(port, &mut child).await;
    let writer = bearer(&data, "burst", "improvement_team", "BAS");
    let viewer = bearer(&data, "warehouse", "viewer", "*");

    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let consumer = {
        let (seen, viewer) = (seen.clone(), viewer.clone());
        tokio::spawn(async move { follow(port, &viewer, &seen, |_| false).await })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (acknowledged, writer) = (acknowledged.clone(), writer.clone());
            tokio::spawn(async move {
                let Ok(mut client) =
                    tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
                        .unwrap()
                        .connect()
                        .await
                        .map(ProjectServiceClient::new)
                else {
                    return;
                };
                for i in 0.. {
                    let mut req = tonic::Request::new(pb::CreateIdeaRequest {
                        parent: "sites/BAS".into(),
                        idea: Some(pb::Idea {
                            title: format!("Burst {w}-{i}"),
                            submitter: "A. Nurse".into(),
                            theme: "Patient flow".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    });
                    req.metadata_mut().insert("authorization", writer.clone());
                    req.set_timeout(Duration::from_secs(5));
                    match client.create_idea(req).await {
                        Ok(r) => {
                            let name = r.into_inner().idea.unwrap().name;
                            acknowledged.lock().unwrap().insert(name);
                        }
                        // The suite was killed: this writer is done.
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    for _ in 0..600 {
        if acknowledged.lock().unwrap().len() >= BEFORE_KILL {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        acknowledged.lock().unwrap().len() >= BEFORE_KILL,
        "the burst got going"
    );
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    for w in writers {
        w.await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(30), consumer)
        .await
        .expect("the feed ends with the suite")
        .unwrap();

    // The suite again, on the same data; the consumer resumes from its last cursor.
    let mut child = up_with(&data, &dir.path().join("qi-2.log"), &env);
    let port = announced_port(&mut child);
    wait_serving(port, &mut child).await;
    let acknowledged = acknowledged.lock().unwrap().clone();
    tokio::time::timeout(
        Duration::from_secs(60),
        follow(port, &viewer, &seen, |s| acknowledged.is_subset(&s.ideas)),
    )
    .await
    .expect("every acknowledged write arrives");
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let stored = stored(port, &viewer).await;
    assert!(acknowledged.is_subset(&seen.ideas));
    assert!(
        seen.ideas.is_subset(&stored),
        "published but not stored: {:?}",
        seen.ideas.difference(&stored).collect::<Vec<_>>()
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qi_watch_writes_json_lines_keeps_its_cursor_and_resumes_after_it() {
    let dir = tempfile::Builder::new()
        .prefix("qi-watch-")
        .tempdir_in("/tmp")
        .unwrap();
    let data = dir.path().join("data");
    let mut child = up_with(&data, &dir.path().join("qi.log"), &[]);
    let port = announced_port(&mut child);
    wait_serving(port, &mut child).await;
    let writer = bearer(&data, "team", "improvement_team", "BAS");
    let mut req = tonic::Request::new(pb::CreateIdeaRequest {
        parent: "sites/BAS".into(),
        idea: Some(pb::Idea {
            title: "Watched idea".into(),
            submitter: "A. Nurse".into(),
            theme: "Patient flow".into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    req.metadata_mut().insert("authorization", writer);
    let idea = client(port)
        .await
        .create_idea(req)
        .await
        .unwrap()
        .into_inner();
    let name = idea.idea.unwrap().name;
    let cursor_file = dir.path().join("projects.cursor");
    let reader = token(&data, "warehouse", "viewer", "BAS");
    let watch = || {
        std::process::Command::new(QI)
            .args([
                "watch",
                "projects",
                "--until-caught-up",
                "--collections",
                "ideas",
            ])
            .arg("--gateway")
            .arg(format!("http://127.0.0.1:{port}"))
            .arg("--token-command")
            .arg(format!("printf %s {reader}"))
            .arg("--cursor-file")
            .arg(&cursor_file)
            .output()
            .expect("qi watch runs")
    };
    let first = watch();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&first.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let created: Vec<_> = lines
        .iter()
        .filter(|l| l["kind"] == "CHANGE_KIND_CREATED")
        .collect();
    assert_eq!(created.len(), 1, "{lines:?}");
    assert_eq!(created[0]["resourceName"], name.as_str());
    assert_eq!(created[0]["idea"]["title"], "Watched idea");
    let saved = std::fs::read_to_string(&cursor_file).expect("the cursor file");
    assert!(!saved.trim().is_empty());
    // Again from the cursor file: nothing new, only the checkpoint that says so.
    let again = watch();
    assert!(again.status.success());
    let kinds: Vec<serde_json::Value> = String::from_utf8_lossy(&again.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].clone())
        .collect();
    assert_eq!(kinds, [serde_json::json!("CHANGE_KIND_CHECKPOINT")]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    child.wait().unwrap();
}
