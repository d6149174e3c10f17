//! Following other services' change feeds (DESIGN.md: what one component must learn from
//! another arrives through the other's feed). A [`Follower`] streams each [`Feed`] straight
//! from its service with a trust-wide access context it signs naming itself
//! (`internal:{name}`), and hands each batch to its [`Consumer`]:
//!
//! - **Exactly once, in order.** A batch and the cursor after it are written in one
//!   transaction of the consumer's database (its `feed` table: `service`, `cursor`,
//!   `update_time`), so a restart resumes from exactly the last change applied.
//! - **One consumer at a time.** Of several replicas, the one holding a session lock
//!   consumes; another takes over when it goes. The lock only saves work: a batch also
//!   moves the stored cursor only from where it read it, so two consumers at once (a lock
//!   lost to a network cut while the old holder still runs) cannot apply a change twice.
//! - **Reconnects.** A feed that ends (its service restarts, a database goes away) is
//!   resumed from the stored cursor after a pause doubling from 1 s to 30 s.
//! - **Bootstrap.** Before following, the consumer is asked to build what it keeps from the
//!   services' lists when a feed has no stored cursor: a feed keeps only its retention's
//!   history, so its oldest change is no starting point.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use prost::Message as _;
use qi_proto::common::{ChangeKind, WatchStart};
use sqlx::{Connection as _, PgConnection, PgPool};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::access::{ACCESS_HEADER, AccessContext, AccessSigner};
use crate::codec::BytesCodec;

/// A feed to follow.
#[derive(Debug, Clone)]
pub struct Feed {
    /// Its key in the consumer's `feed` table, e.g. `training`.
    pub key: &'static str,
    /// Its service's own URL (not the gateway's), e.g. `http://qi-training:50051`.
    pub url: String,
    /// The full path of its `WatchChanges`.
    pub path: &'static str,
    /// Only these collections; empty for all.
    pub collections: Vec<String>,
}

/// What every service's `WatchChangesRequest` holds, in the same fields.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WatchRequest {
    /// Resume after this cursor.
    #[prost(string, tag = "1")]
    pub cursor: String,
    /// Where to start without one (`qi.common.v1.WatchStart`).
    #[prost(int32, tag = "2")]
    pub start: i32,
    /// Only these collections.
    #[prost(string, repeated, tag = "3")]
    pub collections: Vec<String>,
    /// Changes of a backlog read at a time.
    #[prost(int32, tag = "4")]
    pub page_size: i32,
}

/// The fields every service's `WatchChangesResponse` shares; the resource (a oneof whose
/// fields differ by service) is left in the message for the consumer to decode.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Change {
    /// Where the change is in its feed.
    #[prost(string, tag = "1")]
    pub cursor: String,
    /// The changed resource's name.
    #[prost(string, tag = "2")]
    pub resource_name: String,
    /// Its collection.
    #[prost(string, tag = "3")]
    pub collection: String,
    /// What happened (`qi.common.v1.ChangeKind`).
    #[prost(int32, tag = "4")]
    pub kind: i32,
    /// When it was written.
    #[prost(message, optional, tag = "6")]
    pub commit_time: Option<prost_types::Timestamp>,
}

/// What a follower does with the feeds it follows.
pub trait Consumer: Send + Sync + 'static {
    /// Builds what the consumer keeps from the services' lists, storing each feed's cursor,
    /// when one of `feeds` has none yet; called with the lock held, before following.
    fn bootstrap(&self, feeds: &[Feed]) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Applies `batch` (whole `WatchChangesResponse` messages of `feed`, in feed order,
    /// checkpoints included) in `tx`, the transaction that also moves the feed's cursor.
    fn apply(
        &self,
        tx: &mut PgConnection,
        feed: &'static str,
        batch: &[Bytes],
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Changes applied in one transaction at most (a backlog streams in such batches).
const BATCH: usize = 500;
/// How often a waiting replica tries the lock, and the holder checks it still has it.
const LOCK_EVERY: Duration = Duration::from_secs(2);
/// The pause before resuming a feed that ended: doubling from the first to the most.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Follows feeds into a consumer while this replica holds the consumer's lock.
pub struct Follower<C> {
    pool: PgPool,
    signer: AccessSigner,
    name: String,
    lock: i64,
    feeds: Vec<Feed>,
    consumer: C,
}

impl<C> std::fmt::Debug for Follower<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("name", &self.name)
            .field("feeds", &self.feeds)
            .finish_non_exhaustive()
    }
}

