//! The read model's intake: it follows each service's change feed straight from the
//! service, with a trust-wide access context it signs naming itself (`internal:insights`),
//! and mirrors every resource as the feed last delivered it (`insights.resource`).
//!
//! - **Exactly once, in order.** A batch of changes and the cursor after it are written in
//!   one transaction, so a restart resumes from exactly the last change applied.
//! - **One consumer at a time.** Several replicas may run; the one holding a session lock
//!   in this component's own database consumes, and another takes over when it goes. The
//!   lock only saves work: each batch also moves the stored cursor only from where it
//!   read it, so two consumers at once (a lock lost to a network cut while the old holder
//!   still runs) cannot apply a change twice; the one that loses stops and retries.
//! - **Reconnects.** A feed that ends (the service restarts, the database goes away) is
//!   resumed from the stored cursor after a pause doubling from 1 s to 30 s.
//! - **Bootstrap.** A new model (a feed with no stored cursor) is first built from the
//!   services' lists ([`crate::rebuild`]), never from a feed's oldest retained change.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use prost::Message as _;
use qi_platform::access::{ACCESS_HEADER, AccessContext, AccessSigner};
use qi_platform::codec::BytesCodec;
use qi_proto::common::{ChangeKind, WatchStart};
use sqlx::{Connection as _, PgConnection, PgPool};
use tokio::sync::watch;
use tokio::task::JoinSet;

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
    /// As stored (`insights.feed.service`, `insights.resource.service`).
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Training => "training",
            Service::Projects => "projects",
            Service::Metrics => "metrics",
        }
    }

    pub(crate) fn watch_path(self) -> &'static str {
        match self {
            Service::Training => "/qi.training.v1.TrainingService/WatchChanges",
            Service::Projects => "/qi.projects.v1.ProjectService/WatchChanges",
            Service::Metrics => "/qi.metrics.v1.MetricService/WatchChanges",
        }
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

/// What every service's `WatchChangesRequest` holds, in the same fields.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct WatchRequest {
    #[prost(string, tag = "1")]
    pub(crate) cursor: String,
    #[prost(int32, tag = "2")]
    pub(crate) start: i32,
    #[prost(int32, tag = "4")]
    pub(crate) page_size: i32,
}

/// The fields every service's `WatchChangesResponse` shares. The resource (a oneof whose
/// fields differ by service) stays in the message, which is mirrored whole.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Change {
    #[prost(string, tag = "1")]
    pub(crate) cursor: String,
    #[prost(string, tag = "2")]
    pub(crate) resource_name: String,
    #[prost(string, tag = "3")]
    pub(crate) collection: String,
    #[prost(int32, tag = "4")]
    pub(crate) kind: i32,
    #[prost(message, optional, tag = "6")]
    pub(crate) commit_time: Option<prost_types::Timestamp>,
}

