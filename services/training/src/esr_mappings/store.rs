//! The `esr_mapping` table: adding, reading, paging, deleting and upserting mappings. The
//! sync reads it in its own SQL (`crate::sync::store`).

use std::collections::HashMap;

use qi_platform::convert::{etag, timestamp};
use qi_platform::paging::Page;
use qi_platform::{Error, SiteCode};
use qi_proto::training as pb;
use sqlx::PgConnection;

use super::{Kind, MappingId, NewMapping, name_of};

struct MappingRow {
    kind: String,
    code: String,
    site: String,
    ward: String,
    display_name: String,
    create_time: chrono::DateTime<chrono::Utc>,
    update_time: chrono::DateTime<chrono::Utc>,
    revision: i64,
}

impl MappingRow {
    fn into_pb(self) -> Result<pb::EsrMapping, Error> {
        let kind = Kind::parse(&self.kind)
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("stored kind {:?}", self.kind)))?;
        let id = MappingId {
            kind,
            code: self.code,
        };
        Ok(pb::EsrMapping {
            name: name_of(&self.site, &id),
            kind: kind.to_pb() as i32,
            code: id.code,
            site: format!("sites/{}", self.site),
            ward: self.ward,
            display_name: self.display_name,
            create_time: Some(timestamp(self.create_time)),
            update_time: Some(timestamp(self.update_time)),
            etag: etag(self.revision),
        })
    }
}

/// `query_as!` into [`MappingRow`] of `$head`, the mapping's columns, then `$tail`: the
/// columns are written once, and every statement is still checked at build time.
macro_rules! mapping_rows {
    ($head:literal, $tail:literal, $($arg:expr),* $(,)?) => {
        sqlx::query_as!(
            MappingRow,
            $head
                + "kind, code, site, ward, display_name, create_time, update_time, revision"
                + $tail,
            $($arg),*
        )
    };
}

/// Inserts a mapping; `None` if its code is mapped already, at any site.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    m: &NewMapping,
) -> Result<Option<pb::EsrMapping>, Error> {
    let row = mapping_rows!(
        "INSERT INTO esr_mapping (kind, code, site, ward, display_name)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT DO NOTHING
         RETURNING ",
        "",
        m.id.kind.as_str(),
        m.id.code,
        m.site.as_str(),
        m.ward,
        m.display_name,
    )
    .fetch_optional(&mut *conn)
    .await?;
    row.map(MappingRow::into_pb).transpose()
}

/// The mapping of `id` at `site`, if it is there.
pub(crate) async fn get(
    conn: &mut PgConnection,
    site: &SiteCode,
    id: &MappingId,
) -> Result<Option<pb::EsrMapping>, Error> {
    let row = mapping_rows!(
        "SELECT ",
        " FROM esr_mapping WHERE kind = $1 AND code = $2 AND site = $3",
        id.kind.as_str(),
        id.code,
        site.as_str(),
    )
    .fetch_optional(&mut *conn)
    .await?;
    row.map(MappingRow::into_pb).transpose()
}

/// One page of the mappings of `sites` (`None`: every site), of one kind or all, by site,
/// kind and code.
pub(crate) async fn list(
    conn: &mut PgConnection,
    sites: Option<Vec<String>>,
    kind: Option<Kind>,
    page: &Page,
) -> Result<(Vec<pb::EsrMapping>, String), Error> {
    let rows = mapping_rows!(
        "SELECT ",
        " FROM esr_mapping
         WHERE ($1::text[] IS NULL OR site = ANY($1))
           AND ($2::text IS NULL OR kind = $2)
           AND (site, kind, code) > ($3, $4, $5)
         ORDER BY site, kind, code
         LIMIT $6",
        sites.as_deref(),
        kind.map(Kind::as_str),
        page.after_key(0).unwrap_or(""),
        page.after_key(1).unwrap_or(""),
        page.after_key(2).unwrap_or(""),
        page.limit(),
    )
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| {
        vec![r.site.clone(), r.kind.clone(), r.code.clone()]
    });
    rows.into_iter()
        .map(MappingRow::into_pb)
        .collect::<Result<_, _>>()
        .map(|m| (m, next))
}

