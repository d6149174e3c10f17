//! Change feeds (`WatchChanges`): every service publishes its changes through a
//! transactional outbox in its own schema, the `changes` table each service's migration
//! creates (the same in every schema; these queries are checked against training's, as
//! [`crate::idempotency`]'s are).
//!
//! **Writing.** A write records its change with [`record`] in its own transaction, after the
//! change, with the resource as it now is. A change rolled back is never published; one
//! committed always is, whatever happens to the process after the commit.
//!
//! **Order without serialising writers.** A change's position (`pos`) is its transaction's
//! id (`xid8`), raised to the position of the resource's previous change when that is later:
//! a writer that waited for a resource's row lock commits after the change it waited for,
//! whatever its own id, and the position keeps that order. A reader hands out only positions
//! below the oldest transaction still in flight (`pg_snapshot_xmin(pg_current_snapshot())`):
//! everything there has committed or rolled back, and whatever commits later has a position
//! at or above it, so nothing can ever commit behind a cursor already handed out. Writers
//! never wait for each other to get a position. The cost: while a long transaction runs
//! (anywhere in the cluster), the feeds wait for it.
//!
//! **Waking.** One task per service replica ([`Feed`]) looks for newly deliverable changes
//! every `QI_CHANGES_POLL_MS` while any feed is open, and wakes all of them at once: one
//! small indexed query per replica, however many feeds and writers. Writers send nothing:
//! a `NOTIFY` per transaction would serialise their commits, and could not tell a feed when
//! a long transaction that held the feeds back has ended.
//!
//! **Bulk writes.** A writer that changes a whole collection at once (the HR sync) records
//! who it changed, not what, as [`Many`] changes; the service renders each resource when a
//! feed delivers it, as it is then.
//!
//! **Scope.** Each change row names the sites whose callers see it (none: every caller). A
//! resource that leaves a site's view gets a `hidden` change for that site ([`record_hidden`]).
//! A caller whose sites see nothing for a while still gets CHECKPOINT messages, so the
//! cursor it keeps never falls behind the retention.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::access::AccessContext;
use crate::error::Error;
use crate::rpc::ResponseStream;
use qi_proto::common::{ChangeKind, WatchStart};

mod many;
pub use many::{Many, Render, Rendered, Rendering};

/// What happened to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Created.
    Created,
    /// Changed in place.
    Updated,
    /// Deleted (the change carries the name only).
    Deleted,
    /// Moved in its lifecycle by this verb (`start`, `accept`, `leave`, ...).
    StateChanged(&'static str),
}

impl Kind {
    fn column(self) -> (&'static str, &'static str) {
        match self {
            Kind::Created => ("created", ""),
            Kind::Updated => ("updated", ""),
            Kind::Deleted => ("deleted", ""),
            Kind::StateChanged(verb) => ("state_changed", verb),
        }
    }
}

/// One change, as a write records it.
#[derive(Debug)]
pub struct Change<'a> {
    /// The collection id in the resource's name (`projects`, `pdsaCycles`, ...).
    pub collection: &'static str,
    /// The resource's name.
    pub name: &'a str,
    /// What happened.
    pub kind: Kind,
    /// The sites whose callers may read the resource; `None` for every caller (reference
    /// data, trust-wide resources).
    pub sites: Option<Vec<String>>,
    /// The resource after the change, encoded; `None` for a delete.
    pub payload: Option<Vec<u8>>,
}

impl<'a> Change<'a> {
    /// A change carrying `resource` as it is after it.
    pub fn of(
        collection: &'static str,
        name: &'a str,
        kind: Kind,
        sites: Option<Vec<String>>,
        resource: &impl prost::Message,
    ) -> Self {
        Change {
            collection,
            name,
            kind,
            sites,
            payload: Some(resource.encode_to_vec()),
        }
    }

    /// The deletion of `name`.
    pub fn deleted(collection: &'static str, name: &'a str, sites: Option<Vec<String>>) -> Self {
        Change {
            collection,
            name,
            kind: Kind::Deleted,
            sites,
            payload: None,
        }
    }
}

