//! ListProjectsAtRisk: live projects (scoping or in progress) the caller may read, each with
//! what puts it at risk, from what the feeds brought together: the HR sync's leavers and
//! movers, the register, progress scores, outcome measures' data and PDSA cycles.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{Datelike as _, Days, NaiveDate};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error};
use qi_proto::insights as pb;
use qi_proto::metrics as mpb;
use qi_proto::projects as ppb;

use crate::InsightsApi;
use crate::coverage::parent_sites;
use crate::projection::{LIST_SEPARATOR, site_of};

/// A live project in scope.
struct Live {
    name: String,
    title: String,
    state: i32,
    sites: Vec<String>,
    wards: Vec<String>,
    start_date: Option<NaiveDate>,
}

/// Reads a bounded whole-number setting: 0 is the default.
fn setting(field: &str, given: i32, default: i64, max: i64) -> Result<i64, Error> {
    match i64::from(given) {
        0 => Ok(default),
        n if (1..=max).contains(&n) => Ok(n),
        n => Err(Error::invalid(
            field,
            format!("must be 1 to {max} (got {n}), or 0 for {default}"),
        )),
    }
}

/// How many whole periods of `frequency` lie after the one holding `last` and before the
/// one holding `today`.
fn periods_between(frequency: i32, last: NaiveDate, today: NaiveDate) -> i64 {
    let months = |d: NaiveDate| i64::from(d.year()) * 12 + i64::from(d.month0());
    let monday = |d: NaiveDate| d - Days::new(u64::from(d.weekday().num_days_from_monday()));
    let apart = match mpb::MetricFrequency::try_from(frequency) {
        Ok(mpb::MetricFrequency::Day) => (today - last).num_days(),
        Ok(mpb::MetricFrequency::Week) => (monday(today) - monday(last)).num_days() / 7,
        Ok(mpb::MetricFrequency::Quarter) => months(today) / 3 - months(last) / 3,
        Ok(mpb::MetricFrequency::Month | mpb::MetricFrequency::Unspecified) | Err(_) => {
            months(today) - months(last)
        }
    };
    (apart - 1).max(0)
}

