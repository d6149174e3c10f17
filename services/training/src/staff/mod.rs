//! Staff as ESR describes them (`sites/{site}/staff/{employee_number}`), read by callers
//! within their sites; written only by the HR sync (see `crate::sync`).

use chrono::NaiveDate;
use qi_platform::convert::{date, timestamp};
use qi_platform::names::{ListParent, Owner};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, SiteCode};
use qi_proto::training as pb;
use sqlx::PgConnection;

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

/// Checks an ESR employee number: 5 to 12 digits.
pub(crate) fn employee_number(field: &str, s: &str) -> Result<String, Error> {
    if (5..=12).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_owned())
    } else {
        Err(Error::invalid(
            field,
            format!(
                "`{}` is not an ESR employee number (5 to 12 digits)",
                qi_platform::names::clip(s)
            ),
        ))
    }
}

/// A staff row as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct StaffRow {
    pub(crate) employee_number: String,
    pub(crate) site: String,
    pub(crate) assignment_number: String,
    pub(crate) forename: String,
    pub(crate) surname: String,
    pub(crate) work_email: String,
    pub(crate) staff_group: String,
    pub(crate) job_role: String,
    pub(crate) position_title: String,
    pub(crate) pay_band: String,
    pub(crate) department: String,
    pub(crate) organisation: String,
    pub(crate) person_type: String,
    pub(crate) hire_date: Option<NaiveDate>,
    pub(crate) leave_date: Option<NaiveDate>,
    pub(crate) active: bool,
    pub(crate) source_update_time: chrono::DateTime<chrono::Utc>,
    pub(crate) create_time: chrono::DateTime<chrono::Utc>,
    pub(crate) update_time: chrono::DateTime<chrono::Utc>,
}

impl StaffRow {
    pub(crate) fn name(&self) -> String {
        format!("sites/{}/{COLLECTION}/{}", self.site, self.employee_number)
    }
}

impl From<StaffRow> for pb::Staff {
    fn from(r: StaffRow) -> Self {
        pb::Staff {
            name: r.name(),
            employee_number: r.employee_number,
            assignment_number: r.assignment_number,
            forename: r.forename,
            surname: r.surname,
            work_email: r.work_email,
            staff_group: r.staff_group,
            job_role: r.job_role,
            position_title: r.position_title,
            pay_band: r.pay_band,
            department: r.department,
            organisation: r.organisation,
            person_type: r.person_type,
            hire_date: r.hire_date.map(date),
            leave_date: r.leave_date.map(date),
            active: r.active,
            source_update_time: Some(timestamp(r.source_update_time)),
            create_time: Some(timestamp(r.create_time)),
            update_time: Some(timestamp(r.update_time)),
        }
    }
}

const COLUMNS: &str = "employee_number, site, assignment_number, forename, surname, work_email, \
     staff_group, job_role, position_title, pay_band, department, organisation, person_type, \
     hire_date, leave_date, active, source_update_time, create_time, update_time";

/// Finds a staff member the caller may see: by site and number (a name under the wrong
/// site finds nothing), or at any of the caller's sites.
pub(crate) async fn get(
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
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM staff
         WHERE employee_number = $1 AND ($2::text[] IS NULL OR site = ANY($2))"
    )))
    .bind(name.employee_number())
    .bind(sites)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Like [`get`], but `NOT_FOUND` when absent.
pub(crate) async fn require(
    conn: &mut PgConnection,
    ctx: &AccessContext,
    field_value: &str,
    name: &StaffName,
) -> Result<StaffRow, Error> {
    get(conn, ctx, name)
        .await?
        .ok_or_else(|| Error::not_found(field_value))
}

/// One page of staff under `parent` for this caller, by surname, forename and number.
pub(crate) async fn list(
    conn: &mut PgConnection,
    ctx: &AccessContext,
    parent: &ListParent,
    show_inactive: bool,
    page: &Page,
) -> Result<(Vec<pb::Staff>, String), Error> {
    let scope = parent.scope(ctx)?;
    if scope.trust {
        return Err(Error::invalid(
            "parent",
            "staff belong to sites: use `sites/{site}` or `sites/-`",
        ));
    }
    let rows: Vec<StaffRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM staff
         WHERE ($1::text[] IS NULL OR site = ANY($1))
           AND ($2 OR active)
           AND (surname, forename, employee_number) > ($3, $4, $5)
         ORDER BY surname, forename, employee_number
         LIMIT $6"
    )))
    .bind(scope.sites)
    .bind(show_inactive)
    .bind(page.after_key(0).unwrap_or(""))
    .bind(page.after_key(1).unwrap_or(""))
    .bind(page.after_key(2).unwrap_or(""))
    .bind(page.limit())
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| {
        vec![
            r.surname.clone(),
            r.forename.clone(),
            r.employee_number.clone(),
        ]
    });
    Ok((rows.into_iter().map(Into::into).collect(), next))
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
