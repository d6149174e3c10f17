//! Changes of many resources in one outbox row, for a bulk writer that changes a whole
//! collection at once (the HR sync: 1,500,000 people in one transaction).
//!
//! Such a row (kind `many`) lists each resource's name, kind, verb and site, but carries no
//! resource: the service renders it when a feed delivers the item, from the resource as it
//! is then. Writing a resource per person would double what the bulk write costs and keep a
//! copy of the whole workforce per sync for the retention period; the list costs a few
//! bytes per person. The price, written in the contract: such an item carries the resource
//! as it is at delivery, which may already hold later changes (their own changes follow in
//! the feed). An item is delivered only to callers who see the resource both where the
//! change left it and where it is now, so a later move never shows one site's record to
//! another's callers.

use std::future::Future;
use std::pin::Pin;

use sqlx::PgConnection;

use super::Kind;
use crate::error::Error;

/// The stored list of a `many` change (its `payload`): parallel lists, one entry per item.
/// An empty site is seen by every caller.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct Items {
    #[prost(string, repeated, tag = "1")]
    pub names: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub kinds: Vec<String>,
    #[prost(string, repeated, tag = "3")]
    pub verbs: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    pub sites: Vec<String>,
}

impl Items {
    pub(super) fn decode(bytes: Option<&[u8]>) -> Result<Self, Error> {
        let bytes = bytes
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("a many change without its list")))?;
        let items: Items = super::decode("many", bytes)?;
        let n = items.names.len();
        if items.kinds.len() != n || items.verbs.len() != n || items.sites.len() != n {
            return Err(Error::Internal(anyhow::anyhow!(
                "a many change whose lists differ in length"
            )));
        }
        Ok(items)
    }

    pub(super) fn len(&self) -> usize {
        self.names.len()
    }
}

/// A resource of a `many` change as it is now: its sites (`None`: every caller's) and its
/// encoded message.
#[derive(Debug)]
pub struct Rendered {
    /// Its name.
    pub name: String,
    /// The sites whose callers see it now; `None` for every caller.
    pub site: Option<String>,
    /// The resource, encoded as its service's message.
    pub payload: Vec<u8>,
}

/// The future a [`Render`] returns.
pub type Rendering<'a> = Pin<Box<dyn Future<Output = Result<Vec<Rendered>, Error>> + Send + 'a>>;

/// A service's renderer of `many` items: the resources of `collection` named in `names` as
/// they are now (those gone are left out), read on the feed's connection.
pub type Render = for<'a> fn(&'a mut PgConnection, &'a str, &'a [String]) -> Rendering<'a>;

/// The most items a `many` row lists: a feed reads and decodes the row once per page it
/// delivers from it, so a row is about a page.
const ITEMS_PER_ROW: usize = 1_000;

/// Many changes of one collection, recorded as few rows. Each resource is rendered, as it
/// is then, when a feed delivers its change (see the module docs for the price).
#[derive(Debug, Default)]
pub struct Many {
    items: Items,
}

impl Many {
    /// An empty list.
    pub fn new() -> Self {
        Many::default()
    }

    /// Adds the change of `name`, seen by `site`'s callers (`None`: every caller's). The
    /// service's [`Render`] gives its resource at delivery.
    pub fn push(&mut self, name: String, kind: Kind, site: Option<String>) {
        let (kind, verb) = kind.column();
        self.items.names.push(name);
        self.items.kinds.push(kind.to_owned());
        self.items.verbs.push(verb.to_owned());
        self.items.sites.push(site.unwrap_or_default());
    }

    /// How many changes it holds.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.items.names.is_empty()
    }

    /// Records the list, 1,000 items to a row, in the write's transaction. Its position is
    /// its transaction's id raised to the latest change recorded by name of any of its
    /// resources, as [`super::record`] gives. A later change of one of them recorded by name
    /// cannot see this list, and may come before it in the feed; the item, rendered at
    /// delivery, then shows that change too, so a consumer still ends where the service is.
    pub async fn record(self, conn: &mut PgConnection, collection: &str) -> Result<(), Error> {
        self.record_as(conn, collection, true).await
    }

    /// [`Many::record`] for a writer that holds a lock every other writer of these
    /// resources takes first (see [`super::Batch::record_under_lock`]), or that lists only
    /// resources its own transaction created (none has an earlier change): its position is
    /// its transaction's id, after every earlier change of these resources, with no look-up.
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
        let items = self.items;
        let (mut payloads, mut sites) = (Vec::new(), Vec::new());
        for start in (0..items.len()).step_by(ITEMS_PER_ROW) {
            let end = (start + ITEMS_PER_ROW).min(items.len());
            let row = Items {
                names: items.names[start..end].to_vec(),
                kinds: items.kinds[start..end].to_vec(),
                verbs: items.verbs[start..end].to_vec(),
                sites: items.sites[start..end].to_vec(),
            };
            // Whose callers fetch the row: those of any item's site, or everyone's (NULL).
            sites.push(if row.sites.iter().any(String::is_empty) {
                None
            } else {
                let mut sites = row.sites.clone();
                sites.sort_unstable();
                sites.dedup();
                Some(sites.join(","))
            });
            payloads.push(prost::Message::encode_to_vec(&row));
        }
        if payloads.is_empty() {
            return Ok(());
        }
        let names: &[String] = if raise { &items.names } else { &[] };
        // Each name's latest change by the index on (name, pos): `max(pos) … name = ANY(…)`
        // is planned as a backward scan of the whole outbox, testing every row's name.
        sqlx::query!(
            "INSERT INTO changes (pos, collection, name, kind, sites, payload)
             SELECT GREATEST(pg_current_xact_id(),
                             (SELECT max((SELECT max(c.pos) FROM changes c WHERE c.name = n))
                              FROM UNNEST($4::text[]) n)),
                    $1, '', 'many', string_to_array(r.sites, ','), r.payload
             FROM UNNEST($2::text[], $3::bytea[]) WITH ORDINALITY AS r(sites, payload, n)
             ORDER BY r.n",
            collection,
            &sites as &[Option<String>],
            &payloads,
            names,
        )
        .execute(conn)
        .await?;
        Ok(())
    }
}
