//! The `programme` table: creating, finding, reading and paging programmes, and what a
//! project that joins one needs of it.

use chrono::NaiveDate;
use qi_platform::Error;
use qi_platform::convert::{date, etag, timestamp};
use qi_platform::names::OwnerAccess as _;
use qi_platform::names::{ListScope, Owner};
use qi_platform::paging::Page;
use qi_proto::projects as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{COLLECTION, NewProgramme, ProgrammeRef};
use crate::stored::{Column, fetch_optional_locked};

/// Finds a programme by its owner and id, locking its row when `lock`.
pub(crate) async fn find(
    conn: &mut PgConnection,
    owner: &Owner,
    id: &str,
    lock: bool,
) -> Result<Option<ProgrammeRef>, Error> {
    Ok(fetch_optional_locked!(
        conn,
        lock,
        sqlx::query_as!(
            ProgrammeRef,
            "SELECT uid, site, id, kind, revision, per_site, target_wards, reassessment_months
             FROM programme WHERE coalesce(site, '') = coalesce($1, '') AND id = $2",
            owner.site_column(),
            id,
        )
    ))
}

/// The uid of a programme and the cohort it is wrapped around, if it exists.
pub(crate) async fn uid_and_cohort(
    conn: &mut PgConnection,
    owner: &Owner,
    id: &str,
) -> Result<Option<(Uuid, Option<String>)>, Error> {
    let row = sqlx::query!(
        "SELECT uid, cohort FROM programme WHERE coalesce(site, '') = coalesce($1, '') AND id = $2",
        owner.site_column(),
        id,
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| (r.uid, r.cohort)))
}

/// Inserts a programme; `None` if its id is taken under its owner.
pub(super) async fn insert(
    conn: &mut PgConnection,
    new: &NewProgramme,
) -> Result<Option<Uuid>, Error> {
    Ok(sqlx::query_scalar!(
        "INSERT INTO programme (uid, site, id, display_name, description, kind, cohort, theme)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT DO NOTHING RETURNING uid",
        Uuid::now_v7(),
        new.owner.site_column(),
        new.id,
        new.display_name,
        new.description,
        new.kind.column(),
        new.cohort,
        new.theme,
    )
    .fetch_optional(&mut *conn)
    .await?)
}

struct ProgrammeRow {
    site: Option<String>,
    id: String,
    display_name: String,
    description: String,
    kind: String,
    cohort: Option<String>,
    theme: Option<String>,
    first_wave_date: Option<NaiveDate>,
    interval_months: Option<i32>,
    wards_per_wave: Option<i32>,
    per_site: bool,
    plan_end_date: Option<NaiveDate>,
    target_wards: i32,
    reassessment_months: i32,
    create_time: chrono::DateTime<chrono::Utc>,
    update_time: chrono::DateTime<chrono::Utc>,
    revision: i64,
}

/// `query_as!` into [`ProgrammeRow`] of the programme's columns and `$tail`: the columns are
/// written once, and every statement is still checked at build time.
macro_rules! programme_rows {
    ($tail:literal, $($arg:expr),* $(,)?) => {
        sqlx::query_as!(
            ProgrammeRow,
            "SELECT site, id, display_name, description, kind, cohort, theme, first_wave_date,
                    interval_months, wards_per_wave, per_site, plan_end_date, target_wards,
                    reassessment_months, create_time, update_time, revision
             FROM programme"
                + $tail,
            $($arg),*
        )
    };
}

impl TryFrom<ProgrammeRow> for pb::Programme {
    type Error = Error;
    fn try_from(r: ProgrammeRow) -> Result<Self, Error> {
        let wave_plan = match (
            r.first_wave_date,
            r.interval_months,
            r.wards_per_wave,
            r.plan_end_date,
        ) {
            (Some(first), Some(interval), Some(size), Some(end)) => Some(pb::WavePlan {
                first_wave_date: Some(date(first)),
                interval_months: interval,
                wards_per_wave: size,
                per_site: r.per_site,
                end_date: Some(date(end)),
                target_wards: r.target_wards,
                reassessment_months: r.reassessment_months,
            }),
            _ => None,
        };
        Ok(pb::Programme {
            name: Owner::from_column(r.site)?.child(COLLECTION, &r.id),
            display_name: r.display_name,
            description: r.description,
            kind: pb::ProgrammeKind::from_column(&r.kind)? as i32,
            cohort: r.cohort.unwrap_or_default(),
            theme: r.theme.unwrap_or_default(),
            wave_plan,
            create_time: Some(timestamp(r.create_time)),
            update_time: Some(timestamp(r.update_time)),
            etag: etag(r.revision),
        })
    }
}

/// Reads one programme by its internal id.
pub(crate) async fn read(conn: &mut PgConnection, uid: Uuid) -> Result<pb::Programme, Error> {
    let row = programme_rows!(" WHERE uid = $1", uid)
        .fetch_one(&mut *conn)
        .await?;
    row.try_into()
}

