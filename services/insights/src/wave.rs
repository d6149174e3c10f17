//! SuggestNextWave: which wards a ward programme should take next, site by site. The wards
//! of the caller's sites not enrolled (or withdrawn) are ranked by trained staff on the
//! ward, then open ideas from it, then its metrics in concern, then its metrics whose gap
//! is widening, then by name: capability first, because a ward with trained staff can run
//! its diagnostic, then demand and need.

use std::collections::{BTreeMap, HashMap, HashSet};

use qi_platform::names::{Owner, parse_accessible};
use qi_platform::{AccessContext, Error};
use qi_proto::insights as pb;
use qi_proto::projects as ppb;
use qi_spc::gaps::GapTrend;

use crate::InsightsApi;
use crate::readings::{Part, Series};

/// The most wards a site may be asked to propose.
const MAX_WARDS_PER_SITE: i32 = 50;

/// Answers SuggestNextWave.
pub(crate) async fn suggest(
    api: &InsightsApi,
    ctx: AccessContext,
    req: pb::SuggestNextWaveRequest,
) -> Result<pb::SuggestNextWaveResponse, Error> {
    let pb::SuggestNextWaveRequest {
        programme,
        wards_per_site,
    } = req;
    let (owner, _) = parse_accessible(&ctx, "programme", &programme, "programmes", false)?;
    if let Some(n) = wards_per_site
        && !(0..=MAX_WARDS_PER_SITE).contains(&n)
    {
        return Err(Error::invalid(
            "wards_per_site",
            format!("must be 0 to {MAX_WARDS_PER_SITE} (got {n}), or unset for the plan's"),
        ));
    }
    // A site's programme covers its own wards; a trust programme every site the caller holds.
    let sites: Vec<String> = match &owner {
        Owner::Site(s) => vec![s.to_string()],
        Owner::Trust => match ctx.sites.sql_filter() {
            Some(held) => held,
            None => api.sites.iter().map(|s| s.as_str().to_owned()).collect(),
        },
    };
    let today = qi_platform::calendar::today();

    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let Some(plan) = sqlx::query!(
        "SELECT kind, wards_per_wave FROM programme WHERE name = $1",
        programme,
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Err(Error::not_found(&programme));
    };
    if plan.kind != ppb::ProgrammeKind::WardProgramme as i32 {
        return Err(Error::FailedPrecondition {
            reason: "NOT_A_WARD_PROGRAMME",
            message: format!("programme: {programme} is not a ward programme"),
        });
    }
    let per_site = usize::try_from(wards_per_site.unwrap_or(plan.wards_per_wave)).unwrap_or(0);
    let next = sqlx::query!(
        "SELECT number, start_date FROM wave
         WHERE programme = $1 AND start_date >= $2 ORDER BY start_date, number LIMIT 1",
        programme,
        today,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let enrolled: HashSet<String> = sqlx::query_scalar!(
        "SELECT ward FROM ward_enrolment WHERE programme = $1 AND stage <> $2",
        programme,
        ppb::WardStage::Withdrawn as i32,
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let wards = sqlx::query!(
        "SELECT name, site, display_name FROM ward WHERE site = ANY($1) ORDER BY site, name",
        &sites,
    )
    .fetch_all(&mut *tx)
    .await?;
    let trained: HashMap<String, i64> = sqlx::query!(
        r#"SELECT s.ward, count(*) AS "n!" FROM staff s
           WHERE s.active AND s.site = ANY($1) AND s.ward <> ''
             AND EXISTS (SELECT 1 FROM completion c
                         WHERE c.staff = s.name
                           AND (c.expiry_date IS NULL OR c.expiry_date >= $2))
           GROUP BY s.ward"#,
        &sites,
        today,
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.ward, r.n))
    .collect();
    let open = [
        ppb::IdeaState::Submitted as i32,
        ppb::IdeaState::UnderReview as i32,
    ];
    let ideas: HashMap<String, i64> = sqlx::query!(
        r#"SELECT ward, count(*) AS "n!" FROM idea
           WHERE ward <> '' AND state = ANY($1) AND split_part(ward, '/', 2) = ANY($2)
           GROUP BY ward"#,
        &open,
        &sites,
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.ward, r.n))
    .collect();
    // Every metric with measurements on the sites' wards, charted per ward.
    let on_wards: Vec<String> = sqlx::query_scalar!(
        "SELECT DISTINCT metric FROM measurement
         WHERE ward <> '' AND split_part(ward, '/', 2) = ANY($1) ORDER BY metric",
        &sites,
    )
    .fetch_all(&mut *tx)
    .await?;
    let metrics = crate::readings::metrics(&mut tx, &on_wards).await?;
    let series = Series::read(&mut tx, &on_wards, Some(&sites), true).await?;
    tx.commit().await?;

    let mut by_site: BTreeMap<String, pb::SiteWave> = sites
        .iter()
        .map(|s| {
            let site = pb::SiteWave {
                site: format!("sites/{s}"),
                ..Default::default()
            };
            (s.clone(), site)
        })
        .collect();
    for w in wards {
        let Some(site) = by_site.get_mut(&w.site) else {
            continue;
        };
        if enrolled.contains(&w.name) {
            site.enrolled_wards += 1;
            continue;
        }
        let mut c = pb::WardCandidate {
            trained_staff: count(trained.get(&w.name).copied().unwrap_or(0)),
            open_ideas: count(ideas.get(&w.name).copied().unwrap_or(0)),
            ward: w.name,
            display_name: w.display_name,
            ..Default::default()
        };
        for name in &on_wards {
            let Some(metric) = metrics.get(name) else {
                continue;
            };
            let part = Part::Ward(&c.ward);
            if series.reading(metric, part).reading == pb::SpcReading::Concern {
                c.metrics_in_concern.push(name.clone());
            }
            if metric
                .dimensions
                .iter()
                .any(|d| series.gap(metric, part, *d).trend == GapTrend::Widening)
            {
                c.widening_gaps.push(name.clone());
            }
        }
        c.reasons = reasons(&c);
        site.wards.push(c);
    }
    for site in by_site.values_mut() {
        site.wards.sort_by(|a, b| {
            (b.trained_staff, b.open_ideas)
                .cmp(&(a.trained_staff, a.open_ideas))
                .then(b.metrics_in_concern.len().cmp(&a.metrics_in_concern.len()))
                .then(b.widening_gaps.len().cmp(&a.widening_gaps.len()))
                .then(a.ward.cmp(&b.ward))
        });
        for (i, w) in site.wards.iter_mut().enumerate() {
            w.rank = i32::try_from(i + 1).unwrap_or(i32::MAX);
            w.proposed = i < per_site;
        }
    }
    Ok(pb::SuggestNextWaveResponse {
        programme,
        next_wave: next.as_ref().map_or(0, |n| n.number),
        next_wave_start_date: next.map(|n| qi_platform::convert::date(n.start_date)),
        sites: by_site.into_values().collect(),
    })
}

/// A candidate's reasons, one line each that holds.
fn reasons(c: &pb::WardCandidate) -> Vec<String> {
    let mut out = Vec::new();
    if c.trained_staff > 0 {
        out.push(format!("{} trained staff on the ward", c.trained_staff));
    }
    if c.open_ideas > 0 {
        out.push(match c.open_ideas {
            1 => "1 open idea from the ward".to_owned(),
            n => format!("{n} open ideas from the ward"),
        });
    }
    if !c.metrics_in_concern.is_empty() {
        out.push(format!("in concern: {}", c.metrics_in_concern.join(", ")));
    }
    if !c.widening_gaps.is_empty() {
        out.push(format!(
            "inequality gap widening: {}",
            c.widening_gaps.join(", ")
        ));
    }
    out
}

fn count(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