/// Records `change` in the transaction of the write it describes (see the module docs for
/// its position).
pub async fn record(conn: &mut PgConnection, change: Change<'_>) -> Result<(), Error> {
    let (kind, verb) = change.kind.column();
    sqlx::query!(
        "INSERT INTO changes (pos, collection, name, kind, verb, sites, payload)
         SELECT GREATEST(pg_current_xact_id(), (SELECT max(pos) FROM changes WHERE name = $2)),
                $1, $2, $3, $4, $5, $6",
        change.collection,
        change.name,
        kind,
        verb,
        change.sites.as_deref(),
        change.payload,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a change of `resource` named `name` in `collection`, seen by `sites`' callers
/// (`None`: every caller), in the write's transaction: [`record`] of [`Change::of`].
pub async fn record_change(
    conn: &mut PgConnection,
    collection: &'static str,
    name: &str,
    kind: Kind,
    sites: Option<Vec<String>>,
    resource: &impl prost::Message,
) -> Result<(), Error> {
    record(conn, Change::of(collection, name, kind, sites, resource)).await
}

/// Records the deletion of `name`: [`record`] of [`Change::deleted`].
pub async fn record_deleted(
    conn: &mut PgConnection,
    collection: &'static str,
    name: &str,
    sites: Option<Vec<String>>,
) -> Result<(), Error> {
    record(conn, Change::deleted(collection, name, sites)).await
}

/// Records that `name` left the view of the callers of `lost` (sites it no longer belongs
/// to), except those also holding one of `kept` (the sites it still belongs to). Nothing
/// when no site was lost.
pub async fn record_hidden(
    conn: &mut PgConnection,
    collection: &'static str,
    name: &str,
    lost: &[String],
    kept: &[String],
) -> Result<(), Error> {
    if lost.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO changes (pos, collection, name, kind, sites, kept)
         SELECT GREATEST(pg_current_xact_id(), (SELECT max(pos) FROM changes WHERE name = $2)),
                $1, $2, 'hidden', $3, $4",
        collection,
        name,
        lost,
        kept,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Many changes of one collection at once, each of one site (`None`: every caller), for
/// the bulk writes (a batch of measurements, the HR sync): one statement, the rows in order.
#[derive(Debug, Default)]
pub struct Batch {
    names: Vec<String>,
    kinds: Vec<&'static str>,
    verbs: Vec<&'static str>,
    sites: Vec<Option<String>>,
    payloads: Vec<Option<Vec<u8>>>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Batch::default()
    }

    /// Adds the change of `name` (its resource after it, unless a delete).
    pub fn push(
        &mut self,
        name: String,
        kind: Kind,
        site: Option<String>,
        resource: Option<&impl prost::Message>,
    ) {
        let (kind, verb) = kind.column();
        self.names.push(name);
        self.kinds.push(kind);
        self.verbs.push(verb);
        self.sites.push(site);
        self.payloads
            .push(resource.map(prost::Message::encode_to_vec));
    }

    /// How many changes it holds.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Records them all in the write's transaction (positions as [`record`] gives them).
    pub async fn record(self, conn: &mut PgConnection, collection: &str) -> Result<(), Error> {
        self.record_as(conn, collection, true).await
    }

    /// [`Batch::record`] for a writer that holds, from before its transaction's first write
    /// to its commit, a lock every other writer of these resources takes first (the HR sync's
    /// lock on `staff`): its transaction id is later than every earlier change's, so the
    /// positions need no look-up of each resource's last change.
    pub async fn record_under_lock(
        self,
        conn: &mut PgConnection,
        collection: &str,
    ) -> Result<(), Error> {
        self.record_as(conn, collection, false).await
    }

    async fn record_as(
        self,
        conn: &mut PgConnection,
        collection: &str,
        raise: bool,
    ) -> Result<(), Error> {
        if self.is_empty() {
            return Ok(());
        }
        let kinds: Vec<&str> = self.kinds;
        let verbs: Vec<&str> = self.verbs;
        sqlx::query!(
            "INSERT INTO changes (pos, collection, name, kind, verb, sites, payload)
             SELECT CASE WHEN $7 THEN GREATEST(pg_current_xact_id(),
                             (SELECT max(c.pos) FROM changes c WHERE c.name = r.name))
                         ELSE pg_current_xact_id() END,
                    $1, r.name, r.kind, r.verb,
                    CASE WHEN r.site IS NULL THEN NULL ELSE ARRAY[r.site] END, r.payload
             FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[])
                  WITH ORDINALITY AS r(name, kind, verb, site, payload, n)
             ORDER BY r.n",
            collection,
            &self.names,
            &kinds as &[&str],
            &verbs as &[&str],
            &self.sites as &[Option<String>],
            &self.payloads as &[Option<Vec<u8>>],
            raise,
        )
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// Records, for each of `names`, that it left the view of the callers of the site beside it
/// in `lost`, except those holding one of the sites beside it in `kept` (comma-separated: a
/// person who moved site, and what is theirs).
pub async fn record_hidden_many(
    conn: &mut PgConnection,
    collection: &str,
    names: &[String],
    lost: &[String],
    kept: &[String],
) -> Result<(), Error> {
    if names.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO changes (pos, collection, name, kind, sites, kept)
         SELECT GREATEST(pg_current_xact_id(),
                         (SELECT max(c.pos) FROM changes c WHERE c.name = r.name)),
                $1, r.name, 'hidden', ARRAY[r.lost], string_to_array(r.kept, ',')
         FROM UNNEST($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS r(name, lost, kept, n)
         ORDER BY r.n",
        collection,
        names,
        lost,
        kept,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A service's feed handlers from its contract module and its collections, each with the
/// variant of its `WatchChangesResponse.resource` oneof: `COLLECTIONS`, the `watch` handler
/// (WatchChanges, served from the service's `feed`), and `decode` (a stored resource as its
/// variant). Every service's feed is the same but for these.
///
/// ```ignore
/// qi_platform::change_feed!(crate::MetricsApi, qi_proto::metrics, {
///     "metrics" => Metric,
///     "measurements" => Measurement,
/// });
/// ```
///
/// A service whose bulk writes record [`Many`] changes names its [`Render`] after the
/// collections: `{ ... }, render: Some(crate::staff::render)`.
#[macro_export]
macro_rules! change_feed {
    ($api:ty, $pb:path, { $($collection:literal => $variant:ident),+ $(,)? }) => {
        $crate::change_feed!($api, $pb, { $($collection => $variant),+ }, render: None);
    };
    ($api:ty, $pb:path, { $($collection:literal => $variant:ident),+ $(,)? }, render: $render:expr) => {
        use $pb as feed_pb;

        /// The collections of this feed, as they appear in resource names.
        pub(crate) const COLLECTIONS: &[&str] = &[$($collection),+];

        /// WatchChanges: the caller's changes of this service (see the contract).
        pub(crate) async fn watch(
            api: &$api,
            ctx: $crate::AccessContext,
            req: feed_pb::WatchChangesRequest,
        ) -> Result<$crate::rpc::ResponseStream<feed_pb::WatchChangesResponse>, $crate::Error> {
            let feed_pb::WatchChangesRequest { cursor, start, collections, page_size } = req;
            let watch =
                $crate::changes::Watch::parse(&cursor, start, collections, page_size, COLLECTIONS)?;
            api.feed.serve(&ctx, watch, to_message, $render).await
        }

        /// The changes `ctx` reads from the oldest retained, up to the feed's first
        /// checkpoint: what a write recorded, as a consumer receives it (tests).
        #[cfg(test)]
        pub(crate) async fn backlog(
            api: &$api,
            ctx: &$crate::AccessContext,
        ) -> anyhow::Result<Vec<feed_pb::WatchChangesResponse>> {
            let stream = watch(api, ctx.clone(), feed_pb::WatchChangesRequest::default()).await?;
            $crate::changes::until_checkpoint(stream, |m| m.kind).await
        }

        /// A stored change as the contract's message.
        fn to_message(
            message: $crate::changes::Message,
        ) -> Result<feed_pb::WatchChangesResponse, $crate::Error> {
            let f = message.into_fields()?;
            let resource = match &f.payload {
                Some(bytes) => Some(decode(&f.collection, bytes)?),
                None => None,
            };
            Ok(feed_pb::WatchChangesResponse {
                cursor: f.cursor,
                resource_name: f.resource_name,
                collection: f.collection,
                kind: f.kind,
                verb: f.verb,
                commit_time: f.commit_time,
                resource,
            })
        }

        /// The stored resource of a change to `collection`.
        pub(crate) fn decode(
            collection: &str,
            bytes: &[u8],
        ) -> Result<feed_pb::watch_changes_response::Resource, $crate::Error> {
            use feed_pb::watch_changes_response::Resource;
            Ok(match collection {
                $($collection => Resource::$variant($crate::changes::decode(collection, bytes)?),)+
                other => return Err($crate::changes::unknown_collection(other)),
            })
        }
    };
}

/// A place in a feed: after the change at (`pos`, `id`), written `{pos}.{id}`; or, inside a
/// `many` change ([`Many`]), after its first `within` items, written `{pos}.{id}.{within}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    pos: u64,
    id: i64,
    within: Option<u32>,
}

impl Ord for Cursor {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let key = |c: &Cursor| (c.pos, c.id, c.within.unwrap_or(u32::MAX));
        key(self).cmp(&key(other))
    }
}

impl PartialOrd for Cursor {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.pos, self.id)?;
        match self.within {
            Some(within) => write!(f, ".{within}"),
            None => Ok(()),
        }
    }
}

impl Cursor {
    /// Reads a cursor this feed handed out; the error names `field`.
    pub fn parse(field: &str, text: &str) -> Result<Self, Error> {
        let mut parts = text.split('.');
        let cursor = (|| {
            let pos = parts.next()?.parse().ok()?;
            let id = parts.next()?.parse().ok().filter(|&id: &i64| id >= 0)?;
            // `u32::MAX` orders as the whole change: refused, so equal cursors compare equal.
            let within = match parts.next() {
                None => None,
                Some(within) => Some(within.parse().ok().filter(|&w: &u32| w < u32::MAX)?),
            };
            parts.next().is_none().then_some(Cursor { pos, id, within })
        })();
        cursor.ok_or_else(|| Error::invalid(field, "is not a cursor this feed handed out"))
    }

    /// After the whole change at (`pos`, `id`).
    fn after(pos: u64, id: i64) -> Self {
        Cursor {
            pos,
            id,
            within: None,
        }
    }

    /// Just before every position from `horizon` on: where a reader that has read all below
    /// `horizon` stands.
    fn below(horizon: u64) -> Self {
        Cursor::after(horizon.saturating_sub(1), i64::MAX)
    }

    fn pos_text(self) -> String {
        self.pos.to_string()
    }
}

/// The contract's kind of a stored change's `kind`.
pub fn kind_of(stored: &str) -> Result<ChangeKind, Error> {
    Ok(match stored {
        "created" => ChangeKind::Created,
        "updated" => ChangeKind::Updated,
        "deleted" => ChangeKind::Deleted,
        "state_changed" => ChangeKind::StateChanged,
        "hidden" => ChangeKind::Hidden,
        other => {
            return Err(Error::Internal(anyhow::anyhow!(
                "a stored change of an unknown kind {other:?}"
            )));
        }
    })
}

/// One change as a feed delivers it.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// Where it is in the feed.
    pub cursor: Cursor,
    /// Its collection id.
    pub collection: String,
    /// The resource's name.
    pub name: String,
    /// `created`, `updated`, `deleted`, `state_changed` or `hidden`.
    pub kind: String,
    /// A state change's verb.
    pub verb: String,
    /// The resource after the change, as its service encoded it.
    pub payload: Option<Vec<u8>>,
    /// When it was written.
    pub commit_time: DateTime<Utc>,
}

