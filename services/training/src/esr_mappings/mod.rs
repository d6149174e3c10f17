//! The ESR mapping (`sites/{site}/esrMappings/{kind}.{code}`): an ESR organisation or
//! location code mapped to a site and optionally one of its wards, which the HR sync places
//! people by (its join is in `crate::sync`'s SQL). Rooted at the site the code maps to, so
//! the gateway applies its site rules from the name; a code maps to one site, so the service
//! refuses a second mapping of it anywhere (`ALREADY_EXISTS`, naming only the id).
//!
//! Read by viewers up; written by HR's sync account and the improvement team, each under
//! the sites it holds. The batch upsert is what `qi hr map import` sends.

pub(crate) mod store;

use std::collections::HashMap;

use qi_platform::changes::{Batch, Kind as ChangeKind};
use qi_platform::convert::{check_etag, optional_text};
use qi_platform::names::OwnerAccess as _;
use qi_platform::names::{self, ListParent, ListParentScope as _, Owner};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, SiteCode, Violations, idempotency};
use qi_proto::training as pb;

use crate::TrainingApi;

/// The collection id in mapping names.
pub(crate) const COLLECTION: &str = "esrMappings";

/// The most characters of a code: it is part of the mapping's name.
const MAX_CODE: usize = 60;

/// Which ESR field a code comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// The assignment's organisation (cost centre).
    Organisation,
    /// The assignment's location.
    Location,
}

impl Kind {
    /// As stored, and as the id spells it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Organisation => "organisation",
            Kind::Location => "location",
        }
    }

    /// Reads a stored or spelled kind.
    pub(crate) fn parse(s: &str) -> Option<Kind> {
        match s {
            "organisation" => Some(Kind::Organisation),
            "location" => Some(Kind::Location),
            _ => None,
        }
    }

    /// The contract's enum.
    pub(crate) fn to_pb(self) -> pb::EsrCodeKind {
        match self {
            Kind::Organisation => pb::EsrCodeKind::Organisation,
            Kind::Location => pb::EsrCodeKind::Location,
        }
    }

    /// A List's kind filter: `None` for every kind.
    fn filter(field: &str, value: i32) -> Result<Option<Kind>, Error> {
        match pb::EsrCodeKind::try_from(value) {
            Ok(pb::EsrCodeKind::Unspecified) => Ok(None),
            Ok(pb::EsrCodeKind::Organisation) => Ok(Some(Kind::Organisation)),
            Ok(pb::EsrCodeKind::Location) => Ok(Some(Kind::Location)),
            Err(_) => Err(Error::invalid(field, "is not a kind of ESR code")),
        }
    }
}

/// A mapping's key, and the id that ends its name: `{kind}.{code}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct MappingId {
    pub(crate) kind: Kind,
    pub(crate) code: String,
}

impl MappingId {
    /// Reads an id, `organisation.{code}` or `location.{code}`.
    pub(crate) fn parse(field: &str, id: &str) -> Result<MappingId, Error> {
        let bad = || {
            Error::invalid(
                field,
                format!(
                    "`{}` is not a mapping id: use `organisation.{{code}}` or `location.{{code}}`, \
                     the code 1 to {MAX_CODE} letters, digits, `-`, `_` or `.`",
                    names::clip(id)
                ),
            )
        };
        let (kind, code) = id.split_once('.').ok_or_else(bad)?;
        let kind = Kind::parse(kind).ok_or_else(bad)?;
        if !code_ok(code) {
            return Err(bad());
        }
        Ok(MappingId {
            kind,
            code: code.to_owned(),
        })
    }

    /// The id that ends the mapping's name.
    pub(crate) fn id(&self) -> String {
        format!("{}.{}", self.kind.as_str(), self.code)
    }
}

