//! The read model's intake: it follows each service's change feed with the platform's
//! [`Follower`] (exactly once and in order, one replica at a time, resuming after each
//! end; see [`qi_platform::follow`]) and mirrors every resource as the feed last
//! delivered it (`insights.resource`), with its typed projections.
//!
//! A new model (a feed with no stored cursor) is first built from the services' lists
//! ([`crate::rebuild`]), never from a feed's oldest retained change.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use prost::Message as _;
use qi_platform::access::AccessSigner;
use qi_platform::follow::{self, Change, Consumer, Feed, Follower};
use qi_proto::common::ChangeKind;
use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;

use crate::projection::Projections;

/// A service whose feed the read model follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Courses, cohorts, enrolments, completions, staff.
    Training,
    /// Ideas, projects, teams, PDSA cycles, programmes.
    Projects,
    /// Metrics, measurements, annotations, rebase points.
    Metrics,
}

impl Service {
    const ALL: [Service; 3] = [Service::Training, Service::Projects, Service::Metrics];

    /// As stored (`insights.feed.service`, `insights.resource.service`).
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Training => "training",
            Service::Projects => "projects",
            Service::Metrics => "metrics",
        }
    }

    fn watch_path(self) -> &'static str {
        match self {
            Service::Training => "/qi.training.v1.TrainingService/WatchChanges",
            Service::Projects => "/qi.projects.v1.ProjectService/WatchChanges",
            Service::Metrics => "/qi.metrics.v1.MetricService/WatchChanges",
        }
    }

    fn of_key(key: &str) -> anyhow::Result<Service> {
        Service::ALL
            .into_iter()
            .find(|s| s.as_str() == key)
            .with_context(|| format!("no feed {key}"))
    }
}

/// A feed to follow: the service, and its own URL (not the gateway's), e.g.
/// `http://qi-training:50051`.
#[derive(Debug, Clone)]
pub struct Source {
    /// Which service.
    pub service: Service,
    /// Where it listens.
    pub url: String,
}

impl Source {
    /// The feed as the platform's follower reads it: every collection.
    pub(crate) fn feed(&self) -> Feed {
        Feed {
            key: self.service.as_str(),
            url: self.url.clone(),
            path: self.service.watch_path(),
            collections: Vec::new(),
        }
    }
}

/// The session lock whose holder consumes (any constant, the same in every replica).
const CONSUMER_LOCK: i64 = 0x7169_5f69_6e74_616b; // "qi_intak"

/// The intake: what the read model does with its feeds, and how it builds itself again.
pub struct Intake {
    pub(crate) pool: PgPool,
    pub(crate) signer: AccessSigner,
    /// Who it is, as the services will name it (`internal:{name}`).
    pub(crate) name: String,
    pub(crate) sources: Vec<Source>,
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intake")
            .field("name", &self.name)
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl Intake {
    /// The intake over the read model's pool (search_path `insights`), signing with the
    /// access key `key` as `internal:{name}`.
    pub fn new(pool: PgPool, key: &str, name: &str, sources: Vec<Source>) -> Self {
        Intake {
            pool,
            // A context opens a stream, which then runs as long as it is read.
            signer: AccessSigner::new(key, Duration::from_secs(60)),
            name: name.to_owned(),
            sources,
        }
    }

    /// Follows every source until `stop` turns true, while this replica holds the lock.
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let feeds = self.sources.iter().map(Source::feed).collect();
        let (pool, signer, name) = (self.pool.clone(), self.signer.clone(), self.name.clone());
        Follower::new(pool, signer, &name, CONSUMER_LOCK, feeds, self)
            .run(stop)
            .await;
    }
}

impl Consumer for Intake {
    /// Rebuilds the model when any source's feed has no stored cursor.
    async fn bootstrap(&self, feeds: &[Feed]) -> anyhow::Result<()> {
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        let followed = follow::followed(&mut tx, feeds).await?;
        tx.commit().await?;
        if followed >= feeds.len() {
            return Ok(());
        }
        let rebuilt = self.rebuild().await?;
        tracing::info!(resources = ?rebuilt.resources, millis = rebuilt.millis,
            "built the read model from the services' lists");
        Ok(())
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        feed: &'static str,
        batch: &[Bytes],
    ) -> anyhow::Result<()> {
        let service = Service::of_key(feed)?;
        write(tx, service, latest(batch)?).await
    }
}

/// A resource as a batch leaves it: its latest message, or gone.
pub(crate) enum Latest {
    /// Its collection, the feed's message and the change's commit time.
    Now(String, Bytes, DateTime<Utc>),
    Gone,
}