/// Locks the mapping of `id` at `site` for a change; its revision, if it is there.
pub(crate) async fn lock(
    conn: &mut PgConnection,
    site: &SiteCode,
    id: &MappingId,
) -> Result<Option<i64>, Error> {
    Ok(sqlx::query_scalar!(
        "SELECT revision FROM esr_mapping WHERE kind = $1 AND code = $2 AND site = $3
         FOR UPDATE",
        id.kind.as_str(),
        id.code,
        site.as_str(),
    )
    .fetch_optional(&mut *conn)
    .await?)
}

/// Deletes the mapping of `id` at `site`.
pub(crate) async fn delete(
    conn: &mut PgConnection,
    site: &SiteCode,
    id: &MappingId,
) -> Result<(), Error> {
    sqlx::query!(
        "DELETE FROM esr_mapping WHERE kind = $1 AND code = $2 AND site = $3",
        id.kind.as_str(),
        id.code,
        site.as_str(),
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A mapping an upsert wrote.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Written {
    /// Whether it was added (else changed, or moved here from another site).
    pub(crate) created: bool,
    /// The mapping as it now is.
    pub(crate) mapping: pb::EsrMapping,
}

/// Stores `mappings` at `site` in one statement: new codes are added, codes mapped here
/// are changed where they differ, and codes mapped at another site move here only when
/// that site is one of `movable` (`None`: any). Returns the codes written, each as it now
/// is and whether it was added; the rest were already as sent, or are held at another site.
pub(crate) async fn upsert(
    conn: &mut PgConnection,
    site: &SiteCode,
    mappings: &[&NewMapping],
    movable: Option<&[String]>,
) -> Result<HashMap<MappingId, Written>, Error> {
    let kinds: Vec<&str> = mappings.iter().map(|m| m.id.kind.as_str()).collect();
    let codes: Vec<&str> = mappings.iter().map(|m| m.id.code.as_str()).collect();
    let wards: Vec<&str> = mappings.iter().map(|m| m.ward.as_str()).collect();
    let titles: Vec<&str> = mappings.iter().map(|m| m.display_name.as_str()).collect();
    // A conflicting row is locked even when the WHERE keeps it: the codes not returned
    // can be read back as they stand.
    let rows = sqlx::query!(
        r#"INSERT INTO esr_mapping AS m (kind, code, site, ward, display_name)
           SELECT kind, code, $5, ward, display_name
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
               AS i(kind, code, ward, display_name)
           ON CONFLICT (kind, code) DO UPDATE
           SET site = EXCLUDED.site, ward = EXCLUDED.ward, display_name = EXCLUDED.display_name
           WHERE (m.site, m.ward, m.display_name)
                     IS DISTINCT FROM (EXCLUDED.site, EXCLUDED.ward, EXCLUDED.display_name)
             AND (m.site = EXCLUDED.site OR $6::text[] IS NULL OR m.site = ANY($6))
           RETURNING kind, code, site, ward, display_name, create_time, update_time, revision,
                     (xmax = 0) AS "created!""#,
        &kinds as &[&str],
        &codes as &[&str],
        &wards as &[&str],
        &titles as &[&str],
        site.as_str(),
        movable,
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            let kind = Kind::parse(&r.kind)
                .ok_or_else(|| Error::Internal(anyhow::anyhow!("stored kind {:?}", r.kind)))?;
            let id = MappingId {
                kind,
                code: r.code.clone(),
            };
            let mapping = MappingRow {
                kind: r.kind,
                code: r.code,
                site: r.site,
                ward: r.ward,
                display_name: r.display_name,
                create_time: r.create_time,
                update_time: r.update_time,
                revision: r.revision,
            }
            .into_pb()?;
            let created = r.created;
            Ok((id, Written { created, mapping }))
        })
        .collect()
}

/// Where each of `ids` is mapped now, for those mapped, their rows locked for the
/// transaction (so an upsert after it finds them there).
pub(crate) async fn lock_sites(
    conn: &mut PgConnection,
    ids: &[&MappingId],
) -> Result<HashMap<MappingId, String>, Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let kinds: Vec<&str> = ids.iter().map(|id| id.kind.as_str()).collect();
    let codes: Vec<&str> = ids.iter().map(|id| id.code.as_str()).collect();
    let rows = sqlx::query!(
        "SELECT m.kind, m.code, m.site FROM esr_mapping AS m
         JOIN unnest($1::text[], $2::text[]) AS i(kind, code) USING (kind, code)
         ORDER BY m.kind, m.code
         FOR UPDATE OF m",
        &kinds as &[&str],
        &codes as &[&str],
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| Kind::parse(&r.kind).map(|kind| (MappingId { kind, code: r.code }, r.site)))
        .collect())
}