/// Whether `code` can be a mapped ESR code: 1 to [`MAX_CODE`] letters, digits, `-`, `_`
/// or `.` (it is part of a resource name).
pub(crate) fn code_ok(code: &str) -> bool {
    (1..=MAX_CODE).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The name of the mapping of `id` at `site`.
pub(crate) fn name_of(site: &str, id: &MappingId) -> String {
    format!("sites/{site}/{COLLECTION}/{}", id.id())
}

/// Parses a mapping's name into its site and key.
pub(crate) fn parse_name(field: &str, name: &str) -> Result<(SiteCode, MappingId), Error> {
    let (owner, mut ids) = names::parse_nested(field, name, &[COLLECTION])?;
    let id = ids.pop().unwrap_or_default();
    match owner {
        Owner::Site(site) => Ok((site, MappingId::parse(field, &id)?)),
        Owner::Trust => Err(Error::invalid(
            field,
            "an ESR code maps to a site: `sites/{site}/esrMappings/{kind}.{code}`",
        )),
    }
}

/// Checks a mapping's ward: empty, or a ward name of the mapping's own site (its shape
/// only: the wards are the projects service's).
fn ward(field: &str, site: &SiteCode, value: &str) -> Result<String, Error> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(String::new());
    }
    match names::parse_name(field, value, "wards")? {
        (Owner::Site(s), _) if s == *site => Ok(value.to_owned()),
        _ => Err(Error::invalid(
            field,
            format!("must be a ward of {site}: `sites/{site}/wards/{{ward}}`"),
        )),
    }
}

/// A mapping to store, validated.
#[derive(Debug, Clone)]
pub(crate) struct NewMapping {
    pub(crate) site: SiteCode,
    pub(crate) id: MappingId,
    pub(crate) ward: String,
    pub(crate) display_name: String,
}

impl NewMapping {
    /// Validates the writable fields of `m` for the mapping `id` at `site`; fields are
    /// named under `prefix` (`esr_mapping`, `esr_mappings[3]`).
    fn from_pb(
        v: &mut Violations,
        prefix: &str,
        site: &SiteCode,
        id: MappingId,
        m: pb::EsrMapping,
    ) -> NewMapping {
        // Output-only fields are ignored, as AIP-203 asks; the name is read by the caller.
        let pb::EsrMapping {
            name: _,
            kind: _,
            code: _,
            site: _,
            ward: w,
            display_name,
            create_time: _,
            update_time: _,
            etag: _,
        } = m;
        NewMapping {
            site: site.clone(),
            id,
            ward: v.check(ward(&format!("{prefix}.ward"), site, &w)),
            display_name: v.check(optional_text(
                &format!("{prefix}.display_name"),
                &display_name,
                200,
            )),
        }
    }
}

/// A create, validated.
#[derive(Debug)]
struct NewCreate {
    mapping: NewMapping,
    request_id: String,
}

impl TryFrom<pb::CreateEsrMappingRequest> for NewCreate {
    type Error = Error;

    fn try_from(req: pb::CreateEsrMappingRequest) -> Result<Self, Error> {
        let pb::CreateEsrMappingRequest {
            parent,
            esr_mapping_id,
            esr_mapping,
            request_id,
        } = req;
        let mut v = Violations::new();
        let site = v.check(site_parent("parent", &parent).map(Some));
        let id = v.check(MappingId::parse("esr_mapping_id", &esr_mapping_id).map(Some));
        v.check(idempotency::validate_request_id(&request_id));
        let Some(m) = esr_mapping else {
            return Err(v.missing("esr_mapping"));
        };
        let (Some(site), Some(id)) = (site, id) else {
            // Both were recorded as violations; the ward cannot be checked without the site.
            v.finish()?;
            return Err(Error::invalid("parent", "is required"));
        };
        let mapping = NewMapping::from_pb(&mut v, "esr_mapping", &site, id, m);
        v.finish()?;
        Ok(NewCreate {
            mapping,
            request_id,
        })
    }
}