/// One page of the programmes in `scope`, of `kind` if given, ordered by site (trust-wide
/// first) and id.
pub(super) async fn list(
    conn: &mut PgConnection,
    scope: ListScope,
    kind: Option<&str>,
    page: &Page,
) -> Result<(Vec<pb::Programme>, String), Error> {
    let rows = programme_rows!(
        "
         -- the scope: qi_platform::names::LIST_SCOPE_SQL, written out (macros take literals)
         WHERE CASE WHEN $1 THEN site IS NULL
                    ELSE site IS NOT NULL AND ($2::text[] IS NULL OR site = ANY($2)) END
           AND ($3::text IS NULL OR kind = $3)
           AND (coalesce(site, ''), id) > ($4, $5)
         ORDER BY coalesce(site, ''), id LIMIT $6",
        scope.trust,
        scope.sites.as_deref(),
        kind,
        page.after_key(0).unwrap_or(""),
        page.after_key(1).unwrap_or(""),
        page.limit(),
    )
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| {
        vec![r.site.clone().unwrap_or_default(), r.id.clone()]
    });
    let programmes = rows
        .into_iter()
        .map(TryInto::try_into)
        .collect::<Result<_, _>>()?;
    Ok((programmes, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{everything, pages, site, transaction};

    fn new(owner: Owner, id: &str, kind: pb::ProgrammeKind) -> NewProgramme {
        NewProgramme {
            owner,
            id: id.to_owned(),
            display_name: format!("Programme {id}"),
            description: "Why".into(),
            kind,
            cohort: (kind == pb::ProgrammeKind::TrainingWrapped)
                .then(|| "sites/BAS/cohorts/c1".to_owned()),
            theme: (kind == pb::ProgrammeKind::Thematic).then(|| "Falls".to_owned()),
            request_id: String::new(),
        }
    }

    fn names(ps: &[pb::Programme]) -> Vec<&str> {
        ps.iter().map(|p| p.name.as_str()).collect()
    }

    fn scope(trust: bool, sites: Option<&[&str]>) -> ListScope {
        ListScope {
            trust,
            sites: sites.map(|s| s.iter().map(|c| c.to_string()).collect()),
        }
    }

    #[tokio::test]
    async fn an_insert_reads_back_and_a_taken_id_under_the_same_owner_is_refused()
    -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let bas = Owner::Site(site("BAS"));
        let made = new(bas.clone(), "falls", pb::ProgrammeKind::TrainingWrapped);
        let uid = insert(&mut conn, &made).await?.expect("inserted");
        let got = read(&mut conn, uid).await?;
        assert_eq!(got.name, "sites/BAS/programmes/falls");
        assert_eq!(
            (got.display_name.as_str(), got.description.as_str()),
            ("Programme falls", "Why")
        );
        assert_eq!(got.kind, pb::ProgrammeKind::TrainingWrapped as i32);
        assert_eq!(got.cohort, "sites/BAS/cohorts/c1");
        assert!(got.wave_plan.is_none());
        assert_eq!(got.etag, qi_platform::convert::etag(1));
        assert_eq!(insert(&mut conn, &made).await?, None);
        // The same id under the trust is another programme.
        let trust = new(Owner::Trust, "falls", pb::ProgrammeKind::Thematic);
        let other = insert(&mut conn, &trust).await?.expect("inserted");
        assert_ne!(other, uid);
        assert_eq!(insert(&mut conn, &trust).await?, None);
        Ok(())
    }

    #[tokio::test]
    async fn a_find_knows_the_programme_by_owner_and_id_locked_or_not() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let bas = Owner::Site(site("BAS"));
        let uid = insert(
            &mut conn,
            &new(bas.clone(), "w", pb::ProgrammeKind::WardProgramme),
        )
        .await?
        .expect("inserted");
        for lock in [false, true] {
            let found = find(&mut conn, &bas, "w", lock).await?.expect("found");
            assert_eq!((found.uid, found.site.as_deref()), (uid, Some("BAS")));
            assert_eq!((found.kind.as_str(), found.revision), ("ward_programme", 1));
            assert!(find(&mut conn, &Owner::Trust, "w", lock).await?.is_none());
        }
        assert_eq!(
            uid_and_cohort(&mut conn, &bas, "w").await?,
            Some((uid, None))
        );
        assert_eq!(uid_and_cohort(&mut conn, &bas, "x").await?, None);
        Ok(())
    }

    #[tokio::test]
    async fn a_list_keeps_to_its_scope_and_kind_in_name_order_page_by_page() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        for (owner, id) in [
            (Some("SOU"), "b"),
            (Some("BAS"), "b"),
            (None, "t"),
            (Some("BAS"), "a"),
            (Some("BRM"), "a"),
        ] {
            let owner = owner.map_or(Owner::Trust, |s| Owner::Site(site(s)));
            insert(&mut conn, &new(owner, id, pb::ProgrammeKind::Thematic)).await?;
        }
        let ward = new(
            Owner::Site(site("BRM")),
            "w",
            pb::ProgrammeKind::WardProgramme,
        );
        insert(&mut conn, &ward).await?;
        let all = everything()?;
        let (trust, _) = list(&mut conn, scope(true, None), None, &all).await?;
        assert_eq!(names(&trust), ["trust/programmes/t"]);
        let (bas, _) = list(&mut conn, scope(false, Some(&["BAS"])), None, &all).await?;
        assert_eq!(
            names(&bas),
            ["sites/BAS/programmes/a", "sites/BAS/programmes/b"]
        );
        let (two, _) = list(&mut conn, scope(false, Some(&["BAS", "SOU"])), None, &all).await?;
        assert_eq!(
            names(&two),
            [
                "sites/BAS/programmes/a",
                "sites/BAS/programmes/b",
                "sites/SOU/programmes/b"
            ]
        );
        let (wards, _) = list(&mut conn, scope(false, None), Some("ward_programme"), &all).await?;
        assert_eq!(names(&wards), ["sites/BRM/programmes/w"]);
        // Every site's, none of the trust's: each once, in order, two a page.
        let paged = pages(2, async |page| {
            list(&mut conn, scope(false, None), None, &page).await
        })
        .await?;
        let paged: Vec<Vec<&str>> = paged.iter().map(|p| names(p)).collect();
        assert_eq!(
            paged,
            [
                vec!["sites/BAS/programmes/a", "sites/BAS/programmes/b"],
                vec!["sites/BRM/programmes/a", "sites/BRM/programmes/w"],
                vec!["sites/SOU/programmes/b"],
            ]
        );
        Ok(())
    }
}
