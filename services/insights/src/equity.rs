//! ListEquityOpportunities: QMS metrics whose health-inequality gap is widening, over the
//! measurements the caller's sites may see, read as the metrics service reads it (the
//! shared [`qi_spc::gaps`]), each with the live projects that measure it and their
//! co-production as recorded.

use std::collections::HashMap;

use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error};
use qi_proto::insights as pb;
use qi_proto::metrics as mpb;
use qi_proto::projects as ppb;
use qi_spc::gaps::GapTrend;

use crate::InsightsApi;
use crate::coverage::parent_sites;
use crate::readings::{Part, Series, dimension_code, in_scope};

/// Answers ListEquityOpportunities.
pub(crate) async fn list(
    api: &InsightsApi,
    ctx: AccessContext,
    req: pb::ListEquityOpportunitiesRequest,
) -> Result<pb::ListEquityOpportunitiesResponse, Error> {
    let pb::ListEquityOpportunitiesRequest {
        parent,
        page_size,
        page_token,
    } = req;
    let sites = parent_sites(api, &ctx, &parent)?;
    let page = Page::parse(page_size, &page_token, &parent)?;
    let after = page.after_key(0).unwrap_or_default().to_owned();

    let mut tx = qi_platform::db::begin(&api.pool).await?;
    // The trust's QMS metrics and those of the sites in scope, recorded by some dimension.
    let candidates: Vec<String> = sqlx::query_scalar!(
        "SELECT name FROM metric
         WHERE kind = $1 AND cardinality(dimensions) > 0 AND name > $2 ORDER BY name",
        mpb::MetricKind::Qms as i32,
        after,
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .filter(|m| in_scope(m, &sites))
    .collect();
    let metrics = crate::readings::metrics(&mut tx, &candidates).await?;
    let series = Series::read(&mut tx, &candidates, Some(&sites), false).await?;
    let mut widening: Vec<pb::EquityOpportunity> = Vec::new();
    for name in &candidates {
        let Some(metric) = metrics.get(name) else {
            continue;
        };
        let gaps: Vec<pb::WideningGap> = metric
            .dimensions
            .iter()
            .filter_map(|d| {
                let g = series.gap(metric, Part::Seen, *d);
                let (period, latest) = g.latest?;
                (g.trend == GapTrend::Widening).then(|| pb::WideningGap {
                    dimension: dimension_code(*d) as i32,
                    latest_gap: latest,
                    mean_gap: g.mean,
                    latest_period: Some(qi_platform::convert::date(period)),
                    period_count: i32::try_from(g.periods).unwrap_or(i32::MAX),
                })
            })
            .collect();
        if !gaps.is_empty() {
            widening.push(pb::EquityOpportunity {
                metric: name.clone(),
                display_name: metric.display_name.clone(),
                gaps,
                ..Default::default()
            });
        }
        if widening.len() > page.size {
            break;
        }
    }

    // The live projects in scope measuring them.
    let names: Vec<String> = widening.iter().map(|o| o.metric.clone()).collect();
    let live = [
        ppb::ProjectState::Scoping as i32,
        ppb::ProjectState::InProgress as i32,
    ];
    let rows = sqlx::query!(
        "SELECT DISTINCT m.metric, p.name, p.title, p.state, p.patient_involvement,
                p.patient_partners
         FROM measure m JOIN project p ON p.name = m.project
         WHERE m.metric = ANY($1) AND p.state = ANY($2) AND p.sites && $3
         ORDER BY p.name",
        &names,
        &live,
        &sites,
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut by_metric: HashMap<String, Vec<pb::EquityProject>> = HashMap::new();
    for r in rows {
        by_metric
            .entry(r.metric)
            .or_default()
            .push(pb::EquityProject {
                project: r.name,
                title: r.title,
                state: r.state,
                patient_involvement: r.patient_involvement,
                patient_partner_count: r.patient_partners,
            });
    }
    for o in &mut widening {
        o.projects = by_metric.remove(&o.metric).unwrap_or_default();
        if o.projects.is_empty() {
            o.flags.push(pb::EquityFlag::WideningGapNoProject as i32);
        }
        if o.projects.iter().any(|p| p.patient_partner_count == 0) {
            o.flags
                .push(pb::EquityFlag::ProjectWithoutPatientPartners as i32);
        }
    }
    let (opportunities, next_page_token) = page.finish(widening, |o| vec![o.metric.clone()]);
    Ok(pb::ListEquityOpportunitiesResponse {
        opportunities,
        next_page_token,
    })
}