/// A parent that must be one site: `sites/{site}`.
fn site_parent(field: &str, parent: &str) -> Result<SiteCode, Error> {
    match names::parse_parent(field, parent)? {
        Owner::Site(s) => Ok(s),
        Owner::Trust => Err(Error::invalid(
            field,
            "an ESR code maps to a site: use `sites/{site}`",
        )),
    }
}

/// CreateEsrMapping: one code of a site the caller holds, once across the trust.
pub(crate) async fn create(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::CreateEsrMappingRequest,
) -> Result<pb::CreateEsrMappingResponse, Error> {
    let NewCreate {
        mapping,
        request_id,
    } = NewCreate::try_from(req.clone())?;
    Owner::Site(mapping.site.clone()).check_create(&ctx, &api.sites)?;
    let tx = qi_platform::db::begin(&api.pool).await?;
    idempotency::once(tx, &ctx, &request_id, &req, async |tx| {
        let stored = store::insert(tx, &mapping)
            .await?
            .ok_or_else(|| Error::AlreadyExists {
                // Where the code is mapped is not said: it may be a site the caller lacks.
                name: format!("{} (the code is mapped already)", mapping.id.id()),
            })?;
        // Read by its site's callers.
        let sites = Some(vec![mapping.site.to_string()]);
        let kind = ChangeKind::Created;
        crate::feed::record(tx, COLLECTION, &stored.name, kind, sites, &stored).await?;
        Ok(pb::CreateEsrMappingResponse {
            esr_mapping: Some(stored),
        })
    })
    .await
}

/// GetEsrMapping: a mapping of a site the caller holds.
pub(crate) async fn get(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::GetEsrMappingRequest,
) -> Result<pb::GetEsrMappingResponse, Error> {
    let pb::GetEsrMappingRequest { name } = req;
    let (site, id) = parse_name("name", &name)?;
    Owner::Site(site.clone()).check_read(&ctx)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let found = store::get(&mut conn, &site, &id).await?;
    Ok(pb::GetEsrMappingResponse {
        esr_mapping: Some(found.ok_or_else(|| Error::not_found(&name))?),
    })
}

/// ListEsrMappings: one site's mappings, or those of every site the caller holds.
pub(crate) async fn list(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::ListEsrMappingsRequest,
) -> Result<pb::ListEsrMappingsResponse, Error> {
    let pb::ListEsrMappingsRequest {
        parent,
        page_size,
        page_token,
        kind,
    } = req;
    let list_parent = ListParent::parse("parent", &parent)?;
    let kind = Kind::filter("kind", kind)?;
    let page = Page::parse(page_size, &page_token, &format!("{parent}|{kind:?}"))?;
    let scope = list_parent.scope(&ctx)?;
    if scope.trust {
        return Err(Error::invalid(
            "parent",
            "ESR codes map to sites: use `sites/{site}` or `sites/-`",
        ));
    }
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let (esr_mappings, next_page_token) = store::list(&mut conn, scope.sites, kind, &page).await?;
    Ok(pb::ListEsrMappingsResponse {
        esr_mappings,
        next_page_token,
    })
}

/// DeleteEsrMapping: the sync stops placing people by the code.
pub(crate) async fn delete(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::DeleteEsrMappingRequest,
) -> Result<pb::DeleteEsrMappingResponse, Error> {
    let pb::DeleteEsrMappingRequest { name, etag } = req;
    let (site, id) = parse_name("name", &name)?;
    Owner::Site(site.clone()).check_write(&ctx)?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let revision = store::lock(&mut tx, &site, &id)
        .await?
        .ok_or_else(|| Error::not_found(&name))?;
    check_etag(&etag, revision, "the mapping")?;
    store::delete(&mut tx, &site, &id).await?;
    let sites = Some(vec![site.to_string()]);
    crate::feed::record_deleted(&mut tx, COLLECTION, &name_of(site.as_str(), &id), sites).await?;
    tx.commit().await?;
    Ok(pb::DeleteEsrMappingResponse {})
}