/// A feed's message as every service's `WatchChangesResponse` spells it, but for the
/// resource, which each service decodes from `payload` into its own `oneof`.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    /// Where the change is in the feed.
    pub cursor: String,
    /// The resource's name (empty for a checkpoint).
    pub resource_name: String,
    /// Its collection.
    pub collection: String,
    /// A `qi.common.v1.ChangeKind`.
    pub kind: i32,
    /// A state change's verb.
    pub verb: String,
    /// When the change was written.
    pub commit_time: Option<prost_types::Timestamp>,
    /// The encoded resource, when the change carries one.
    pub payload: Option<Vec<u8>>,
}

impl Message {
    /// The message's fields.
    pub fn into_fields(self) -> Result<Fields, Error> {
        Ok(match self {
            Message::Checkpoint(cursor) => Fields {
                cursor: cursor.to_string(),
                kind: ChangeKind::Checkpoint.into(),
                ..Fields::default()
            },
            Message::Change(c) => Fields {
                cursor: c.cursor.to_string(),
                kind: kind_of(&c.kind)?.into(),
                resource_name: c.name,
                collection: c.collection,
                verb: c.verb,
                commit_time: Some(crate::convert::timestamp(c.commit_time)),
                payload: c.payload,
            },
        })
    }
}

/// Decodes a stored resource of `collection`.
pub fn decode<M: prost::Message + Default>(collection: &str, bytes: &[u8]) -> Result<M, Error> {
    M::decode(bytes)
        .map_err(|e| Error::Internal(anyhow::anyhow!("a stored change of {collection}: {e}")))
}

