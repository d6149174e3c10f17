//! Staff as ESR describes them (`sites/{site}/staff/{employee_number}`), read by callers
//! within their sites; written only by the HR sync (see `crate::sync`). The handlers and
//! staff names.

mod store;

use qi_platform::names::ListParentScope as _;
use qi_platform::names::OwnerAccess as _;
use qi_platform::names::{ListParent, Owner};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, SiteCode};
use qi_proto::training as pb;
use sqlx::PgConnection;

use crate::TrainingApi;
use store::StaffRow;

/// The collection id in staff names.
pub(crate) const COLLECTION: &str = "staff";

/// A staff name: at one site, or `sites/-/staff/{n}` (any site the caller holds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StaffName {
    At(SiteCode, String),
    AnySite(String),
}

impl StaffName {
    pub(crate) fn employee_number(&self) -> &str {
        match self {
            StaffName::At(_, n) | StaffName::AnySite(n) => n,
        }
    }
}

/// Parses `sites/{site}/staff/{employee_number}` or `sites/-/staff/{employee_number}`.
pub(crate) fn parse_name(field: &str, value: &str) -> Result<StaffName, Error> {
    let bad = || {
        Error::invalid(
            field,
            format!(
                "`{}` is not a staff name: `sites/{{site}}/staff/{{employee_number}}`",
                qi_platform::names::clip(value)
            ),
        )
    };
    let rest = value.strip_prefix("sites/").ok_or_else(bad)?;
    let (site, rest) = rest.split_once('/').ok_or_else(bad)?;
    let number = rest.strip_prefix("staff/").ok_or_else(bad)?;
    let number = employee_number(field, number)?;
    if site == "-" {
        return Ok(StaffName::AnySite(number));
    }
    let site = SiteCode::parse(site).map_err(|e| Error::invalid(field, e))?;
    Ok(StaffName::At(site, number))
}

/// Checks an ESR employee number by the one rule the gateway also reads tokens with
/// ([`qi_platform::EmployeeNumber`]: 5 to 12 digits).
pub(crate) fn employee_number(field: &str, s: &str) -> Result<String, Error> {
    qi_platform::EmployeeNumber::parse(s)
        .map(String::from)
        .map_err(|e| Error::invalid(field, e))
}

/// Finds a staff member the caller may see: by site and number (a name under the wrong
/// site finds nothing), or at any of the caller's sites.
pub(crate) async fn find(
    conn: &mut PgConnection,
    ctx: &AccessContext,
    name: &StaffName,
) -> Result<Option<StaffRow>, Error> {
    let sites: Option<Vec<String>> = match name {
        StaffName::At(site, _) => {
            Owner::Site(site.clone()).check_read(ctx)?;
            Some(vec![site.to_string()])
        }
        StaffName::AnySite(_) => ctx.sites.sql_filter(),
    };
    store::get(conn, name.employee_number(), sites).await
}

/// Like [`find`], but `NOT_FOUND` when absent.
pub(crate) async fn require(
    conn: &mut PgConnection,
    ctx: &AccessContext,
    field_value: &str,
    name: &StaffName,
) -> Result<StaffRow, Error> {
    find(conn, ctx, name)
        .await?
        .ok_or_else(|| Error::not_found(field_value))
}

/// GetStaff: one person, if at a site the caller holds.
pub(crate) async fn get(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::GetStaffRequest,
) -> Result<pb::GetStaffResponse, Error> {
    let pb::GetStaffRequest { name } = req;
    let parsed = parse_name("name", &name)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let row = require(&mut conn, &ctx, &name, &parsed).await?;
    Ok(pb::GetStaffResponse {
        staff: Some(row.into()),
    })
}

/// ListStaff: the people of one site or of every site the caller holds.
pub(crate) async fn list(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::ListStaffRequest,
) -> Result<pb::ListStaffResponse, Error> {
    let pb::ListStaffRequest {
        parent,
        page_size,
        page_token,
        show_inactive,
    } = req;
    let list_parent = ListParent::parse("parent", &parent)?;
    let page = Page::parse(page_size, &page_token, &format!("{parent}|{show_inactive}"))?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let scope = list_parent.scope(&ctx)?;
    if scope.trust {
        return Err(Error::invalid(
            "parent",
            "staff belong to sites: use `sites/{site}` or `sites/-`",
        ));
    }
    let (staff, next_page_token) =
        store::list(&mut conn, scope.sites, show_inactive, &page).await?;
    Ok(pb::ListStaffResponse {
        staff,
        next_page_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staff_names_carry_a_site_or_any_site() {
        assert_eq!(
            parse_name("name", "sites/BAS/staff/12345678").unwrap(),
            StaffName::At(SiteCode::parse("BAS").unwrap(), "12345678".into())
        );
        assert_eq!(
            parse_name("name", "sites/-/staff/12345678").unwrap(),
            StaffName::AnySite("12345678".into())
        );
        for bad in [
            "sites/BAS/staff/12a45",
            "sites/BAS/staff/1234",
            "sites/BAS/cohorts/12345",
            "staff/12345",
        ] {
            assert!(parse_name("name", bad).is_err(), "{bad}");
        }
    }
}