/// The most items of one batch, as the contract bounds them.
const MAX_BATCH: usize = 1_000;

/// BatchUpsertEsrMappings: each item checked alone; the valid ones stored in one
/// statement, the refused ones answered by position.
pub(crate) async fn batch_upsert(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::BatchUpsertEsrMappingsRequest,
) -> Result<pb::BatchUpsertEsrMappingsResponse, Error> {
    let pb::BatchUpsertEsrMappingsRequest {
        parent,
        esr_mappings,
        request_id,
    } = req.clone();
    let mut v = Violations::new();
    let site = v.check(site_parent("parent", &parent).map(Some));
    v.check(idempotency::validate_request_id(&request_id));
    if esr_mappings.is_empty() {
        v.add("esr_mappings", "is required: send 1 to 1,000 mappings");
    }
    v.finish()?;
    let site = site.ok_or_else(|| Error::invalid("parent", "is required"))?;
    Owner::Site(site.clone()).check_create(&ctx, &api.sites)?;
    debug_assert!(esr_mappings.len() <= MAX_BATCH, "bounded by the contract");
    let (valid, mut rejected) = batch_items(&site, esr_mappings);
    let tx = qi_platform::db::begin(&api.pool).await?;
    idempotency::once(tx, &ctx, &request_id, &req, async |tx| {
        let mappings: Vec<&NewMapping> = valid.iter().map(|(_, m)| m).collect();
        let movable = ctx.sites.sql_filter();
        // Where each code is mapped before the upsert, its row locked: a code moved here
        // leaves its old site's view under its old name.
        let ids: Vec<&MappingId> = mappings.iter().map(|m| &m.id).collect();
        let before = store::lock_sites(tx, &ids).await?;
        let written = store::upsert(tx, &site, &mappings, movable.as_deref()).await?;
        record_upserted(tx, &written, &before).await?;
        // What was not written is either stored as sent, or mapped at a site the caller
        // may not take it from.
        let unwritten: Vec<&MappingId> = valid
            .iter()
            .map(|(_, m)| &m.id)
            .filter(|id| !written.contains_key(*id))
            .collect();
        let now_at = store::sites_of(tx, &unwritten).await?;
        let mut resp = pb::BatchUpsertEsrMappingsResponse::default();
        for (index, m) in &valid {
            match written.get(&m.id).map(|w| w.created) {
                Some(true) => resp.created += 1,
                Some(false) => resp.updated += 1,
                None if now_at.get(&m.id).map(String::as_str) == Some(site.as_str()) => {
                    resp.unchanged += 1
                }
                None => rejected.push(pb::RejectedEsrMapping {
                    index: *index,
                    field: format!("esr_mappings[{index}].name"),
                    reason: format!(
                        "{} is mapped at another site, which this caller does not hold: \
                         a trust-wide caller (or one holding both sites) can move it",
                        m.id.id()
                    ),
                }),
            }
        }
        rejected.sort_by_key(|r| r.index);
        resp.rejected = rejected;
        Ok(resp)
    })
    .await
}

