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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{pages, site, transaction};

    fn new(site_code: &str, id: &str) -> NewWard {
        NewWard {
            site: site(site_code),
            id: id.to_owned(),
            display_name: format!("Ward {id}"),
            specialty: "Elderly care".into(),
            request_id: String::new(),
        }
    }

    #[tokio::test]
    async fn an_insert_reads_back_and_a_taken_id_at_the_site_is_refused() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let made = insert(&mut conn, &new("BAS", "w1"))
            .await?
            .expect("inserted");
        assert_eq!(made.name, "sites/BAS/wards/w1");
        assert_eq!(
            (made.display_name.as_str(), made.specialty.as_str()),
            ("Ward w1", "Elderly care")
        );
        assert_eq!(read(&mut conn, &site("BAS"), "w1").await?, Some(made));
        assert_eq!(insert(&mut conn, &new("BAS", "w1")).await?, None);
        assert!(insert(&mut conn, &new("SOU", "w1")).await?.is_some());
        assert_eq!(read(&mut conn, &site("BRM"), "w1").await?, None);
        assert!(exists(&mut conn, &site("SOU"), "w1").await?);
        assert!(!exists(&mut conn, &site("SOU"), "w2").await?);
        let asked = [
            "sites/BAS/wards/w1",
            "sites/BAS/wards/w2",
            "sites/BRM/wards/w1",
        ];
        let asked: Vec<String> = asked.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            missing(&mut conn, &asked).await?,
            ["sites/BAS/wards/w2", "sites/BRM/wards/w1"]
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_list_keeps_to_its_sites_in_name_order_page_by_page() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        for (s, id) in [("SOU", "a"), ("BAS", "b"), ("BRM", "a"), ("BAS", "a")] {
            insert(&mut conn, &new(s, id)).await?;
        }
        let names = |pages: Vec<Vec<pb::Ward>>| -> Vec<Vec<String>> {
            pages
                .into_iter()
                .map(|p| p.into_iter().map(|w| w.name).collect())
                .collect()
        };
        let bas = Some(vec!["BAS".to_owned()]);
        let only = pages(5, async |page| list(&mut conn, bas.clone(), &page).await).await?;
        assert_eq!(names(only), [["sites/BAS/wards/a", "sites/BAS/wards/b"]]);
        let all = pages(3, async |page| list(&mut conn, None, &page).await).await?;
        assert_eq!(
            names(all),
            [
                vec![
                    "sites/BAS/wards/a",
                    "sites/BAS/wards/b",
                    "sites/BRM/wards/a"
                ],
                vec!["sites/SOU/wards/a"],
            ]
        );
        Ok(())
    }
}
