//! Staff as ESR describes them, one name for life (`staff/{employee_number}`), read by
//! callers holding the person's current site (or trust-wide), and by the person themselves;
//! written only by the HR sync (see `crate::sync`). The handlers, staff names, and the
//! person's read check, which lives here rather than in the gateway: a person's name carries
//! no site, so only this service, which knows where they work now, can check it.

pub(crate) mod store;

use qi_names::Person;
use qi_platform::extract::{self, Order};
use qi_platform::names::ListParent;
use qi_platform::names::ListParentScope as _;
use qi_platform::paging::Page;
use qi_platform::{AccessContext, EmployeeNumber, Error, SiteCode, Violations};
use qi_proto::training as pb;
use sqlx::PgConnection;

use crate::TrainingApi;
use store::StaffRow;

/// The canonical name of the person with this employee number.
pub(crate) fn name_of(number: &str) -> String {
    format!("{}/{number}", qi_names::STAFF)
}

/// Parses a person's name: `staff/{employee_number}`, `staff/me`, or a v1 alias
/// (`sites/{site}/staff/{n}`, `sites/-/staff/{n}`, whose site is not checked).
pub(crate) fn parse_name(field: &str, value: &str) -> Result<Person, Error> {
    Ok(Person::parse(field, value)?)
}

/// The employee number a parsed name points at: `staff/me` is the caller's, which needs the
/// claim (`FAILED_PRECONDITION` naming it otherwise).
pub(crate) fn number_of(ctx: &AccessContext, person: Person) -> Result<EmployeeNumber, Error> {
    match person {
        Person::Me => ctx.employee().cloned(),
        Person::Employee(n) => Ok(n),
    }
}

/// Checks an ESR employee number by the one rule the gateway also reads tokens with
/// ([`qi_platform::EmployeeNumber`]: 5 to 12 digits).
pub(crate) fn employee_number(field: &str, s: &str) -> Result<String, Error> {
    EmployeeNumber::parse(s)
        .map(String::from)
        .map_err(|e| Error::invalid(field, e))
}

/// Whether the caller may read a person now at `site`: trust-wide, or holding that site.
fn holds(ctx: &AccessContext, site: &str) -> bool {
    SiteCode::parse(site).is_ok_and(|s| ctx.sites.holds(&s))
}

/// Reads the person `value` (in `field`) names, as GetStaff does: a trust-wide caller reads
/// anyone (`NOT_FOUND` if absent), a site caller a person whose current site it holds, and
/// anyone their own record; otherwise `PERMISSION_DENIED`, whether or not the person exists
/// (AIP-211). An alias's site grants nothing.
pub(crate) async fn read(
    conn: &mut PgConnection,
    ctx: &AccessContext,
    field: &str,
    value: &str,
) -> Result<StaffRow, Error> {
    let number = number_of(ctx, parse_name(field, value)?)?;
    let own = ctx.employee.as_ref() == Some(&number);
    match store::get(conn, number.as_str(), None).await? {
        Some(row) if own || holds(ctx, &row.site) => Ok(row),
        None if own || ctx.sites.is_trust_wide() => Err(Error::not_found(value)),
        _ => Err(Error::denied(format!(
            "no access to {}: a person is read by callers holding their current site",
            name_of(number.as_str())
        ))),
    }
}

/// GetStaff: one person, read as [`read`] allows.
pub(crate) async fn get(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::GetStaffRequest,
) -> Result<pb::GetStaffResponse, Error> {
    let pb::GetStaffRequest { name } = req;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let row = read(&mut conn, &ctx, "name", &name).await?;
    Ok(pb::GetStaffResponse {
        staff: Some(row.into()),
    })
}

/// ListStaff: the people now at one site or at every site the caller holds.
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
        filter,
        order_by,
    } = req;
    let list_parent = ListParent::parse("parent", &parent)?;
    let mut v = Violations::new();
    let terms = v.check(extract::read_terms(&filter, None, true));
    let order = v.check(extract::order(&order_by));
    v.finish()?;
    let params = extract::token_params(format!("{parent}|{show_inactive}"), &filter, &order_by);
    let page = Page::parse(page_size, &page_token, &params)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let scope = list_parent.scope(&ctx)?;
    if scope.trust {
        return Err(Error::invalid(
            "parent",
            "staff are listed by their current site: use `sites/{site}` or `sites/-`",
        ));
    }
    let sites = match &terms.site {
        Some(site) => Some(extract::only_site(scope.sites, site)),
        None => scope.sites,
    };
    let wanted = store::Wanted {
        sites,
        show_inactive,
        updated: terms.updated,
    };
    let (staff, next_page_token) = match order {
        Order::Default => store::list(&mut conn, &wanted, &page).await?,
        Order::UpdateTime => {
            let after = (order.after_time(&page)?, page.after_key(0));
            store::list_by_change(&mut conn, &wanted, after, &page).await?
        }
    };
    Ok(pb::ListStaffResponse {
        staff,
        next_page_token,
    })
}