/// The error for a stored change of a collection the service does not know.
pub fn unknown_collection(collection: &str) -> Error {
    Error::Internal(anyhow::anyhow!(
        "a stored change of an unknown collection {collection:?}"
    ))
}

/// What a feed sends: a change, or a checkpoint (the cursor moved past changes the caller
/// does not see).
#[derive(Debug, Clone)]
pub enum Message {
    /// A change the caller may see.
    Change(Delivered),
    /// Only a cursor to keep.
    Checkpoint(Cursor),
}

/// How feeds behave (`QI_CHANGES_*`).
#[derive(Debug, Clone, Copy)]
pub struct FeedSettings {
    /// How long changes are kept (`QI_CHANGES_RETENTION_DAYS`).
    pub retention: Duration,
    /// A consumer that reads nothing for this long, with changes waiting, is disconnected.
    pub idle_timeout: Duration,
    /// How often a replica looks for new changes while feeds are open.
    pub poll: Duration,
    /// How often a caught-up feed sends a checkpoint when its cursor moved unseen.
    pub checkpoint_every: Duration,
}

impl Default for FeedSettings {
    fn default() -> Self {
        FeedSettings {
            retention: Duration::from_secs(30 * 86_400),
            idle_timeout: Duration::from_secs(60),
            poll: Duration::from_millis(100),
            checkpoint_every: Duration::from_secs(10),
        }
    }
}

impl From<&crate::Config> for FeedSettings {
    fn from(c: &crate::Config) -> Self {
        FeedSettings {
            retention: Duration::from_secs(u64::from(c.changes_retention_days) * 86_400),
            idle_timeout: c.changes_idle_timeout,
            poll: c.changes_poll,
            ..FeedSettings::default()
        }
    }
}

/// The most changes read at a time, and the default.
const PAGE_MAX: i32 = 1_000;
const PAGE_DEFAULT: i32 = 500;
/// Messages a feed holds ready for a slow consumer: with HTTP/2's window, all it buffers.
const QUEUE: usize = 64;

/// What a `WatchChanges` request asks for, checked.
#[derive(Debug, Clone)]
pub struct Watch {
    start: Start,
    collections: Vec<String>,
    page_size: i64,
}

#[derive(Debug, Clone, Copy, Default)]
enum Start {
    After(Cursor),
    #[default]
    Oldest,
    Now,
}

impl Watch {
    /// Checks a request's fields against the collections this feed carries; each error
    /// names its field.
    pub fn parse(
        cursor: &str,
        start: i32,
        collections: Vec<String>,
        page_size: i32,
        known: &[&str],
    ) -> Result<Self, Error> {
        let mut v = crate::Violations::new();
        let start = match (cursor.is_empty(), WatchStart::try_from(start)) {
            (_, Err(_)) => {
                v.add("start", "is not a WatchStart value");
                Start::Oldest
            }
            (false, Ok(WatchStart::Unspecified)) => {
                v.check(Cursor::parse("cursor", cursor).map(Start::After))
            }
            (false, Ok(_)) => {
                v.add("start", "give a cursor or a start, not both");
                Start::Oldest
            }
            (true, Ok(WatchStart::Now)) => Start::Now,
            (true, Ok(WatchStart::Oldest | WatchStart::Unspecified)) => Start::Oldest,
        };
        for (i, c) in collections.iter().enumerate() {
            if !known.contains(&c.as_str()) {
                v.add(
                    format!("collections[{i}]"),
                    format!(
                        "`{}` is not a collection of this feed: one of {}",
                        crate::names::clip(c),
                        known.join(", ")
                    ),
                );
            }
        }
        if !(0..=PAGE_MAX).contains(&page_size) {
            v.add("page_size", format!("must be from 0 to {PAGE_MAX}"));
        }
        v.finish()?;
        Ok(Watch {
            start,
            collections,
            page_size: i64::from(if page_size == 0 {
                PAGE_DEFAULT
            } else {
                page_size
            }),
        })
    }
}