/// Records what an upsert wrote, in one statement: each mapping created or updated at its
/// site, and one moved here from another site (`before`: where each code was) deleted
/// there under its old name, then created here under its new one.
async fn record_upserted(
    conn: &mut sqlx::PgConnection,
    written: &HashMap<MappingId, store::Written>,
    before: &HashMap<MappingId, String>,
) -> Result<(), Error> {
    let mut batch = Batch::new();
    // In code order, so the rows read in a stable order.
    let mut ids: Vec<&MappingId> = written.keys().collect();
    ids.sort_by(|a, b| (a.kind, &a.code).cmp(&(b.kind, &b.code)));
    for id in ids {
        let w = &written[id];
        let site = w
            .mapping
            .site
            .strip_prefix("sites/")
            .unwrap_or(&w.mapping.site);
        let kind = match (w.created, before.get(id)) {
            (true, _) => ChangeKind::Created,
            (false, Some(was)) if was == site => ChangeKind::Updated,
            (false, Some(was)) => {
                let old = name_of(was, id);
                batch.push(
                    old,
                    ChangeKind::Deleted,
                    Some(was.clone()),
                    None::<&pb::EsrMapping>,
                );
                ChangeKind::Created
            }
            // Mapped by another call between the lock and the upsert: where it was is not
            // known, so neither is whose view it left.
            (false, None) => {
                return Err(Error::Aborted {
                    message: format!(
                        "esr_mappings: {} was mapped by another call at the same time; send the batch again",
                        id.id()
                    ),
                });
            }
        };
        let name = w.mapping.name.clone();
        batch.push(name, kind, Some(site.to_owned()), Some(&w.mapping));
    }
    batch.record(conn, COLLECTION).await
}

