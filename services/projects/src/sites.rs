//! The trust's sites (`sites/{site}`): reference data every caller may read. The codes are
//! the ones configured in `QI_SITES` (what tokens and resource names use); this service
//! holds what describes them.

use qi_platform::convert::{etag, required_text, timestamp};
use qi_platform::paging::Page;
use qi_platform::{Error, SiteCode, Violations};
use qi_proto::projects as pb;
use sqlx::PgConnection;

/// A site to register, validated.
#[derive(Debug)]
pub(crate) struct NewSite {
    pub(crate) code: SiteCode,
    pub(crate) display_name: String,
    pub(crate) request_id: String,
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

#[derive(sqlx::FromRow)]
struct SiteRow {
    code: String,
    display_name: String,
    create_time: chrono::DateTime<chrono::Utc>,
    update_time: chrono::DateTime<chrono::Utc>,
    revision: i64,
}

impl From<SiteRow> for pb::Site {
    fn from(r: SiteRow) -> Self {
        pb::Site {
            name: format!("sites/{}", r.code),
            display_name: r.display_name,
            create_time: Some(timestamp(r.create_time)),
            update_time: Some(timestamp(r.update_time)),
            etag: etag(r.revision),
        }
    }
}

const COLUMNS: &str = "code, display_name, create_time, update_time, revision";

/// Inserts a site; `AlreadyExists` if the code is taken.
pub(crate) async fn insert(conn: &mut PgConnection, s: &NewSite) -> Result<pb::Site, Error> {
    let row: Option<SiteRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO site (code, display_name) VALUES ($1, $2)
         ON CONFLICT DO NOTHING RETURNING {COLUMNS}"
    )))
    .bind(s.code.as_str())
    .bind(&s.display_name)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Into::into).ok_or_else(|| Error::AlreadyExists {
        name: format!("sites/{}", s.code),
    })
}

/// Reads one site.
pub(crate) async fn get(
    conn: &mut PgConnection,
    code: &SiteCode,
) -> Result<Option<pb::Site>, Error> {
    let row: Option<SiteRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM site WHERE code = $1"
    )))
    .bind(code.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(Into::into))
}

/// One page of sites, ordered by code.
pub(crate) async fn list(
    conn: &mut PgConnection,
    page: &Page,
) -> Result<(Vec<pb::Site>, String), Error> {
    let rows: Vec<SiteRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM site WHERE code > $1 ORDER BY code LIMIT $2"
    )))
    .bind(page.after_key(0).unwrap_or(""))
    .bind(page.limit())
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| vec![r.code.clone()]);
    Ok((rows.into_iter().map(Into::into).collect(), next))
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