/// A service's change feed: its pool, its settings, and the wake-up every open feed of this
/// replica waits on.
#[derive(Debug)]
pub struct Feed {
    pool: PgPool,
    settings: FeedSettings,
    /// The last deliverable change seen; a new value wakes every feed.
    head: watch::Sender<Cursor>,
    /// Set when the server stops: every open feed ends UNAVAILABLE.
    stopping: watch::Sender<bool>,
    ticking: std::sync::Once,
}

impl Feed {
    /// The feed of the service whose schema `pool` reaches.
    pub fn new(pool: PgPool, settings: FeedSettings) -> Arc<Self> {
        Arc::new(Feed {
            pool,
            settings,
            head: watch::Sender::new(Cursor::default()),
            stopping: watch::Sender::new(false),
            ticking: std::sync::Once::new(),
        })
    }

    /// Its settings.
    pub fn settings(&self) -> FeedSettings {
        self.settings
    }

    /// Ends every open feed of this replica, UNAVAILABLE (its consumer resumes from its
    /// cursor at another replica, or here once restarted), and refuses new ones: the server
    /// is stopping.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Serves one `WatchChanges` call: the caller's changes from `watch`'s start, each
    /// turned into the service's message by `to_message`, until the caller leaves, its token
    /// expires (UNAUTHENTICATED), or the database goes away (UNAVAILABLE). The first page is
    /// read before answering, so a bad cursor is the call's error. `render` gives the
    /// resources of [`Many`] changes.
    pub async fn serve<M: Send + 'static>(
        self: &Arc<Self>,
        ctx: &AccessContext,
        watch: Watch,
        to_message: fn(Message) -> Result<M, Error>,
        render: Option<Render>,
    ) -> Result<ResponseStream<M>, Error> {
        self.start_ticking();
        let cursor = self.starting_cursor(watch.start).await?;
        let backlog_end = last_committed(&self.pool).await?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let reader = Reader {
            feed: self.clone(),
            sites: ctx.sites.sql_filter(),
            collections: watch.collections,
            page_size: watch.page_size,
            expires: ctx.token_expiry,
            to_message,
            render,
        };
        tokio::spawn(reader.run(cursor, backlog_end, tx));
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }

    /// Where a feed starts: after the purge horizon for the oldest retained change, below
    /// the oldest transaction in flight for now; a cursor before the horizon is OUT_OF_RANGE.
    async fn starting_cursor(&self, start: Start) -> Result<Cursor, Error> {
        let mut conn = crate::db::begin(&self.pool).await?;
        let purged = purged(&mut conn).await?;
        match start {
            Start::Oldest => Ok(purged),
            Start::Now => {
                let horizon = sqlx::query_scalar!(
                    r#"SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS "horizon!""#
                )
                .fetch_one(&mut *conn)
                .await?;
                Ok(Cursor::below(parse_pos(&horizon)?))
            }
            Start::After(cursor) if cursor < purged => Err(Error::OutOfRange {
                message: format!(
                    "cursor {cursor} is older than the oldest change kept ({} days): resume \
                     after {purged}, or start from the oldest or from now",
                    self.settings.retention.as_secs() / 86_400
                ),
                oldest: purged.to_string(),
            }),
            Start::After(cursor) => Ok(cursor),
        }
    }

    /// Starts this replica's wake-up task, once: every `poll` while any feed is open it
    /// reads the last deliverable change and, when it moved, wakes every feed. The task
    /// ends when the feed is dropped.
    fn start_ticking(self: &Arc<Self>) {
        let weak: Weak<Feed> = Arc::downgrade(self);
        self.ticking.call_once(|| {
            let poll = self.settings.poll;
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(poll);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    let Some(feed) = weak.upgrade() else { return };
                    if feed.head.receiver_count() == 0 {
                        continue;
                    }
                    match last_deliverable(&feed.pool).await {
                        Ok(head) => {
                            feed.head.send_if_modified(|h| {
                                let moved = *h != head;
                                *h = head;
                                moved
                            });
                        }
                        // Every feed reads at once, meets the failure and ends UNAVAILABLE
                        // (its consumer resumes from its cursor), rather than sitting on a
                        // database that has gone away.
                        Err(e) => {
                            tracing::debug!(error = ?e, "looking for new changes failed");
                            feed.head.send_modify(|_| {});
                        }
                    }
                }
            });
        });
    }
}

/// The last change a reader may hand out now.
async fn last_deliverable(pool: &PgPool) -> Result<Cursor, Error> {
    let row = sqlx::query!(
        r#"SELECT pos::text AS "pos!", id FROM changes
           WHERE pos < pg_snapshot_xmin(pg_current_snapshot())
           ORDER BY pos DESC, id DESC LIMIT 1"#
    )
    .fetch_optional(pool)
    .await?;
    stored_cursor(row.map(|r| (r.pos, r.id)))
}

/// The last change committed (visible to this statement), wherever the horizon stands.
async fn last_committed(pool: &PgPool) -> Result<Cursor, Error> {
    let row = sqlx::query!(
        r#"SELECT pos::text AS "pos!", id FROM changes ORDER BY pos DESC, id DESC LIMIT 1"#
    )
    .fetch_optional(pool)
    .await?;
    stored_cursor(row.map(|r| (r.pos, r.id)))
}

