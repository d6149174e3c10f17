//! ListCapabilityCoverage: where the trust's improvement capability is, and where it is
//! missing. Every row is within one site (a site, or a ward, department or staff group of
//! it), so a one-site caller's rows are its own sites' whole, with no trust total beside
//! them to subtract from.

use std::collections::{BTreeMap, HashMap};

use qi_platform::names::{ListParent, Owner, OwnerAccess as _};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error};
use qi_proto::insights as pb;
use qi_proto::metrics as mpb;
use qi_proto::projects as ppb;

use crate::InsightsApi;
use crate::projection::site_of;
use crate::readings::{Part, Series, in_scope};

/// The projects that count as live.
const LIVE: [ppb::ProjectState; 2] = [ppb::ProjectState::Scoping, ppb::ProjectState::InProgress];

/// A row's key.
type Key = (String, String);

/// Answers ListCapabilityCoverage.
pub(crate) async fn list(
    api: &InsightsApi,
    ctx: AccessContext,
    req: pb::ListCapabilityCoverageRequest,
) -> Result<pb::ListCapabilityCoverageResponse, Error> {
    let pb::ListCapabilityCoverageRequest {
        parent,
        group_by,
        page_size,
        page_token,
    } = req;
    let sites = parent_sites(api, &ctx, &parent)?;
    let grouping = match pb::CoverageGrouping::try_from(group_by) {
        Ok(pb::CoverageGrouping::Unspecified | pb::CoverageGrouping::Site) => "site",
        Ok(pb::CoverageGrouping::Ward) => "ward",
        Ok(pb::CoverageGrouping::Department) => "department",
        Ok(pb::CoverageGrouping::StaffGroup) => "staff_group",
        Err(_) => {
            return Err(Error::invalid(
                "group_by",
                "choose SITE, WARD, DEPARTMENT or STAFF_GROUP",
            ));
        }
    };
    let page = Page::parse(page_size, &page_token, &format!("{parent}|{grouping}"))?;
    let today = qi_platform::calendar::today();
    let live: Vec<i32> = LIVE.iter().map(|s| *s as i32).collect();

    let mut tx = qi_platform::db::begin(&api.pool).await?;
    // The staff of each row: headcount, trained, and trained per course.
    let mut rows: BTreeMap<Key, pb::CapabilityCoverage> = BTreeMap::new();
    if grouping == "site" {
        for site in &sites {
            rows.insert((site.clone(), site.clone()), row(site, site));
        }
    }
    for r in sqlx::query!(
        r#"WITH g AS (
               SELECT s.name, s.site,
                      CASE $2 WHEN 'ward' THEN s.ward WHEN 'department' THEN s.department
                              WHEN 'staff_group' THEN s.staff_group ELSE s.site END AS key
               FROM staff s WHERE s.active AND s.site = ANY($1))
           SELECT g.site AS "site!", g.key AS "key!", count(*) AS "headcount!",
                  count(*) FILTER (WHERE EXISTS (
                      SELECT 1 FROM completion c
                      WHERE c.staff = g.name AND (c.expiry_date IS NULL OR c.expiry_date >= $3)))
                      AS "trained!"
           FROM g WHERE g.key <> '' GROUP BY 1, 2"#,
        &sites,
        grouping,
        today,
    )
    .fetch_all(&mut *tx)
    .await?
    {
        let entry = rows
            .entry((r.site.clone(), r.key.clone()))
            .or_insert_with(|| row(&r.site, &r.key));
        entry.active_headcount = count(r.headcount);
        entry.trained = count(r.trained);
    }
    for r in sqlx::query!(
        r#"WITH g AS (
               SELECT s.name, s.site,
                      CASE $2 WHEN 'ward' THEN s.ward WHEN 'department' THEN s.department
                              WHEN 'staff_group' THEN s.staff_group ELSE s.site END AS key
               FROM staff s WHERE s.active AND s.site = ANY($1))
           SELECT g.site AS "site!", g.key AS "key!", c.course, count(DISTINCT g.name) AS "n!"
           FROM g JOIN completion c
                ON c.staff = g.name AND (c.expiry_date IS NULL OR c.expiry_date >= $3)
           WHERE g.key <> '' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"#,
        &sites,
        grouping,
        today,
    )
    .fetch_all(&mut *tx)
    .await?
    {
        if let Some(entry) = rows.get_mut(&(r.site, r.key)) {
            let trained = count(r.n);
            let share = f64::from(trained) / f64::from(entry.active_headcount.max(1));
            entry.courses.push(pb::CourseCoverage {
                course: r.course,
                trained,
                share,
            });
        }
    }

    // Live projects the caller may read.
    let live_projects: Vec<(Key, i64)> = match grouping {
        "site" => sqlx::query!(
            r#"SELECT site AS "site!", count(*) AS "n!"
               FROM project, unnest(sites) AS site
               WHERE state = ANY($2) AND site = ANY($1) GROUP BY 1"#,
            &sites,
            &live,
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|r| ((r.site.clone(), r.site), r.n))
        .collect(),
        "ward" => sqlx::query!(
            r#"SELECT ward AS "ward!", count(*) AS "n!"
               FROM project, unnest(wards) AS ward
               WHERE state = ANY($2) AND sites && $1 GROUP BY 1"#,
            &sites,
            &live,
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|r| ((site_of(&r.ward).to_owned(), r.ward), r.n))
        .collect(),
        _ => sqlx::query!(
            r#"WITH g AS (
                   SELECT s.name, s.site,
                          CASE $2 WHEN 'department' THEN s.department ELSE s.staff_group END
                              AS key
                   FROM staff s WHERE s.active AND s.site = ANY($1))
               SELECT g.site AS "site!", g.key AS "key!", count(DISTINCT p.name) AS "n!"
               FROM g JOIN team_member t ON t.staff = g.name
                      JOIN project p ON p.name = t.project
               WHERE p.state = ANY($3) AND p.sites && $1 AND g.key <> ''
               GROUP BY 1, 2"#,
            &sites,
            grouping,
            &live,
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|r| ((r.site, r.key), r.n))
        .collect(),
    };
    for (key, n) in live_projects {
        if let Some(entry) = rows.get_mut(&key) {
            entry.live_projects = count(n);
        }
    }

    // The page, then the SPC readings its rows need.
    let after = (page.after_key(0), page.after_key(1));
    let mut paged: Vec<pb::CapabilityCoverage> = rows
        .into_values()
        .filter(|r| match after {
            (Some(site), Some(key)) => (r.site.as_str(), r.key.as_str()) > (site, key),
            _ => true,
        })
        .take(page.size + 1)
        .collect();
    if grouping == "site" || grouping == "ward" {
        let qms: Vec<String> = sqlx::query_scalar!(
            "SELECT name FROM metric WHERE kind = $1 ORDER BY name",
            mpb::MetricKind::Qms as i32,
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .filter(|m| in_scope(m, &sites))
        .collect();
        let metrics = crate::readings::metrics(&mut tx, &qms).await?;
        let series = Series::read(&mut tx, &qms, Some(&sites), true).await?;
        let mut concern: HashMap<String, i32> = HashMap::new();
        for r in &paged {
            let part = if grouping == "site" {
                Part::Site(&r.site)
            } else {
                Part::Ward(&r.key)
            };
            let n = metrics
                .values()
                .filter(|m| series.reading(m, part).reading == pb::SpcReading::Concern)
                .count();
            concern.insert(r.key.clone(), i32::try_from(n).unwrap_or(i32::MAX));
        }
        for r in &mut paged {
            r.metrics_in_concern = concern.get(&r.key).copied().unwrap_or(0);
        }
    }
    tx.commit().await?;
    for r in &mut paged {
        r.improvement_desert = r.metrics_in_concern > 0 && r.trained == 0 && r.live_projects == 0;
    }
    let (rows, next_page_token) = page.finish(paged, |r| vec![r.site.clone(), r.key.clone()]);
    Ok(pb::ListCapabilityCoverageResponse {
        rows,
        next_page_token,
    })
}

/// The site codes a List's `parent` (`sites/{site}` or `sites/-`) covers for the caller:
/// the one site (another site's is refused), or every site the caller holds.
pub(crate) fn parent_sites(
    api: &InsightsApi,
    ctx: &AccessContext,
    parent: &str,
) -> Result<Vec<String>, Error> {
    match ListParent::parse("parent", parent)? {
        ListParent::Owner(owner @ Owner::Site(_)) => {
            owner.check_read(ctx)?;
            owner.check_known("parent", &api.sites)?;
            Ok(vec![owner.site_column().unwrap_or_default().to_owned()])
        }
        ListParent::Owner(Owner::Trust) => Err(Error::invalid(
            "parent",
            "these answers are by site: `sites/{site}` or `sites/-`",
        )),
        ListParent::AllSites => Ok(match ctx.sites.sql_filter() {
            Some(held) => held,
            None => api.sites.iter().map(|s| s.as_str().to_owned()).collect(),
        }),
    }
}

fn row(site: &str, key: &str) -> pb::CapabilityCoverage {
    pb::CapabilityCoverage {
        site: site.to_owned(),
        key: key.to_owned(),
        ..Default::default()
    }
}

fn count(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