/// A request for `path` carrying a trust-wide context `name` signs.
pub fn signed<T>(
    signer: &AccessSigner,
    name: &str,
    message: T,
    path: &str,
) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    let context = signer.sign(&AccessContext::internal(name, path))?;
    request
        .metadata_mut()
        .insert(ACCESS_HEADER, context.parse()?);
    Ok(request)
}

/// Opens `feed`'s stream as `name`: from `cursor`, or from `start` without one.
pub async fn open(
    signer: &AccessSigner,
    name: &str,
    feed: &Feed,
    cursor: Option<&str>,
    start: WatchStart,
) -> anyhow::Result<tonic::Streaming<Bytes>> {
    let request = WatchRequest {
        cursor: cursor.unwrap_or_default().to_owned(),
        start: if cursor.is_some() {
            WatchStart::Unspecified
        } else {
            start
        } as i32,
        collections: feed.collections.clone(),
        page_size: 1000,
    };
    let request = signed(
        signer,
        name,
        Bytes::from(request.encode_to_vec()),
        feed.path,
    )?;
    let channel = tonic::transport::Endpoint::from_shared(feed.url.clone())?
        .connect()
        .await
        .with_context(|| format!("connecting to {}", feed.url))?;
    let mut grpc = tonic::client::Grpc::new(channel)
        .max_decoding_message_size(crate::server::MAX_MESSAGE_BYTES);
    grpc.ready().await?;
    Ok(grpc
        .server_streaming(request, feed.path.parse()?, BytesCodec)
        .await?
        .into_inner())
}

/// `feed`'s cursor now: the CHECKPOINT a stream opened at "now" begins with.
pub async fn current_cursor(
    signer: &AccessSigner,
    name: &str,
    feed: &Feed,
) -> anyhow::Result<String> {
    let mut stream = open(signer, name, feed, None, WatchStart::Now).await?;
    while let Some(m) = stream.message().await? {
        let change = Change::decode(m)?;
        if change.kind == ChangeKind::Checkpoint as i32 {
            return Ok(change.cursor);
        }
    }
    anyhow::bail!("the {} feed ended before its first checkpoint", feed.key)
}