/// Answers ListProjectsAtRisk.
pub(crate) async fn list(
    api: &InsightsApi,
    ctx: AccessContext,
    req: pb::ListProjectsAtRiskRequest,
) -> Result<pb::ListProjectsAtRiskResponse, Error> {
    let pb::ListProjectsAtRiskRequest {
        parent,
        stale_score_days,
        silent_periods,
        page_size,
        page_token,
    } = req;
    let sites = parent_sites(api, &ctx, &parent)?;
    let stale = setting("stale_score_days", stale_score_days, 90, 3650)?;
    let silent = setting("silent_periods", silent_periods, 3, 120)?;
    let page = Page::parse(
        page_size,
        &page_token,
        &format!("{parent}|{stale}|{silent}"),
    )?;
    let after = page.after_key(0).unwrap_or_default().to_owned();
    let today = qi_platform::calendar::today();
    let live = [
        ppb::ProjectState::Scoping as i32,
        ppb::ProjectState::InProgress as i32,
    ];

    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let projects = sqlx::query_as!(
        Live,
        "SELECT name, title, state, sites, wards, start_date FROM project
         WHERE state = ANY($1) AND sites && $2 AND name > $3 ORDER BY name",
        &live,
        &sites,
        after,
    )
    .fetch_all(&mut *tx)
    .await?;
    let names: Vec<String> = projects.iter().map(|p| p.name.clone()).collect();
    let mut reasons: BTreeMap<String, Vec<pb::RiskReason>> = BTreeMap::new();
    let mut say = |project: &str, kind: pb::RiskKind, detail: String| {
        reasons
            .entry(project.to_owned())
            .or_default()
            .push(pb::RiskReason {
                kind: kind as i32,
                detail,
            });
    };

    // The lead, as the HR sync last described them.
    let leads = sqlx::query!(
        "SELECT t.project, t.staff, s.active AS \"active?\", s.site AS \"site?\"
         FROM team_member t LEFT JOIN staff s ON s.name = t.staff
         WHERE t.project = ANY($1) AND t.role = $2",
        &names,
        ppb::TeamRole::Lead as i32,
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut lead_of: HashMap<String, String> = HashMap::new();
    let by_name: HashMap<&str, &Live> = projects.iter().map(|p| (p.name.as_str(), p)).collect();
    for l in leads {
        let Some(p) = by_name.get(l.project.as_str()) else {
            continue;
        };
        match (l.active, l.site) {
            (Some(false), _) => say(
                &p.name,
                pb::RiskKind::LeadLeft,
                format!("{} left the trust", l.staff),
            ),
            (Some(true), Some(site)) if !p.sites.contains(&site) => say(
                &p.name,
                pb::RiskKind::LeadMoved,
                format!("{} no longer works at {}", l.staff, p.sites.join(" or ")),
            ),
            _ => {}
        }
        lead_of.insert(l.project, l.staff);
    }

    // Someone on the team still trained.
    let trained: HashSet<String> = sqlx::query_scalar!(
        "SELECT DISTINCT t.project FROM team_member t
         JOIN staff s ON s.name = t.staff AND s.active
         JOIN completion c ON c.staff = t.staff
              AND (c.expiry_date IS NULL OR c.expiry_date >= $2)
         WHERE t.project = ANY($1)",
        &names,
        today,
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    for p in &projects {
        if !trained.contains(&p.name) {
            say(
                &p.name,
                pb::RiskKind::NoTrainedMember,
                "no active member of the team has an unexpired completion".into(),
            );
        }
    }

    // News of progress.
    let scored: HashMap<String, NaiveDate> = sqlx::query!(
        "SELECT project, max(assessed_date) AS \"last!\" FROM progress_score
         WHERE project = ANY($1) GROUP BY project",
        &names,
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.project, r.last))
    .collect();
    let horizon = today - Days::new(u64::try_from(stale).unwrap_or(90));
    for p in &projects {
        match (scored.get(&p.name), p.start_date) {
            (Some(last), _) if *last < horizon => say(
                &p.name,
                pb::RiskKind::StaleProgressScore,
                format!(
                    "no progress score since {last} ({} days)",
                    (today - *last).num_days()
                ),
            ),
            (None, Some(start)) if start < horizon => say(
                &p.name,
                pb::RiskKind::StaleProgressScore,
                format!("no progress score since it started on {start}"),
            ),
            _ => {}
        }
    }

    // Outcome measures with no recent data the caller may see.
    let measures = sqlx::query!(
        "SELECT DISTINCT m.project, m.metric, mt.frequency
         FROM measure m JOIN metric mt ON mt.name = m.metric
         WHERE m.project = ANY($1) AND m.kind = $2 ORDER BY 1, 2",
        &names,
        ppb::MeasureKind::Outcome as i32,
    )
    .fetch_all(&mut *tx)
    .await?;
    let metrics: Vec<String> = measures.iter().map(|m| m.metric.clone()).collect();
    let seen = ctx.sites.sql_filter();
    let latest: HashMap<String, NaiveDate> = sqlx::query!(
        "SELECT metric, max(period) AS \"last!\" FROM measurement
         WHERE metric = ANY($1) AND ($2::text[] IS NULL OR site = '' OR site = ANY($2))
         GROUP BY metric",
        &metrics,
        seen.as_deref(),
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.metric, r.last))
    .collect();
    for m in &measures {
        let readable = match site_of(&m.metric) {
            "" => true,
            code => seen.as_ref().is_none_or(|s| s.iter().any(|x| x == code)),
        };
        if !readable {
            continue;
        }
        match latest.get(&m.metric) {
            None => say(
                &m.project,
                pb::RiskKind::OutcomeWithoutData,
                format!("{} has no data", m.metric),
            ),
            Some(last) => {
                let missing = periods_between(m.frequency, *last, today);
                if missing >= silent {
                    say(
                        &m.project,
                        pb::RiskKind::OutcomeWithoutData,
                        format!(
                            "{} has had no data for {missing} periods since {last}",
                            m.metric
                        ),
                    );
                }
            }
        }
    }

    // The last PDSA cycle, undecided past its planned end.
    for c in sqlx::query!(
        "SELECT DISTINCT ON (project) project, number, end_date, decision FROM pdsa_cycle
         WHERE project = ANY($1) ORDER BY project, number DESC",
        &names,
    )
    .fetch_all(&mut *tx)
    .await?
    {
        if c.decision == ppb::PdsaDecision::Unspecified as i32
            && let Some(end) = c.end_date
            && end < today
        {
            say(
                &c.project,
                pb::RiskKind::PdsaUndecided,
                format!(
                    "{}/pdsaCycles/{} was to end on {end} and is undecided",
                    c.project, c.number
                ),
            );
        }
    }

    // The page, then who could lead each of its projects.
    let mut at_risk: Vec<pb::ProjectAtRisk> = projects
        .iter()
        .filter_map(|p| {
            let reasons = reasons.remove(&p.name)?;
            Some(pb::ProjectAtRisk {
                project: p.name.clone(),
                title: p.title.clone(),
                state: p.state,
                lead: lead_of.get(&p.name).cloned().unwrap_or_default(),
                reasons,
                suggested_leads: Vec::new(),
            })
        })
        .take(page.size + 1)
        .collect();
    // A replacement is suggested where the lead is gone, not for every worry: one query
    // for the page, each project's wards joined into one text.
    let leaderless: Vec<(&str, String, &str)> = at_risk
        .iter()
        .take(page.size)
        .filter(|r| {
            r.lead.is_empty()
                || r.reasons.iter().any(|x| {
                    x.kind == pb::RiskKind::LeadLeft as i32
                        || x.kind == pb::RiskKind::LeadMoved as i32
                })
        })
        .filter_map(|r| {
            let p = by_name.get(r.project.as_str())?;
            (!p.wards.is_empty()).then(|| {
                (
                    r.project.as_str(),
                    p.wards.join(LIST_SEPARATOR),
                    r.lead.as_str(),
                )
            })
        })
        .collect();
    let project: Vec<&str> = leaderless.iter().map(|l| l.0).collect();
    let wards: Vec<&str> = leaderless.iter().map(|l| l.1.as_str()).collect();
    let lead: Vec<&str> = leaderless.iter().map(|l| l.2).collect();
    let held = ctx.sites.sql_filter();
    let mut suggested: HashMap<String, Vec<pb::SuggestedLead>> = HashMap::new();
    for s in sqlx::query!(
        r#"SELECT u.project AS "project!", s.name, s.display_name, s.ward
           FROM UNNEST($1::text[], $2::text[], $3::text[]) AS u(project, wards, lead)
           CROSS JOIN LATERAL (
               SELECT s.name, s.display_name, s.ward FROM staff s
               WHERE s.active AND s.ward = ANY(string_to_array(u.wards, chr(31)))
                 AND s.name <> u.lead
                 AND ($4::text[] IS NULL OR s.site = ANY($4))
                 AND EXISTS (SELECT 1 FROM completion c WHERE c.staff = s.name
                             AND (c.expiry_date IS NULL OR c.expiry_date >= $5))
               ORDER BY s.name LIMIT 5) s
           ORDER BY 1, 2"#,
        &project as &[&str],
        &wards as &[&str],
        &lead as &[&str],
        held.as_deref(),
        today,
    )
    .fetch_all(&mut *tx)
    .await?
    {
        suggested
            .entry(s.project)
            .or_default()
            .push(pb::SuggestedLead {
                staff: s.name,
                display_name: s.display_name,
                ward: s.ward,
            });
    }
    for r in &mut at_risk {
        r.suggested_leads = suggested.remove(&r.project).unwrap_or_default();
    }
    tx.commit().await?;
    let (projects, next_page_token) = page.finish(at_risk, |p| vec![p.project.clone()]);
    Ok(pb::ListProjectsAtRiskResponse {
        projects,
        next_page_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn the_periods_without_data_leave_out_the_last_recorded_and_the_current_one() {
        let month = mpb::MetricFrequency::Month as i32;
        assert_eq!(periods_between(month, d(2026, 8, 1), d(2026, 12, 7)), 3);
        assert_eq!(periods_between(month, d(2026, 11, 1), d(2026, 12, 7)), 0);
        assert_eq!(periods_between(month, d(2025, 12, 1), d(2026, 1, 2)), 0);
        let quarter = mpb::MetricFrequency::Quarter as i32;
        assert_eq!(periods_between(quarter, d(2026, 1, 1), d(2026, 12, 7)), 2);
        let week = mpb::MetricFrequency::Week as i32;
        // Monday 30 November and Monday 16 November: one whole week between.
        assert_eq!(periods_between(week, d(2026, 11, 16), d(2026, 12, 1)), 1);
        let day = mpb::MetricFrequency::Day as i32;
        assert_eq!(periods_between(day, d(2026, 12, 1), d(2026, 12, 7)), 5);
        assert_eq!(periods_between(day, d(2026, 12, 9), d(2026, 12, 7)), 0);
    }
}