/// The session lock whose holder consumes (any constant, the same in every replica).
const CONSUMER_LOCK: i64 = 0x7169_5f69_6e74_616b; // "qi_intak"
/// Changes applied in one transaction at most (a backlog streams in such batches).
const BATCH: usize = 500;
/// How often a waiting replica tries the lock, and the holder checks it still has it.
const LOCK_EVERY: Duration = Duration::from_secs(2);
/// The pause before resuming a feed that ended: doubling from the first to the most.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// The intake: follows `sources` into the mirror while this replica holds the lock.
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

    /// Runs until `stop` turns true: waits for the consumer lock, then follows every
    /// source; gives the lock back when it stops or loses its connection.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let this = Arc::new(self);
        loop {
            let Some(mut lock) = this.lead(&mut stop).await else {
                return;
            };
            // A feed with no cursor yet (a new read model) starts from a rebuild, not from
            // the feed's oldest change: the feeds keep only their retention's history.
            let bootstrapped = tokio::select! {
                r = this.bootstrap() => r,
                _ = stop.changed() => Ok(()),
            };
            if let Err(e) = bootstrapped {
                tracing::warn!(error = %format!("{e:#}"), "building the read model from the services failed; retrying");
                let _ = lock.close().await;
                tokio::select! {
                    () = tokio::time::sleep(RETRY_FIRST) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            tracing::info!("following the services' change feeds");
            let mut followers = JoinSet::new();
            for source in this.sources.clone() {
                followers.spawn(this.clone().follow(source));
            }
            let stopped = hold(&mut lock, &mut stop).await;
            // The followers end before the lock is given back, so the next holder never
            // overlaps this one (the cursor guard would refuse a batch, at a retry's cost).
            followers.shutdown().await;
            let _ = lock.close().await;
            if stopped {
                return;
            }
            tracing::warn!("lost the consumer lock's connection; waiting for the lock again");
        }
    }

    /// Rebuilds the model when any source's feed has no stored cursor.
    async fn bootstrap(&self) -> anyhow::Result<()> {
        let followed = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM feed"#)
            .fetch_one(&self.pool)
            .await?;
        if usize::try_from(followed).unwrap_or(0) >= self.sources.len() {
            return Ok(());
        }
        let rebuilt = self.rebuild().await?;
        tracing::info!(resources = ?rebuilt.resources, millis = rebuilt.millis,
            "built the read model from the services' lists");
        Ok(())
    }

    /// Waits for the consumer lock on a connection of its own; `None` when told to stop.
    async fn lead(&self, stop: &mut watch::Receiver<bool>) -> Option<PgConnection> {
        loop {
            if *stop.borrow() {
                return None;
            }
            match self.try_lock().await {
                Ok(Some(conn)) => return Some(conn),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "trying the consumer lock failed"),
            }
            tokio::select! {
                () = tokio::time::sleep(LOCK_EVERY) => {}
                _ = stop.changed() => {}
            }
        }
    }

    async fn try_lock(&self) -> anyhow::Result<Option<PgConnection>> {
        let mut conn = PgConnection::connect_with(&self.pool.connect_options()).await?;
        let held = sqlx::query_scalar!("SELECT pg_try_advisory_lock($1)", CONSUMER_LOCK)
            .fetch_one(&mut conn)
            .await?;
        if held == Some(true) {
            Ok(Some(conn))
        } else {
            conn.close().await?;
            Ok(None)
        }
    }

    /// Follows one feed for ever (the caller aborts it), resuming after each end.
    async fn follow(self: Arc<Self>, source: Source) {
        let mut pause = RETRY_FIRST;
        loop {
            match self.follow_once(&source).await {
                Ok(true) => pause = RETRY_FIRST,
                Ok(false) => {}
                Err(e) => tracing::warn!(
                    service = source.service.as_str(),
                    error = %format!("{e:#}"),
                    "following a change feed failed; resuming from the last cursor applied"
                ),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_MAX);
        }
    }

    /// One stream of `source`'s feed from the stored cursor, applied batch by batch until
    /// it ends; whether anything was applied.
    async fn follow_once(&self, source: &Source) -> anyhow::Result<bool> {
        let service = source.service;
        let mut cursor = stored_cursor(&self.pool, service).await?;
        let request = WatchRequest {
            cursor: cursor.clone().unwrap_or_default(),
            start: if cursor.is_some() {
                WatchStart::Unspecified
            } else {
                WatchStart::Oldest
            } as i32,
            page_size: 1000,
        };
        let mut request = tonic::Request::new(Bytes::from(request.encode_to_vec()));
        let signed = self
            .signer
            .sign(&AccessContext::internal(&self.name, service.watch_path()))?;
        request
            .metadata_mut()
            .insert(ACCESS_HEADER, signed.parse()?);
        let channel = tonic::transport::Endpoint::from_shared(source.url.clone())?
            .connect()
            .await
            .with_context(|| format!("connecting to {}", source.url))?;
        let mut grpc = tonic::client::Grpc::new(channel)
            .max_decoding_message_size(qi_platform::server::MAX_MESSAGE_BYTES);
        grpc.ready().await?;
        let mut stream = grpc
            .server_streaming(request, service.watch_path().parse()?, BytesCodec)
            .await?
            .into_inner();
        let mut applied = false;
        while let Some(first) = stream.message().await? {
            // What else has already arrived joins the batch: one transaction for a backlog's
            // many changes, one per change when they come one at a time.
            let mut batch = vec![first];
            let mut ended = None;
            while batch.len() < BATCH {
                match tokio::time::timeout(Duration::ZERO, stream.message()).await {
                    Ok(Ok(Some(message))) => batch.push(message),
                    Ok(result) => {
                        ended = Some(result);
                        break;
                    }
                    Err(_nothing_yet) => break,
                }
            }
            cursor = Some(apply(&self.pool, service, cursor.as_deref(), &batch).await?);
            applied = true;
            match ended {
                Some(Ok(_end)) => break,
                Some(Err(status)) => return Err(status.into()),
                None => {}
            }
        }
        Ok(applied)
    }
}