/// Each resource of `batch` (messages in feed order) as the batch leaves it.
fn latest(batch: &[Bytes]) -> anyhow::Result<HashMap<String, Latest>> {
    let mut latest = HashMap::new();
    for bytes in batch {
        let change = Change::decode(bytes.clone()).context("an undecodable change")?;
        let now = match ChangeKind::try_from(change.kind) {
            Ok(ChangeKind::Checkpoint) => continue,
            Ok(ChangeKind::Deleted | ChangeKind::Hidden) => Latest::Gone,
            Ok(ChangeKind::Created | ChangeKind::Updated | ChangeKind::StateChanged) => {
                let time = change
                    .commit_time
                    .and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.try_into().ok()?))
                    .unwrap_or_else(Utc::now);
                Latest::Now(change.collection, bytes.clone(), time)
            }
            Ok(ChangeKind::Unspecified) | Err(_) => {
                anyhow::bail!("a change of an unknown kind {}", change.kind)
            }
        };
        latest.insert(change.resource_name, now);
    }
    Ok(latest)
}

/// Writes resources of `service` as they now are into the mirror and its projections, in
/// the caller's transaction.
pub(crate) async fn write(
    tx: &mut PgConnection,
    service: Service,
    latest: impl IntoIterator<Item = (String, Latest)>,
) -> anyhow::Result<()> {
    let (mut gone, mut names, mut collections, mut messages, mut times) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut projections = Projections::default();
    for (name, now) in latest {
        match now {
            Latest::Gone => {
                projections.remove(name.clone());
                gone.push(name);
            }
            Latest::Now(collection, message, time) => {
                projections.add(service, &message)?;
                names.push(name);
                collections.push(collection);
                messages.push(message.to_vec());
                times.push(time);
            }
        }
    }
    sqlx::query!(
        "DELETE FROM resource WHERE service = $1 AND name = ANY($2)",
        service.as_str(),
        &gone,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO resource (service, name, collection, message, commit_time)
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::bytea[], $5::timestamptz[])
         ON CONFLICT (service, name) DO UPDATE
         SET collection = excluded.collection, message = excluded.message,
             commit_time = excluded.commit_time",
        service.as_str(),
        &names,
        &collections,
        &messages,
        &times,
    )
    .execute(&mut *tx)
    .await?;
    projections.write(tx, service).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(cursor: &str, name: &str, kind: ChangeKind, title: &str) -> Bytes {
        use qi_proto::projects as pb;
        // A projects service's message, its resource (an idea) included.
        let idea = pb::Idea {
            name: name.into(),
            title: title.into(),
            ..Default::default()
        };
        let change = pb::WatchChangesResponse {
            cursor: cursor.into(),
            resource_name: name.into(),
            collection: "ideas".into(),
            kind: kind as i32,
            commit_time: Some(prost_types::Timestamp {
                seconds: 1_800_000_000,
                nanos: 0,
            }),
            resource: (kind != ChangeKind::Deleted && kind != ChangeKind::Checkpoint)
                .then_some(pb::watch_changes_response::Resource::Idea(idea)),
            ..Default::default()
        };
        Bytes::from(change.encode_to_vec())
    }

    async fn mirror(pool: &PgPool) -> Vec<(String, Vec<u8>)> {
        sqlx::query_as("SELECT name, message FROM resource ORDER BY name")
            .fetch_all(pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_batch_leaves_each_resource_as_its_last_change_and_moves_the_cursor_once() {
        let pool = qi_test_kit::migrated(crate::SCHEMA, &crate::MIGRATOR)
            .await
            .unwrap();
        let (a, b) = ("sites/BAS/ideas/a", "sites/BAS/ideas/b");
        let batch = [
            change("1.1", a, ChangeKind::Created, "first"),
            change("1.2", b, ChangeKind::Created, "b"),
            change("2.1", a, ChangeKind::Updated, "second"),
            change("3.1", b, ChangeKind::Deleted, ""),
            change("3.9", "", ChangeKind::Checkpoint, ""),
        ];
        let intake = Intake::new(pool.clone(), "k", "insights", Vec::new());
        let apply = |from: Option<&'static str>, batch: Vec<Bytes>| {
            let (pool, intake) = (pool.clone(), &intake);
            async move { follow::apply(&pool, intake, "projects", from, &batch).await }
        };
        let cursor = apply(None, batch.to_vec()).await.unwrap();
        assert_eq!(cursor, "3.9");
        let now = mirror(&pool).await;
        assert_eq!(now.len(), 1, "b is gone");
        assert_eq!(now[0].0, a);
        assert_eq!(now[0].1, batch[2].to_vec(), "a as its last change left it");
        assert_eq!(
            follow::stored_cursor(&pool, "projects").await.unwrap(),
            Some("3.9".into())
        );
        // A second consumer that read the feed from where the first began applies nothing:
        // the cursor is no longer where it started.
        let late = [change("2.1", a, ChangeKind::Updated, "stale")];
        assert!(apply(None, late.to_vec()).await.is_err());
        assert!(apply(Some("1.1"), late.to_vec()).await.is_err());
        assert_eq!(mirror(&pool).await[0].1, batch[2].to_vec());
        // The consumer that holds the cursor goes on.
        let next = [change("4.1", a, ChangeKind::Updated, "third")];
        apply(Some("3.9"), next.to_vec()).await.unwrap();
        assert_eq!(mirror(&pool).await[0].1, next[0].to_vec());
        // A feed's cursor is its own: another service starts from nothing.
        assert_eq!(
            follow::stored_cursor(&pool, "training").await.unwrap(),
            None
        );
    }
}
