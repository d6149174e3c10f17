//! The `ward` table: adding, reading and paging wards, and whether wards exist.

use qi_platform::convert::{etag, timestamp};
use qi_platform::paging::Page;
use qi_platform::{Error, SiteCode};
use qi_proto::projects as pb;
use sqlx::PgConnection;

use super::{COLLECTION, NewWard};

/// Whether a ward exists.
pub(crate) async fn exists(
    conn: &mut PgConnection,
    site: &SiteCode,
    id: &str,
) -> Result<bool, Error> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM ward WHERE site = $1 AND id = $2) AS "exists!""#,
        site.as_str(),
        id,
    )
    .fetch_one(&mut *conn)
    .await?)
}

struct WardRow {
    site: String,
    id: String,
    display_name: String,
    specialty: String,
    create_time: chrono::DateTime<chrono::Utc>,
    update_time: chrono::DateTime<chrono::Utc>,
    revision: i64,
}

impl From<WardRow> for pb::Ward {
    fn from(r: WardRow) -> Self {
        pb::Ward {
            name: format!("sites/{}/{COLLECTION}/{}", r.site, r.id),
            display_name: r.display_name,
            specialty: r.specialty,
            create_time: Some(timestamp(r.create_time)),
            update_time: Some(timestamp(r.update_time)),
            etag: etag(r.revision),
        }
    }
}

/// `query_as!` into [`WardRow`] of `$head`, the ward's columns, then `$tail`: the columns
/// are written once, and every statement is still checked at build time.
macro_rules! ward_rows {
    ($head:literal, $tail:literal, $($arg:expr),* $(,)?) => {
        sqlx::query_as!(
            WardRow,
            $head + "site, id, display_name, specialty, create_time, update_time, revision"
                + $tail,
            $($arg),*
        )
    };
}

/// Of `names` (ward names), those that do not exist.
pub(crate) async fn missing(
    conn: &mut PgConnection,
    names: &[String],
) -> Result<Vec<String>, Error> {
    Ok(sqlx::query_scalar!(
        r#"SELECT w AS "w!" FROM unnest($1::text[]) AS w
           WHERE NOT EXISTS (SELECT 1 FROM ward
                             WHERE 'sites/' || ward.site || '/wards/' || ward.id = w)"#,
        names,
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// Inserts a ward; `None` if its id is taken at its site.
pub(super) async fn insert(
    conn: &mut PgConnection,
    w: &NewWard,
) -> Result<Option<pb::Ward>, Error> {
    let row = ward_rows!(
        "INSERT INTO ward (site, id, display_name, specialty) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING RETURNING ",
        "",
        w.site.as_str(),
        w.id,
        w.display_name,
        w.specialty,
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(Into::into))
}

/// Reads one ward.
pub(super) async fn read(
    conn: &mut PgConnection,
    site: &SiteCode,
    id: &str,
) -> Result<Option<pb::Ward>, Error> {
    let row = ward_rows!(
        "SELECT ",
        " FROM ward WHERE site = $1 AND id = $2",
        site.as_str(),
        id,
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(Into::into))
}

/// One page of the wards of `sites` (`None`: every site), ordered by site and code.
pub(super) async fn list(
    conn: &mut PgConnection,
    sites: Option<Vec<String>>,
    page: &Page,
) -> Result<(Vec<pb::Ward>, String), Error> {
    let rows = ward_rows!(
        "SELECT ",
        " FROM ward
         WHERE ($1::text[] IS NULL OR site = ANY($1)) AND (site, id) > ($2, $3)
         ORDER BY site, id LIMIT $4",
        sites.as_deref(),
        page.after_key(0).unwrap_or(""),
        page.after_key(1).unwrap_or(""),
        page.limit(),
    )
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| vec![r.site.clone(), r.id.clone()]);
    Ok((rows.into_iter().map(Into::into).collect(), next))
}