/// Where the purge has reached (nothing purged: the very start).
async fn purged(conn: &mut PgConnection) -> Result<Cursor, Error> {
    let row = sqlx::query!(r#"SELECT pos::text AS "pos!", id FROM changes_purged"#)
        .fetch_optional(conn)
        .await?;
    stored_cursor(row.map(|r| (r.pos, r.id)))
}

/// A stored position as a cursor; none is the very start.
fn stored_cursor(row: Option<(String, i64)>) -> Result<Cursor, Error> {
    match row {
        Some((pos, id)) => Ok(Cursor::after(parse_pos(&pos)?, id)),
        None => Ok(Cursor::default()),
    }
}

fn parse_pos(text: &str) -> Result<u64, Error> {
    text.parse()
        .map_err(|e| Error::Internal(anyhow::anyhow!("a stored position {text:?}: {e}")))
}

/// One open feed.
struct Reader<M> {
    feed: Arc<Feed>,
    /// The caller's sites, `None` when trust-wide.
    sites: Option<Vec<String>>,
    collections: Vec<String>,
    page_size: i64,
    expires: Option<u64>,
    to_message: fn(Message) -> Result<M, Error>,
    render: Option<Render>,
}

/// A page read: the changes the caller may see, how far the read went (`reached`), and
/// whether it stopped there with more to read (`full`); if not, it read all below `horizon`.
struct Page {
    changes: Vec<Delivered>,
    reached: Cursor,
    full: bool,
    horizon: u64,
}

impl<M: Send + 'static> Reader<M> {
    /// Follows the feed from `cursor`. The backlog is everything committed when the call
    /// came, up to `backlog_end`: its checkpoint waits until all of that has been read,
    /// even past a long transaction elsewhere that holds the horizon back.
    async fn run(
        self,
        mut cursor: Cursor,
        backlog_end: Cursor,
        tx: mpsc::Sender<Result<M, tonic::Status>>,
    ) {
        let mut wake = self.feed.head.subscribe();
        let mut stopping = self.feed.stopping.subscribe();
        let settings = self.feed.settings;
        let expiry = self.expires.map(expiry_instant);
        let mut sent = cursor;
        let mut last_sent = Instant::now();
        let mut backlog = true;
        // The next page of a backlog, read while the one before it was being sent.
        let mut prefetched: Option<Result<Page, Error>> = None;
        loop {
            if expiry.is_some_and(|at| Instant::now() >= at) {
                let _ = tx.send(Err(token_expired())).await;
                return;
            }
            if *stopping.borrow() {
                let _ = tx.send(Err(server_stopping())).await;
                return;
            }
            wake.mark_unchanged();
            let read = match prefetched.take() {
                Some(read) => read,
                None => self.read(cursor).await,
            };
            let page = match read {
                Ok(page) => page,
                Err(e) => {
                    let _ = tx.send(Err(tonic::Status::from(e))).await;
                    return;
                }
            };
            let Page {
                changes,
                reached,
                full,
                horizon,
            } = page;
            let delivered = changes.last().map(|c| c.cursor);
            let sent_all = if full {
                // The next page is read while this one goes out.
                let (sent_all, next) =
                    tokio::join!(self.send_page(&tx, changes, settings), self.read(reached));
                prefetched = Some(next);
                sent_all
            } else {
                self.send_page(&tx, changes, settings).await
            };
            if !sent_all {
                return;
            }
            if let Some(delivered) = delivered {
                last_sent = Instant::now();
                sent = delivered;
            }
            cursor = cursor.max(reached);
            if full {
                continue;
            }
            // Everything below the horizon has been read: the cursor moves there.
            cursor = cursor.max(Cursor::below(horizon));
            // A checkpoint when the backlog is done (the consumer knows it is caught up),
            // then whenever the cursor has moved unseen for a while.
            let due = cursor != sent && last_sent.elapsed() >= settings.checkpoint_every;
            let backlog_done = backlog && cursor >= backlog_end;
            if backlog_done {
                backlog = false;
            }
            if backlog_done || (due && !backlog) {
                if !self.send(&tx, Message::Checkpoint(cursor), settings).await {
                    return;
                }
                sent = cursor;
                last_sent = Instant::now();
            }
            let expired = async {
                match expiry {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = wake.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = tokio::time::sleep(settings.checkpoint_every) => {}
                () = expired => {}
                _ = stopping.changed() => {}
                () = tx.closed() => return,
            }
        }
    }

    /// Sends a page's changes in order; `false` when the feed is over.
    async fn send_page(
        &self,
        tx: &mpsc::Sender<Result<M, tonic::Status>>,
        changes: Vec<Delivered>,
        settings: FeedSettings,
    ) -> bool {
        for change in changes {
            if !self.send(tx, Message::Change(change), settings).await {
                return false;
            }
        }
        true
    }

    /// Sends one message, waiting at most the idle timeout for the consumer to make room;
    /// `false` when the feed is over (the consumer left, stalled, or the message failed).
    async fn send(
        &self,
        tx: &mpsc::Sender<Result<M, tonic::Status>>,
        message: Message,
        settings: FeedSettings,
    ) -> bool {
        let message = match (self.to_message)(message) {
            Ok(m) => Ok(m),
            Err(e) => Err(tonic::Status::from(e)),
        };
        let failed = message.is_err();
        // Room at once is the common case while a backlog streams: no timer for it.
        let permit = match tx.try_reserve() {
            Ok(permit) => permit,
            Err(mpsc::error::TrySendError::Closed(())) => return false,
            Err(mpsc::error::TrySendError::Full(())) => {
                match tokio::time::timeout(settings.idle_timeout, tx.reserve()).await {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(_closed)) => return false,
                    Err(_elapsed) => {
                        tracing::info!(
                            idle = ?settings.idle_timeout,
                            "a change feed's consumer stopped reading: disconnected"
                        );
                        return false;
                    }
                }
            }
        };
        permit.send(message);
        !failed
    }

    /// The caller's next changes after `cursor`, below the oldest transaction in flight:
    /// at most a page, counting each item of a [`Many`] change the caller may see.
    async fn read(&self, cursor: Cursor) -> Result<Page, Error> {
        let mut conn = crate::db::begin(&self.feed.pool).await?;
        // From the cursor's own change on: the rest of a `many` change it stands inside.
        let limit = self.page_size + 1;
        let rows = sqlx::query!(
            r#"WITH h AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS horizon)
               SELECT h.horizon::text AS "horizon!", c.pos::text AS "pos?", c.id AS "id?",
                      c.collection AS "collection?", c.name AS "name?", c.kind AS "kind?",
                      c.verb AS "verb?", c.commit_time AS "commit_time?",
                      -- A many change's list is read only if the page reaches it.
                      CASE WHEN c.kind = 'many' THEN NULL ELSE c.payload END AS payload
               FROM h LEFT JOIN LATERAL (
                   SELECT * FROM changes
                   WHERE (pos, id) >= ($1::text::xid8, $2)
                     AND pos < h.horizon
                     AND (cardinality($3::text[]) = 0 OR collection = ANY($3))
                     AND CASE WHEN $4::text[] IS NULL THEN kind <> 'hidden'
                              ELSE (sites IS NULL OR sites && $4) AND NOT kept && $4 END
                   ORDER BY pos, id
                   LIMIT $5
               ) c ON true
               ORDER BY c.pos, c.id"#,
            cursor.pos_text(),
            cursor.id,
            &self.collections,
            self.sites.as_deref(),
            limit,
        )
        .fetch_all(&mut *conn)
        .await?;
        let horizon = match rows.first() {
            Some(r) => parse_pos(&r.horizon)?,
            None => 0,
        };
        let fetched = rows.len() as i64;
        let mut page = Page {
            changes: Vec::new(),
            reached: cursor,
            full: false,
            horizon,
        };
        for r in rows {
            let (Some(pos), Some(id), Some(collection), Some(name), Some(kind), Some(t)) =
                (r.pos, r.id, r.collection, r.name, r.kind, r.commit_time)
            else {
                continue; // the one empty row of an empty page
            };
            let pos = parse_pos(&pos)?;
            // Already read, but for the items of a `many` change past the cursor.
            let skip = match cursor.within {
                _ if (pos, id) != (cursor.pos, cursor.id) => 0,
                Some(within) if kind == "many" => within as usize,
                _ => continue,
            };
            let room = (self.page_size as usize).saturating_sub(page.changes.len());
            if room == 0 {
                page.full = true;
                return Ok(page);
            }
            if kind == "many" {
                let list = sqlx::query_scalar!(
                    "SELECT payload FROM changes WHERE pos = $1::text::xid8 AND id = $2",
                    pos.to_string(),
                    id,
                )
                .fetch_one(&mut *conn)
                .await?;
                let items = many::Items::decode(list.as_deref())?;
                let (mut delivered, next) = self
                    .expand(&mut conn, &collection, &items, skip, room)
                    .await?;
                for d in &mut delivered {
                    d.cursor.pos = pos;
                    d.cursor.id = id;
                    d.commit_time = t;
                }
                page.changes.append(&mut delivered);
                if let Some(within) = next {
                    page.reached = Cursor {
                        pos,
                        id,
                        within: Some(within),
                    };
                    page.full = true;
                    return Ok(page);
                }
            } else {
                page.changes.push(Delivered {
                    cursor: Cursor::after(pos, id),
                    collection,
                    name,
                    kind,
                    verb: r.verb.unwrap_or_default(),
                    payload: r.payload,
                    commit_time: t,
                });
            }
            page.reached = Cursor::after(pos, id);
        }
        page.full = fetched == limit;
        Ok(page)
    }

    /// The items of a `many` change from `skip` on that the caller may see, at most `room`
    /// of them, each rendered as its resource is now; and where the next read resumes when
    /// items remain (how many of the change's items are then behind the cursor). The
    /// returned changes' cursors hold their place within the change; the caller sets the
    /// change's position and time.
    async fn expand(
        &self,
        conn: &mut PgConnection,
        collection: &str,
        items: &many::Items,
        skip: usize,
        room: usize,
    ) -> Result<(Vec<Delivered>, Option<u32>), Error> {
        let sees = |site: Option<&str>| match (&self.sites, site) {
            (None, _) | (Some(_), None) => true,
            (Some(mine), Some(site)) => mine.iter().any(|s| s == site),
        };
        let recorded = |k: usize| Some(items.sites[k].as_str()).filter(|s| !s.is_empty());
        let mut taken = Vec::new();
        let mut k = skip;
        while k < items.len() && taken.len() < room {
            if sees(recorded(k)) {
                taken.push(k);
            }
            k += 1;
        }
        let next = (k < items.len()).then(|| u32::try_from(k).unwrap_or(u32::MAX));
        let Some(render) = self.render else {
            return Err(Error::Internal(anyhow::anyhow!(
                "a many change of {collection:?} in a feed without a renderer"
            )));
        };
        let names: Vec<String> = taken.iter().map(|&k| items.names[k].clone()).collect();
        let mut now: std::collections::HashMap<String, Rendered> = render(conn, collection, &names)
            .await?
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        let mut delivered = Vec::with_capacity(taken.len());
        for k in taken {
            // Gone, or now where the caller does not see it: a later change says so.
            let Some(resource) = now.remove(&items.names[k]) else {
                continue;
            };
            if !sees(resource.site.as_deref()) {
                continue;
            }
            let within = u32::try_from(k + 1).unwrap_or(u32::MAX);
            delivered.push(Delivered {
                cursor: Cursor {
                    pos: 0,
                    id: 0,
                    within: (k + 1 < items.len()).then_some(within),
                },
                collection: collection.to_owned(),
                name: resource.name,
                kind: items.kinds[k].clone(),
                verb: items.verbs[k].clone(),
                payload: Some(resource.payload),
                commit_time: DateTime::<Utc>::UNIX_EPOCH,
            });
        }
        Ok((delivered, next))
    }
}

