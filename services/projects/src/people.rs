//! What the projects service learns from the training service's feed: where each person
//! works now, and whether they have left (`projects.staff_place`), followed with the
//! platform's [`Follower`]. A project whose lead left the trust, or works at none of the
//! project's sites, is one ListProjects' `lead_status` finds and the portfolio summary
//! counts. The service never calls training to serve a request: it reads what it learnt.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use qi_platform::access::AccessSigner;
use qi_platform::follow::{self, Consumer, Feed, Follower};
use qi_proto::common::ChangeKind;
use qi_proto::training as tpb;
use qi_proto::training::training_service_client::TrainingServiceClient;
use sqlx::{PgConnection, PgPool};

/// The feed followed, as `projects.feed` keys it.
const TRAINING: &str = "training";
/// The path of the training service's feed.
const WATCH: &str = "/qi.training.v1.TrainingService/WatchChanges";
/// The session lock whose holder follows (the same in every replica).
const LOCK: i64 = 0x7169_5f70_706c_6163; // "qi_pplac"

/// Keeps `projects.staff_place` from the training service's staff.
pub struct Places {
    pool: PgPool,
    signer: AccessSigner,
    name: String,
}

impl std::fmt::Debug for Places {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Places")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The follower of the training service at `training_url` (its own, not the gateway's),
/// over the projects schema's `pool`, signing with the access key `key` as
/// `internal:{name}`.
pub fn follower(pool: PgPool, key: &str, name: &str, training_url: &str) -> Follower<Places> {
    // A context opens a stream, which then runs as long as it is read.
    let signer = AccessSigner::new(key, Duration::from_secs(60));
    let feed = Feed {
        key: TRAINING,
        url: training_url.to_owned(),
        path: WATCH,
        collections: vec!["staff".into()],
    };
    let places = Places {
        pool: pool.clone(),
        signer: signer.clone(),
        name: name.to_owned(),
    };
    Follower::new(pool, signer, name, LOCK, vec![feed], places)
}

/// A person as `staff_place` keeps them: (name, site code, active).
fn place(s: &tpb::Staff) -> (String, String, bool) {
    let site = s.site.strip_prefix("sites/").unwrap_or(&s.site).to_owned();
    (s.name.clone(), site, s.active)
}

/// Writes people's places, in the caller's transaction.
async fn write(conn: &mut PgConnection, people: &[(String, String, bool)]) -> anyhow::Result<()> {
    if people.is_empty() {
        return Ok(());
    }
    let name: Vec<&str> = people.iter().map(|p| p.0.as_str()).collect();
    let site: Vec<&str> = people.iter().map(|p| p.1.as_str()).collect();
    let active: Vec<bool> = people.iter().map(|p| p.2).collect();
    sqlx::query!(
        "INSERT INTO staff_place (staff, site, active)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::bool[])
         ON CONFLICT (staff) DO UPDATE SET site = excluded.site, active = excluded.active",
        &name as &[&str],
        &site as &[&str],
        &active,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Consumer for Places {
    /// With no cursor yet, everyone as the training service lists them now, from the feed's
    /// current cursor on.
    async fn bootstrap(&self, feeds: &[Feed]) -> anyhow::Result<()> {
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        let followed = follow::followed(&mut tx, feeds).await?;
        tx.commit().await?;
        let Some(feed) = feeds.first().filter(|_| followed < feeds.len()) else {
            return Ok(());
        };
        let cursor = follow::current_cursor(&self.signer, &self.name, feed).await?;
        let channel = tonic::transport::Endpoint::from_shared(feed.url.clone())?
            .connect()
            .await?;
        let mut client = TrainingServiceClient::new(channel)
            .max_decoding_message_size(qi_platform::server::MAX_MESSAGE_BYTES);
        const PATH: &str = "/qi.training.v1.TrainingService/ListStaff";
        let mut people = Vec::new();
        let mut req = tpb::ListStaffRequest {
            parent: "sites/-".into(),
            show_inactive: true,
            page_size: 500,
            ..Default::default()
        };
        loop {
            let page = client
                .list_staff(follow::signed(&self.signer, &self.name, req.clone(), PATH)?)
                .await?
                .into_inner();
            people.extend(page.staff.iter().map(place));
            if page.next_page_token.is_empty() {
                break;
            }
            req.page_token = page.next_page_token;
        }
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        sqlx::query!("DELETE FROM staff_place")
            .execute(&mut *tx)
            .await?;
        for chunk in people.chunks(5_000) {
            write(&mut tx, chunk).await?;
        }
        follow::store_cursor(&mut tx, feed.key, &cursor).await?;
        tx.commit().await?;
        tracing::info!(people = people.len(), "learnt where the trust's staff work");
        Ok(())
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        _feed: &'static str,
        batch: &[Bytes],
    ) -> anyhow::Result<()> {
        use tpb::watch_changes_response::Resource;
        // Each person as the batch leaves them (in feed order, the last word wins): placed,
        // or gone.
        let mut latest: HashMap<String, Option<(String, String, bool)>> = HashMap::new();
        for bytes in batch {
            let change = tpb::WatchChangesResponse::decode(bytes.clone())?;
            match (ChangeKind::try_from(change.kind), change.resource) {
                (Ok(ChangeKind::Deleted | ChangeKind::Hidden), _) => {
                    latest.insert(change.resource_name, None);
                }
                (_, Some(Resource::Staff(s))) => {
                    latest.insert(s.name.clone(), Some(place(&s)));
                }
                _ => {}
            }
        }
        let gone: Vec<&String> = latest
            .iter()
            .filter(|(_, p)| p.is_none())
            .map(|(n, _)| n)
            .collect();
        sqlx::query!(
            "DELETE FROM staff_place WHERE staff = ANY($1)",
            &gone as &[&String]
        )
        .execute(&mut *tx)
        .await?;
        let placed: Vec<(String, String, bool)> = latest.into_values().flatten().collect();
        write(tx, &placed).await
    }
}