/// How many of `feeds` have a stored cursor in the consumer's `feed` table.
pub async fn followed(conn: &mut PgConnection, feeds: &[Feed]) -> anyhow::Result<usize> {
    let keys: Vec<&str> = feeds.iter().map(|f| f.key).collect();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM feed WHERE service = ANY($1)")
        .bind(&keys)
        .fetch_one(&mut *conn)
        .await?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Stores `feed`'s cursor as `cursor`, in the caller's transaction (a bootstrap's).
pub async fn store_cursor(conn: &mut PgConnection, feed: &str, cursor: &str) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO feed (service, cursor) VALUES ($1, $2)
         ON CONFLICT (service) DO UPDATE SET cursor = excluded.cursor, update_time = now()",
    )
    .bind(feed)
    .bind(cursor)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl<C: Consumer> Follower<C> {
    /// A follower over the consumer's `pool`, signing with `signer` as `internal:{name}`,
    /// holding session lock `lock` (a constant of the consumer's own) while it consumes.
    pub fn new(
        pool: PgPool,
        signer: AccessSigner,
        name: &str,
        lock: i64,
        feeds: Vec<Feed>,
        consumer: C,
    ) -> Self {
        Follower {
            pool,
            signer,
            name: name.to_owned(),
            lock,
            feeds,
            consumer,
        }
    }

    /// Runs until `stop` turns true: waits for the lock, bootstraps, then follows every
    /// feed; gives the lock back when it stops or loses its connection.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let this = Arc::new(self);
        loop {
            let Some(mut lock) = this.lead(&mut stop).await else {
                return;
            };
            let bootstrapped = tokio::select! {
                r = this.consumer.bootstrap(&this.feeds) => r,
                _ = stop.changed() => Ok(()),
            };
            if let Err(e) = bootstrapped {
                tracing::warn!(consumer = %this.name, error = %format!("{e:#}"),
                    "building from the services' lists failed; retrying");
                let _ = lock.close().await;
                tokio::select! {
                    () = tokio::time::sleep(RETRY_FIRST) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            tracing::info!(consumer = %this.name, "following the change feeds");
            let mut followers = JoinSet::new();
            for feed in this.feeds.clone() {
                followers.spawn(this.clone().follow(feed));
            }
            let stopped = hold(&mut lock, &mut stop).await;
            // The followers end before the lock is given back, so the next holder never
            // overlaps this one (the cursor guard would refuse a batch, at a retry's cost).
            followers.shutdown().await;
            let _ = lock.close().await;
            if stopped {
                return;
            }
            tracing::warn!(consumer = %this.name,
                "lost the consumer lock's connection; waiting for the lock again");
        }
    }

    /// Waits for the lock on a connection of its own; `None` when told to stop.
    async fn lead(&self, stop: &mut watch::Receiver<bool>) -> Option<PgConnection> {
        loop {
            if *stop.borrow() {
                return None;
            }
            match self.try_lock().await {
                Ok(Some(conn)) => return Some(conn),
                Ok(None) => {}
                Err(e) => tracing::warn!(consumer = %self.name, error = %e,
                    "trying the consumer lock failed"),
            }
            tokio::select! {
                () = tokio::time::sleep(LOCK_EVERY) => {}
                _ = stop.changed() => {}
            }
        }
    }

    async fn try_lock(&self) -> anyhow::Result<Option<PgConnection>> {
        let mut conn = PgConnection::connect_with(&self.pool.connect_options()).await?;
        let held: Option<bool> = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(self.lock)
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
    async fn follow(self: Arc<Self>, feed: Feed) {
        let mut pause = RETRY_FIRST;
        loop {
            match self.follow_once(&feed).await {
                Ok(true) => pause = RETRY_FIRST,
                Ok(false) => {}
                Err(e) => tracing::warn!(
                    consumer = %self.name,
                    feed = feed.key,
                    error = %format!("{e:#}"),
                    "following a change feed failed; resuming from the last cursor applied"
                ),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_MAX);
        }
    }

    /// One stream of `feed` from the stored cursor, applied batch by batch until it ends;
    /// whether anything was applied.
    async fn follow_once(&self, feed: &Feed) -> anyhow::Result<bool> {
        let mut cursor = stored_cursor(&self.pool, feed.key).await?;
        let mut stream = open(
            &self.signer,
            &self.name,
            feed,
            cursor.as_deref(),
            WatchStart::Oldest,
        )
        .await?;
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
            cursor = Some(
                apply(
                    &self.pool,
                    &self.consumer,
                    feed.key,
                    cursor.as_deref(),
                    &batch,
                )
                .await?,
            );
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

/// Where `feed` has been applied to; `None` before its first change.
pub async fn stored_cursor(pool: &PgPool, feed: &str) -> anyhow::Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT cursor FROM feed WHERE service = $1")
            .bind(feed)
            .fetch_optional(pool)
            .await?,
    )
}

/// Applies `batch` through `consumer` and moves `feed`'s stored cursor from `from` to the
/// last message's, in one transaction; the new cursor. Refused, applying nothing, when the
/// stored cursor is no longer `from`: another consumer (or a rebuild) moved it.
pub async fn apply<C: Consumer>(
    pool: &PgPool,
    consumer: &C,
    feed: &'static str,
    from: Option<&str>,
    batch: &[Bytes],
) -> anyhow::Result<String> {
    let last = batch.last().context("an empty batch")?;
    let cursor = Change::decode(last.clone())
        .context("an undecodable change")?
        .cursor;
    let mut tx = crate::db::begin(pool).await?;
    let moved = sqlx::query(
        "INSERT INTO feed (service, cursor) VALUES ($1, $2)
         ON CONFLICT (service) DO UPDATE SET cursor = excluded.cursor, update_time = now()
         WHERE feed.cursor = $3",
    )
    .bind(feed)
    .bind(&cursor)
    .bind(from)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    anyhow::ensure!(
        moved == 1,
        "another consumer moved the {feed} feed's cursor: this one stops"
    );
    consumer.apply(&mut tx, feed, batch).await?;
    tx.commit().await?;
    Ok(cursor)
}