/// Where each of `ids` is mapped now, for those mapped.
pub(crate) async fn sites_of(
    conn: &mut PgConnection,
    ids: &[&MappingId],
) -> Result<HashMap<MappingId, String>, Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let kinds: Vec<&str> = ids.iter().map(|id| id.kind.as_str()).collect();
    let codes: Vec<&str> = ids.iter().map(|id| id.code.as_str()).collect();
    let rows = sqlx::query!(
        "SELECT m.kind, m.code, m.site FROM esr_mapping AS m
         JOIN unnest($1::text[], $2::text[]) AS i(kind, code) USING (kind, code)",
        &kinds as &[&str],
        &codes as &[&str],
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| Kind::parse(&r.kind).map(|kind| (MappingId { kind, code: r.code }, r.site)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{page, transaction};

    fn site(code: &str) -> SiteCode {
        SiteCode::parse(code).expect("a site code")
    }

    fn mapping(at: &str, id: &str, ward: &str) -> NewMapping {
        NewMapping {
            site: site(at),
            id: MappingId::parse("id", id).expect("an id"),
            ward: ward.to_owned(),
            display_name: format!("{id} at {at}"),
        }
    }

    fn names(ms: &[pb::EsrMapping]) -> Vec<&str> {
        ms.iter().map(|m| m.name.as_str()).collect()
    }

    #[tokio::test]
    async fn a_code_maps_to_one_site_and_reads_back_only_there() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let ash = mapping("BAS", "organisation.CC-ASH", "sites/BAS/wards/ash");
        let made = insert(&mut conn, &ash).await?.expect("inserted");
        assert_eq!(made.name, "sites/BAS/esrMappings/organisation.CC-ASH");
        assert_eq!(made.kind, pb::EsrCodeKind::Organisation as i32);
        assert_eq!(
            (made.code.as_str(), made.site.as_str(), made.ward.as_str()),
            ("CC-ASH", "sites/BAS", "sites/BAS/wards/ash")
        );
        assert_eq!(get(&mut conn, &site("BAS"), &ash.id).await?, Some(made));
        assert_eq!(get(&mut conn, &site("SOU"), &ash.id).await?, None);
        // The same code at another site is taken; the same code of the other kind is not.
        let elsewhere = mapping("SOU", "organisation.CC-ASH", "");
        assert!(insert(&mut conn, &elsewhere).await?.is_none());
        let as_location = mapping("SOU", "location.CC-ASH", "");
        assert!(insert(&mut conn, &as_location).await?.is_some());
        Ok(())
    }

    #[tokio::test]
    async fn a_ward_of_another_site_is_refused_by_the_table_too() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let wrong = mapping("BAS", "location.L1", "sites/SOU/wards/ash");
        assert!(insert(&mut conn, &wrong).await.is_err());
        Ok(())
    }

    #[tokio::test]
    async fn the_list_pages_by_site_kind_and_code_within_the_scope() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        for (at, id) in [
            ("SOU", "location.S1"),
            ("BAS", "organisation.B2"),
            ("BAS", "location.B1"),
            ("BRM", "location.R1"),
        ] {
            insert(&mut conn, &mapping(at, id, "")).await?;
        }
        let (first, next) = list(&mut conn, None, None, &page(2, "")?).await?;
        let (second, end) = list(&mut conn, None, None, &page(2, &next)?).await?;
        assert_eq!(
            names(&first),
            [
                "sites/BAS/esrMappings/location.B1",
                "sites/BAS/esrMappings/organisation.B2"
            ]
        );
        assert_eq!(
            names(&second),
            [
                "sites/BRM/esrMappings/location.R1",
                "sites/SOU/esrMappings/location.S1"
            ]
        );
        assert!(end.is_empty());
        let bas = Some(vec!["BAS".to_owned()]);
        let (only_bas, _) = list(&mut conn, bas.clone(), None, &page(10, "")?).await?;
        assert_eq!(only_bas.len(), 2);
        let (locations, _) = list(&mut conn, bas, Some(Kind::Location), &page(10, "")?).await?;
        assert_eq!(names(&locations), ["sites/BAS/esrMappings/location.B1"]);
        Ok(())
    }

    #[tokio::test]
    async fn a_delete_goes_by_site_and_key() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let m = mapping("BAS", "location.L1", "");
        insert(&mut conn, &m).await?;
        assert_eq!(lock(&mut conn, &site("SOU"), &m.id).await?, None);
        assert_eq!(lock(&mut conn, &site("BAS"), &m.id).await?, Some(1));
        delete(&mut conn, &site("SOU"), &m.id).await?;
        assert!(get(&mut conn, &site("BAS"), &m.id).await?.is_some());
        delete(&mut conn, &site("BAS"), &m.id).await?;
        assert!(get(&mut conn, &site("BAS"), &m.id).await?.is_none());
        Ok(())
    }

    #[tokio::test]
    async fn an_upsert_adds_changes_and_moves_only_what_it_may() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        insert(&mut conn, &mapping("BAS", "location.SAME", "")).await?;
        insert(&mut conn, &mapping("BAS", "location.CHANGED", "")).await?;
        insert(&mut conn, &mapping("SOU", "location.AT-SOU", "")).await?;
        insert(&mut conn, &mapping("BRM", "location.AT-BRM", "")).await?;
        let batch = [
            mapping("BAS", "location.NEW", "sites/BAS/wards/ash"),
            mapping("BAS", "location.SAME", ""),
            mapping("BAS", "location.CHANGED", "sites/BAS/wards/elm"),
            mapping("BAS", "location.AT-SOU", ""),
            mapping("BAS", "location.AT-BRM", ""),
        ];
        let refs: Vec<&NewMapping> = batch.iter().collect();
        // A caller holding BAS and SOU moves SOU's code, not BRM's.
        let movable = ["BAS".to_owned(), "SOU".to_owned()];
        let written = upsert(&mut conn, &site("BAS"), &refs, Some(&movable)).await?;
        let mut got: Vec<(String, bool)> =
            written.iter().map(|(k, v)| (k.id(), v.created)).collect();
        let moved = &written[&batch[3].id].mapping;
        assert_eq!(
            (moved.name.as_str(), moved.site.as_str()),
            ("sites/BAS/esrMappings/location.AT-SOU", "sites/BAS")
        );
        got.sort();
        assert_eq!(
            got,
            [
                ("location.AT-SOU".to_owned(), false),
                ("location.CHANGED".to_owned(), false),
                ("location.NEW".to_owned(), true),
            ]
        );
        let ids: Vec<&MappingId> = batch.iter().map(|m| &m.id).collect();
        let now = sites_of(&mut conn, &ids).await?;
        assert_eq!(lock_sites(&mut conn, &ids).await?, now);
        let at = |id: &str| now[&MappingId::parse("id", id).unwrap()].clone();
        assert_eq!(at("location.AT-SOU"), "BAS");
        assert_eq!(at("location.AT-BRM"), "BRM");
        assert_eq!(at("location.SAME"), "BAS");
        let changed = get(&mut conn, &site("BAS"), &batch[2].id).await?.unwrap();
        assert_eq!(
            (changed.ward.as_str(), changed.etag.as_str()),
            ("sites/BAS/wards/elm", "\"2\"")
        );
        // The same batch again writes nothing; a trust-wide caller (None) may move BRM's.
        assert!(
            upsert(&mut conn, &site("BAS"), &refs, Some(&movable))
                .await?
                .is_empty()
        );
        let again = upsert(&mut conn, &site("BAS"), &refs, None).await?;
        assert_eq!(again.len(), 1);
        Ok(())
    }
}