/// A batch's items checked one by one: the valid ones with their positions, and the
/// refusals (a bad field, a name not under the parent, a code sent twice).
fn batch_items(
    site: &SiteCode,
    items: Vec<pb::EsrMapping>,
) -> (Vec<(i32, NewMapping)>, Vec<pb::RejectedEsrMapping>) {
    let mut valid: Vec<(i32, NewMapping)> = Vec::new();
    let mut rejected = Vec::new();
    let mut seen: HashMap<MappingId, i32> = HashMap::new();
    for (i, m) in items.into_iter().enumerate() {
        let index = i32::try_from(i).unwrap_or(i32::MAX);
        let prefix = format!("esr_mappings[{index}]");
        let name_field = format!("{prefix}.name");
        let checked = parse_name(&name_field, &m.name).and_then(|(at, id)| {
            if at != *site {
                return Err(Error::invalid(
                    &name_field,
                    format!("must be under the request's parent, sites/{site}"),
                ));
            }
            if let Some(first) = seen.get(&id) {
                return Err(Error::invalid(
                    &name_field,
                    format!("{} is also item {first}", id.id()),
                ));
            }
            let mut v = Violations::new();
            let new = NewMapping::from_pb(&mut v, &prefix, site, id, m);
            v.finish().map(|()| new)
        });
        match checked {
            Ok(new) => {
                seen.insert(new.id.clone(), index);
                valid.push((index, new));
            }
            Err(Error::InvalidArgument { violations }) => {
                rejected.extend(violations.into_iter().map(|v| pb::RejectedEsrMapping {
                    index,
                    field: v.field,
                    reason: v.description,
                }));
            }
            Err(other) => rejected.push(pb::RejectedEsrMapping {
                index,
                field: name_field,
                reason: other.to_string(),
            }),
        }
    }
    (valid, rejected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bas() -> SiteCode {
        SiteCode::parse("BAS").unwrap()
    }

    #[test]
    fn an_id_is_a_kind_and_a_code() {
        let id = MappingId::parse("id", "location.BAS-MAIN").unwrap();
        assert_eq!((id.kind, id.code.as_str()), (Kind::Location, "BAS-MAIN"));
        assert_eq!(id.id(), "location.BAS-MAIN");
        let id = MappingId::parse("id", "organisation.245.C1234_a").unwrap();
        assert_eq!(id.kind, Kind::Organisation);
        assert_eq!(id.code, "245.C1234_a");
        for bad in [
            "",
            "location",
            "location.",
            "site.BAS",
            "Location.X",
            "location.A B",
            "location.a/b",
            &format!("location.{}", "X".repeat(61)),
        ] {
            let e = MappingId::parse("esr_mapping_id", bad).unwrap_err();
            assert!(
                matches!(&e, Error::InvalidArgument { violations } if violations[0].field == "esr_mapping_id"),
                "{bad}: {e:?}"
            );
        }
    }

    #[test]
    fn a_name_is_rooted_at_the_site_the_code_maps_to() {
        let (site, id) = parse_name("name", "sites/BAS/esrMappings/location.L1").unwrap();
        assert_eq!((site, id.id()), (bas(), "location.L1".to_owned()));
        assert_eq!(name_of("BAS", &id), "sites/BAS/esrMappings/location.L1");
        for bad in [
            "trust/esrMappings/location.L1",
            "sites/BAS/esrMappings/L1",
            "sites/BAS/wards/location.L1",
            "sites/BAS/esrMappings",
        ] {
            assert!(parse_name("name", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_ward_must_be_shaped_as_a_ward_of_the_mappings_site() {
        assert_eq!(ward("w", &bas(), "").unwrap(), "");
        assert_eq!(
            ward("w", &bas(), " sites/BAS/wards/cedar ").unwrap(),
            "sites/BAS/wards/cedar"
        );
        for bad in [
            "sites/SOU/wards/cedar",
            "cedar",
            "sites/BAS/wards/Cedar Ward",
            "trust/wards/cedar",
            "sites/BAS/wards/",
        ] {
            let e = ward("esr_mapping.ward", &bas(), bad).unwrap_err();
            assert!(
                matches!(&e, Error::InvalidArgument { violations } if violations[0].field == "esr_mapping.ward"),
                "{bad}: {e:?}"
            );
        }
    }

    fn create(parent: &str, id: &str, ward: &str) -> pb::CreateEsrMappingRequest {
        pb::CreateEsrMappingRequest {
            parent: parent.into(),
            esr_mapping_id: id.into(),
            esr_mapping: Some(pb::EsrMapping {
                ward: ward.into(),
                ..Default::default()
            }),
            request_id: String::new(),
        }
    }

    #[test]
    fn a_create_names_every_bad_field() {
        let ok = NewCreate::try_from(create(
            "sites/BAS",
            "organisation.CC-ASH",
            "sites/BAS/wards/ash",
        ))
        .unwrap();
        assert_eq!(ok.mapping.ward, "sites/BAS/wards/ash");
        let fields = |r| match NewCreate::try_from(r) {
            Err(Error::InvalidArgument { violations }) => {
                violations.into_iter().map(|v| v.field).collect::<Vec<_>>()
            }
            other => panic!("expected invalid argument, got {other:?}"),
        };
        assert_eq!(
            fields(create(
                "sites/BAS",
                "organisation.CC",
                "sites/SOU/wards/ash"
            )),
            ["esr_mapping.ward"]
        );
        assert_eq!(
            fields(create("trust", "org.CC", "")),
            ["parent", "esr_mapping_id"]
        );
        let mut missing = create("sites/BAS", "location.L", "");
        missing.esr_mapping = None;
        assert_eq!(fields(missing), ["esr_mapping"]);
    }

    fn item(name: &str, ward: &str) -> pb::EsrMapping {
        pb::EsrMapping {
            name: name.into(),
            ward: ward.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_batch_refuses_each_bad_item_alone_by_position() {
        let (valid, rejected) = batch_items(
            &bas(),
            vec![
                item("sites/BAS/esrMappings/location.L1", ""),
                item("sites/SOU/esrMappings/location.L2", ""),
                item(
                    "sites/BAS/esrMappings/organisation.O1",
                    "sites/SOU/wards/ash",
                ),
                item("sites/BAS/esrMappings/location.L1", ""),
                item(
                    "sites/BAS/esrMappings/organisation.O1",
                    "sites/BAS/wards/ash",
                ),
            ],
        );
        let indexes: Vec<i32> = valid.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, [0, 4]);
        let refused: Vec<(i32, &str)> = rejected
            .iter()
            .map(|r| (r.index, r.field.as_str()))
            .collect();
        assert_eq!(
            refused,
            [
                (1, "esr_mappings[1].name"),
                (2, "esr_mappings[2].ward"),
                (3, "esr_mappings[3].name"),
            ]
        );
    }
}
