//! The trust's sites (`sites/{site}`): reference data every caller may read. The codes are
//! the ones configured in `QI_SITES` (what tokens and resource names use); this service
//! holds what describes them.

mod store;

use qi_platform::changes::Kind;
use qi_platform::convert::required_text;
use qi_platform::names::OwnerAccess as _;
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, SiteCode, Violations, idempotency};
use qi_proto::projects as pb;

use crate::ProjectsApi;

/// The collection id in site names.
const COLLECTION: &str = "sites";

/// A site to register, validated.
#[derive(Debug)]
struct NewSite {
    code: SiteCode,
    display_name: String,
    request_id: String,
}

impl TryFrom<pb::CreateSiteRequest> for NewSite {
    type Error = Error;

    fn try_from(req: pb::CreateSiteRequest) -> Result<Self, Error> {
        let pb::CreateSiteRequest {
            site_id,
            site,
            request_id,
        } = req;
        let mut v = Violations::new();
        let code = v.check(
            SiteCode::parse(&site_id)
                .map(Some)
                .map_err(|e| Error::invalid("site_id", e)),
        );
        v.check(qi_platform::idempotency::validate_request_id(&request_id));
        let Some(site) = site else {
            return Err(v.missing("site"));
        };
        let pb::Site {
            name: _,
            display_name,
            create_time: _,
            update_time: _,
            etag: _,
        } = site;
        let display_name = v.check(required_text("site.display_name", &display_name, 200));
        v.finish()?;
        let code = code.ok_or_else(|| Error::invalid("site_id", "is required"))?;
        Ok(NewSite {
            code,
            display_name,
            request_id,
        })
    }
}

/// Parses a site's name, `sites/{site}`.
pub(crate) fn parse_name(field: &str, name: &str) -> Result<SiteCode, Error> {
    name.strip_prefix("sites/")
        .ok_or_else(|| Error::invalid(field, "expected `sites/{site}`"))
        .and_then(|code| SiteCode::parse(code).map_err(|e| Error::invalid(field, e)))
}

/// The sites a List of site-owned resources covers: `sites/{site}` (which the caller must
/// hold) or `sites/-` (every site the caller holds). `None` means every site (trust-wide
/// callers), for SQL of the form `$n::text[] IS NULL OR site = ANY($n)`.
pub(crate) fn list_scope(
    ctx: &qi_platform::AccessContext,
    field: &str,
    parent: &str,
) -> Result<Option<Vec<String>>, Error> {
    if parent == "sites/-" {
        return Ok(ctx.sites.sql_filter());
    }
    let code = parse_name(field, parent).map_err(|_| {
        Error::invalid(
            field,
            format!(
                "`{}` is not a parent here: use `sites/{{site}}` or `sites/-`",
                qi_platform::names::clip(parent)
            ),
        )
    })?;
    qi_platform::names::Owner::Site(code.clone()).check_read(ctx)?;
    Ok(Some(vec![code.to_string()]))
}

/// Registers a site: only trust-wide callers, only a configured code.
pub(crate) async fn create(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::CreateSiteRequest,
) -> Result<pb::CreateSiteResponse, Error> {
    let new = NewSite::try_from(req.clone())?;
    if !ctx.sites.is_trust_wide() {
        return Err(Error::denied(
            "sites are registered only by trust-wide callers",
        ));
    }
    if !api.sites.contains(&new.code) {
        return Err(Error::invalid(
            "site_id",
            format!("{} is not among the configured sites (QI_SITES)", new.code),
        ));
    }
    let tx = qi_platform::db::begin(&api.pool).await?;
    idempotency::once(tx, &ctx, &new.request_id, &req, async |tx| {
        let site = store::insert(tx, &new).await?;
        // Reference data: every caller reads it.
        crate::feed::record(tx, COLLECTION, &site.name, Kind::Created, None, &site).await?;
        Ok(pb::CreateSiteResponse { site: Some(site) })
    })
    .await
}

/// Sites are reference data: every caller with a reading role may read any site.
pub(crate) async fn get(
    api: &ProjectsApi,
    _ctx: AccessContext,
    req: pb::GetSiteRequest,
) -> Result<pb::GetSiteResponse, Error> {
    let pb::GetSiteRequest { name } = req;
    let code = parse_name("name", &name)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let site = store::read(&mut conn, &code)
        .await?
        .ok_or_else(|| Error::not_found(&name))?;
    Ok(pb::GetSiteResponse { site: Some(site) })
}

/// Lists the sites, ordered by code.
pub(crate) async fn list(
    api: &ProjectsApi,
    _ctx: AccessContext,
    req: pb::ListSitesRequest,
) -> Result<pb::ListSitesResponse, Error> {
    let pb::ListSitesRequest {
        page_size,
        page_token,
    } = req;
    let page = Page::parse(page_size, &page_token, "")?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let (sites, next_page_token) = store::list(&mut conn, &page).await?;
    Ok(pb::ListSitesResponse {
        sites,
        next_page_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_site_requests_name_their_fields() {
        let req = pb::CreateSiteRequest {
            site_id: "bas".into(),
            site: Some(pb::Site::default()),
            request_id: String::new(),
        };
        let Err(Error::InvalidArgument { violations }) = NewSite::try_from(req) else {
            panic!("expected invalid argument")
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["site_id", "site.display_name"]);
    }

    #[test]
    fn site_names_are_sites_slash_code() {
        assert_eq!(parse_name("name", "sites/SOU").unwrap().as_str(), "SOU");
        assert!(parse_name("name", "sites/SOU/wards/x").is_err());
        assert!(parse_name("name", "SOU").is_err());
    }
}