fn expiry_instant(unix_secs: u64) -> Instant {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    Instant::now() + Duration::from_secs(unix_secs.saturating_sub(now))
}

fn server_stopping() -> tonic::Status {
    Error::NotServing {
        message: "the server is stopping: resume from the last cursor".into(),
    }
    .into()
}

fn token_expired() -> tonic::Status {
    Error::Unauthenticated {
        message: "the bearer token expired: resume from the last cursor with a new token".into(),
    }
    .into()
}

/// The messages of a feed's stream up to its first checkpoint (whose `kind` is
/// CHECKPOINT), for a reader that wants the backlog and no more.
pub async fn until_checkpoint<T>(
    mut stream: crate::rpc::ResponseStream<T>,
    kind: impl Fn(&T) -> i32,
) -> anyhow::Result<Vec<T>> {
    use tokio_stream::StreamExt as _;
    let mut out = Vec::new();
    while let Some(m) = stream.next().await {
        let m = m?;
        if kind(&m) == ChangeKind::Checkpoint as i32 {
            return Ok(out);
        }
        out.push(m);
    }
    anyhow::bail!("the feed ended before its checkpoint")
}

/// Rows one purge statement deletes at most (short statements, few locks).
const PURGE_BATCH: i64 = 1_000;

/// Deletes the changes older than `retention`, oldest first, and moves the purge horizon
/// past them; returns how many. A change is purged only when every change before it in the
/// feed is too, so a retained cursor never has a hole behind it.
pub async fn purge_expired(pool: &PgPool, retention: Duration) -> Result<u64, Error> {
    let mut purged = 0;
    loop {
        let done = sqlx::query_scalar!(
            r#"WITH head AS (
                   SELECT pos, id, bool_and(commit_time < now() - make_interval(secs => $1))
                              OVER (ORDER BY pos, id) AS old
                   FROM (SELECT pos, id, commit_time FROM changes ORDER BY pos, id LIMIT $2) h
               ), gone AS (
                   DELETE FROM changes c USING head
                   WHERE head.old AND c.pos = head.pos AND c.id = head.id
                   RETURNING c.pos, c.id
               ), moved AS (
                   INSERT INTO changes_purged (pos, id)
                   SELECT pos, id FROM gone ORDER BY pos DESC, id DESC LIMIT 1
                   ON CONFLICT (one) DO UPDATE SET pos = excluded.pos, id = excluded.id
                   WHERE (changes_purged.pos, changes_purged.id) < (excluded.pos, excluded.id)
               )
               SELECT count(*) AS "count!" FROM gone"#,
            retention.as_secs_f64(),
            PURGE_BATCH,
        )
        .fetch_one(pool)
        .await?;
        purged += done.unsigned_abs();
        if done < PURGE_BATCH {
            return Ok(purged);
        }
    }
}

