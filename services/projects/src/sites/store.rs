//! The `site` table: registering, reading and paging the trust's sites.

use qi_platform::convert::{etag, timestamp};
use qi_platform::paging::Page;
use qi_platform::{Error, SiteCode};
use qi_proto::projects as pb;
use sqlx::PgConnection;

use super::NewSite;

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

/// `query_as!` into [`SiteRow`] of `$head`, the site's columns, then `$tail`: the columns
/// are written once, and every statement is still checked at build time.
macro_rules! site_rows {
    ($head:literal, $tail:literal, $($arg:expr),* $(,)?) => {
        sqlx::query_as!(
            SiteRow,
            $head + "code, display_name, create_time, update_time, revision" + $tail,
            $($arg),*
        )
    };
}

/// Inserts a site; `AlreadyExists` if the code is taken.
pub(super) async fn insert(conn: &mut PgConnection, s: &NewSite) -> Result<pb::Site, Error> {
    let row = site_rows!(
        "INSERT INTO site (code, display_name) VALUES ($1, $2)
         ON CONFLICT DO NOTHING RETURNING ",
        "",
        s.code.as_str(),
        s.display_name,
    )
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Into::into).ok_or_else(|| Error::AlreadyExists {
        name: format!("sites/{}", s.code),
    })
}

/// Reads one site.
pub(super) async fn read(
    conn: &mut PgConnection,
    code: &SiteCode,
) -> Result<Option<pb::Site>, Error> {
    let row = site_rows!("SELECT ", " FROM site WHERE code = $1", code.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(Into::into))
}

/// One page of sites, ordered by code.
pub(super) async fn list(
    conn: &mut PgConnection,
    page: &Page,
) -> Result<(Vec<pb::Site>, String), Error> {
    let rows = site_rows!(
        "SELECT ",
        " FROM site WHERE code > $1 ORDER BY code LIMIT $2",
        page.after_key(0).unwrap_or(""),
        page.limit(),
    )
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| vec![r.code.clone()]);
    Ok((rows.into_iter().map(Into::into).collect(), next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{pages, site, transaction};

    fn new(code: &str, display_name: &str) -> NewSite {
        NewSite {
            code: site(code),
            display_name: display_name.to_owned(),
            request_id: String::new(),
        }
    }

    #[tokio::test]
    async fn an_insert_reads_back_and_a_taken_code_is_refused_by_name() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let made = insert(&mut conn, &new("BAS", "Basingstoke")).await?;
        assert_eq!(made.name, "sites/BAS");
        assert_eq!(made.display_name, "Basingstoke");
        assert_eq!(made.etag, "\"1\"");
        assert!(made.create_time.is_some());
        assert_eq!(made.update_time, made.create_time);
        assert_eq!(read(&mut conn, &site("BAS")).await?, Some(made.clone()));
        match insert(&mut conn, &new("BAS", "Somewhere else")).await {
            Err(Error::AlreadyExists { name }) => assert_eq!(name, "sites/BAS"),
            other => panic!("expected AlreadyExists, got {other:?}"),
        }
        // The refused insert changed nothing.
        assert_eq!(read(&mut conn, &site("BAS")).await?, Some(made));
        assert_eq!(read(&mut conn, &site("SOU")).await?, None);
        Ok(())
    }

    #[tokio::test]
    async fn a_list_gives_every_site_once_in_code_order_page_by_page() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        for code in ["SOU", "BAS", "WIN", "BRM", "AND"] {
            insert(&mut conn, &new(code, &format!("Site {code}"))).await?;
        }
        let paged = pages(2, async |page| list(&mut conn, &page).await).await?;
        let names: Vec<Vec<(String, String)>> = paged
            .into_iter()
            .map(|p| p.into_iter().map(|s| (s.name, s.display_name)).collect())
            .collect();
        let row = |code: &str| (format!("sites/{code}"), format!("Site {code}"));
        assert_eq!(
            names,
            [
                vec![row("AND"), row("BAS")],
                vec![row("BRM"), row("SOU")],
                vec![row("WIN")],
            ]
        );
        Ok(())
    }
}