/// Holds the lock until `stop` turns true (`true`) or its connection fails (`false`);
/// closing the connection then gives the lock back.
async fn hold(lock: &mut PgConnection, stop: &mut watch::Receiver<bool>) -> bool {
    loop {
        if *stop.borrow() {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep(LOCK_EVERY) => {
                if lock.ping().await.is_err() {
                    return false;
                }
            }
            _ = stop.changed() => {}
        }
    }
}

/// Where `service`'s feed has been applied to; `None` before its first change.
async fn stored_cursor(pool: &PgPool, service: Service) -> anyhow::Result<Option<String>> {
    Ok(sqlx::query_scalar!(
        "SELECT cursor FROM feed WHERE service = $1",
        service.as_str()
    )
    .fetch_optional(pool)
    .await?)
}

/// A resource as a batch leaves it: its latest message, or gone.
pub(crate) enum Latest {
    /// Its collection, the feed's message and the change's commit time.
    Now(String, Bytes, DateTime<Utc>),
    Gone,
}

/// Applies `batch` (messages in feed order) and moves the stored cursor from `from` to the
/// last message's, in one transaction; the new cursor. Refused, applying nothing, when the
/// stored cursor is no longer `from`: another consumer (or a rebuild) moved it.
async fn apply(
    pool: &PgPool,
    service: Service,
    from: Option<&str>,
    batch: &[Bytes],
) -> anyhow::Result<String> {
    let mut latest: HashMap<String, Latest> = HashMap::new();
    let mut cursor = None;
    for bytes in batch {
        let change = Change::decode(bytes.clone()).context("an undecodable change")?;
        cursor = Some(change.cursor.clone());
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
    let cursor = cursor.context("an empty batch")?;
    let mut tx = qi_platform::db::begin(pool).await?;
    let moved = sqlx::query!(
        "INSERT INTO feed (service, cursor) VALUES ($1, $2)
         ON CONFLICT (service) DO UPDATE SET cursor = excluded.cursor, update_time = now()
         WHERE feed.cursor = $3",
        service.as_str(),
        cursor,
        from,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    anyhow::ensure!(
        moved == 1,
        "another consumer moved the {} feed's cursor: this one stops",
        service.as_str()
    );
    write(&mut tx, service, latest).await?;
    tx.commit().await?;
    Ok(cursor)
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
        let cursor = apply(&pool, Service::Projects, None, &batch).await.unwrap();
        assert_eq!(cursor, "3.9");
        let now = mirror(&pool).await;
        assert_eq!(now.len(), 1, "b is gone");
        assert_eq!(now[0].0, a);
        assert_eq!(now[0].1, batch[2].to_vec(), "a as its last change left it");
        assert_eq!(
            stored_cursor(&pool, Service::Projects).await.unwrap(),
            Some("3.9".into())
        );
        // A second consumer that read the feed from where the first began applies nothing:
        // the cursor is no longer where it started.
        let late = [change("2.1", a, ChangeKind::Updated, "stale")];
        assert!(apply(&pool, Service::Projects, None, &late).await.is_err());
        assert!(
            apply(&pool, Service::Projects, Some("1.1"), &late)
                .await
                .is_err()
        );
        assert_eq!(mirror(&pool).await[0].1, batch[2].to_vec());
        // The consumer that holds the cursor goes on.
        let next = [change("4.1", a, ChangeKind::Updated, "third")];
        apply(&pool, Service::Projects, Some("3.9"), &next)
            .await
            .unwrap();
        assert_eq!(mirror(&pool).await[0].1, next[0].to_vec());
        // A feed's cursor is its own: another service starts from nothing.
        assert_eq!(stored_cursor(&pool, Service::Training).await.unwrap(), None);
    }
}