/// Purges expired changes every `interval` while the service runs (the caller aborts the
/// task at shutdown); a failed purge is logged and tried again at the next tick.
pub async fn purge_periodically(pool: PgPool, interval: Duration, retention: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match purge_expired(&pool, retention).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "expired changes purged"),
            Err(e) => tracing::warn!(error = ?e, "purging expired changes failed; retrying later"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_written_and_anything_else_is_refused() {
        let c = Cursor::after(812, 7);
        let inside = Cursor {
            within: Some(3),
            ..c
        };
        for c in [c, inside] {
            assert_eq!(Cursor::parse("cursor", &c.to_string()).unwrap(), c);
        }
        for bad in [
            "",
            "812",
            "x.7",
            "812.-1",
            "812.7.x",
            "812.7.1.1",
            "-1.7",
            "812.7.4294967295",
        ] {
            assert!(Cursor::parse("cursor", bad).is_err(), "{bad}");
        }
        assert!(Cursor::below(812) > Cursor::after(811, 5));
        assert!(Cursor::below(812) < Cursor::after(812, 0));
        // Inside a many change: after its earlier items, before the change as a whole.
        assert!(Cursor::after(812, 6) < inside && inside < c);
    }

    #[test]
    fn a_request_names_each_bad_field() {
        let known = ["projects", "ideas"];
        let err =
            Watch::parse("nope", 2, vec!["projects".into(), "x".into()], 5000, &known).unwrap_err();
        let text = err.to_string();
        for field in ["start", "collections[1]", "page_size"] {
            assert!(text.contains(field), "{text}");
        }
        assert!(Watch::parse("3.4", 0, vec![], 0, &known).is_ok());
        assert!(Watch::parse("", 2, vec!["ideas".into()], 10, &known).is_ok());
        assert!(Watch::parse("bad", 0, vec![], 0, &known).is_err());
    }
}
