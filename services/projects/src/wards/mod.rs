//! Wards (`sites/{site}/wards/{ward}`): a site's reference data, named by ideas, projects
//! and the ward programme. Readable within the caller's sites; added by the improvement team.

pub(crate) mod store;

use qi_platform::changes::Kind;
use qi_platform::convert::{optional_text, required_text};
use qi_platform::names::OwnerAccess as _;
use qi_platform::names::{self, Owner};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, SiteCode, Violations, idempotency};
use qi_proto::projects as pb;

use crate::ProjectsApi;

/// The collection id in ward names.
pub(crate) const COLLECTION: &str = "wards";

/// A ward to create, validated.
#[derive(Debug)]
struct NewWard {
    site: SiteCode,
    id: String,
    display_name: String,
    specialty: String,
    request_id: String,
}

impl TryFrom<pb::CreateWardRequest> for NewWard {
    type Error = Error;

    fn try_from(req: pb::CreateWardRequest) -> Result<Self, Error> {
        let pb::CreateWardRequest {
            parent,
            ward_id,
            ward,
            request_id,
        } = req;
        let mut v = Violations::new();
        let site = v.check(crate::sites::parse_name("parent", &parent).map(Some));
        v.check(names::validate_id("ward_id", &ward_id));
        v.check(idempotency::validate_request_id(&request_id));
        let Some(ward) = ward else {
            return Err(v.missing("ward"));
        };
        let pb::Ward {
            name: _,
            display_name,
            specialty,
            create_time: _,
            update_time: _,
            etag: _,
        } = ward;
        let display_name = v.check(required_text("ward.display_name", &display_name, 200));
        let specialty = v.check(optional_text("ward.specialty", &specialty, 200));
        v.finish()?;
        let site = site.ok_or_else(|| Error::invalid("parent", "is required"))?;
        Ok(NewWard {
            site,
            id: ward_id,
            display_name,
            specialty,
            request_id,
        })
    }
}

/// Parses a ward name into its site and code.
pub(crate) fn parse_name(field: &str, name: &str) -> Result<(SiteCode, String), Error> {
    match names::parse_name(field, name, COLLECTION)? {
        (Owner::Site(site), id) => Ok((site, id)),
        (Owner::Trust, _) => Err(Error::invalid(field, "wards belong to a site")),
    }
}

/// Adds a ward to a site the caller holds.
pub(crate) async fn create(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::CreateWardRequest,
) -> Result<pb::CreateWardResponse, Error> {
    let new = NewWard::try_from(req.clone())?;
    let owner = Owner::Site(new.site.clone());
    owner.check_create(&ctx, &api.sites)?;
    let tx = qi_platform::db::begin(&api.pool).await?;
    idempotency::once(tx, &ctx, &new.request_id, &req, async |tx| {
        let ward = store::insert(tx, &new)
            .await?
            .ok_or_else(|| Error::AlreadyExists {
                name: owner.child(COLLECTION, &new.id),
            })?;
        let sites = Some(vec![new.site.to_string()]);
        crate::feed::record(tx, COLLECTION, &ward.name, Kind::Created, sites, &ward).await?;
        Ok(pb::CreateWardResponse { ward: Some(ward) })
    })
    .await
}

/// Reads a ward of a site the caller holds.
pub(crate) async fn get(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::GetWardRequest,
) -> Result<pb::GetWardResponse, Error> {
    let pb::GetWardRequest { name } = req;
    let (site, id) = parse_name("name", &name)?;
    Owner::Site(site.clone()).check_read(&ctx)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let ward = store::read(&mut conn, &site, &id).await?;
    Ok(pb::GetWardResponse {
        ward: Some(ward.ok_or_else(|| Error::not_found(&name))?),
    })
}

/// Lists the wards of one site or of every site the caller holds.
pub(crate) async fn list(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::ListWardsRequest,
) -> Result<pb::ListWardsResponse, Error> {
    let pb::ListWardsRequest {
        parent,
        page_size,
        page_token,
    } = req;
    let sites = crate::sites::list_scope(&ctx, "parent", &parent)?;
    let page = Page::parse(page_size, &page_token, &parent)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let (wards, next_page_token) = store::list(&mut conn, sites, &page).await?;
    Ok(pb::ListWardsResponse {
        wards,
        next_page_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_ward_requests_name_their_fields() {
        let req = pb::CreateWardRequest {
            parent: "sites/bas".into(),
            ward_id: "Cedar Ward".into(),
            ward: Some(pb::Ward::default()),
            request_id: String::new(),
        };
        let Err(Error::InvalidArgument { violations }) = NewWard::try_from(req) else {
            panic!("expected invalid argument")
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["parent", "ward_id", "ward.display_name"]);
    }
}
