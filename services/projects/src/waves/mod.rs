//! The waves of a ward programme (`{programme}/waves/{number}`), planned as N wards every
//! M months until an end date, and the programme's progress view: its wards by wave, site,
//! stage and rating. Lists and the progress view show a caller the wards of their own sites.

pub(crate) mod store;

use chrono::{Months, NaiveDate};
use qi_platform::calendar::today;
use qi_platform::changes::Kind;
use qi_platform::convert::{check_etag, int_in, required_date};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, Violations};
use qi_proto::projects as pb;

use crate::ProjectsApi;
use crate::programmes;
use crate::stored::Column;

/// The collection id of waves.
const WAVES: &str = "waves";
/// The most waves one plan may lay out.
pub(crate) const MAX_WAVES: usize = 200;

/// A validated wave plan.
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    first: NaiveDate,
    interval_months: i32,
    wards_per_wave: i32,
    per_site: bool,
    end: NaiveDate,
    target_wards: i32,
    reassessment_months: i32,
}

impl Plan {
    fn parse(p: &pb::WavePlan) -> Result<Plan, Error> {
        let pb::WavePlan {
            first_wave_date,
            interval_months,
            wards_per_wave,
            per_site,
            end_date,
            target_wards,
            reassessment_months,
        } = p;
        let mut v = Violations::new();
        let first =
            v.check(required_date("wave_plan.first_wave_date", first_wave_date.as_ref()).map(Some));
        let interval = v.check(int_in(
            "wave_plan.interval_months",
            *interval_months,
            1..=24,
        ));
        let size = v.check(int_in("wave_plan.wards_per_wave", *wards_per_wave, 1..=100));
        let end = v.check(required_date("wave_plan.end_date", end_date.as_ref()).map(Some));
        let target = v.check(int_in("wave_plan.target_wards", *target_wards, 0..=10_000));
        let reassess = if *reassessment_months == 0 {
            6
        } else {
            v.check(int_in(
                "wave_plan.reassessment_months",
                *reassessment_months,
                1..=60,
            ))
        };
        if let (Some(f), Some(e)) = (first, end)
            && e < f
        {
            v.add(
                "wave_plan.end_date",
                format!("{e} is before the first wave ({f})"),
            );
        }
        v.finish()?;
        let (Some(first), Some(end)) = (first, end) else {
            return Err(Error::invalid("wave_plan", "is incomplete"));
        };
        let plan = Plan {
            first,
            interval_months: interval,
            wards_per_wave: size,
            per_site: *per_site,
            end,
            target_wards: target,
            reassessment_months: reassess,
        };
        if plan.dates().len() > MAX_WAVES {
            return Err(Error::invalid(
                "wave_plan.end_date",
                format!("the plan would make more than {MAX_WAVES} waves"),
            ));
        }
        Ok(plan)
    }

    /// The waves' start dates: the first, then every interval, while not after the end.
    fn dates(&self) -> Vec<NaiveDate> {
        let step = self.interval_months.unsigned_abs();
        (0u32..)
            .map_while(|k| {
                self.first
                    .checked_add_months(Months::new(step * k))
                    .filter(|d| *d <= self.end)
            })
            .take(MAX_WAVES + 1)
            .collect()
    }
}

/// Lays out a ward programme's waves; the plan is fixed once wards join.
pub(crate) async fn plan(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::PlanWavesRequest,
) -> Result<pb::PlanWavesResponse, Error> {
    let pb::PlanWavesRequest {
        programme,
        wave_plan,
        etag,
    } = req;
    let plan = Plan::parse(&wave_plan.ok_or_else(|| Error::invalid("wave_plan", "is required"))?)?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let found = programmes::resolve(&mut tx, &ctx, "programme", &programme, true).await?;
    check_etag(&etag, found.revision, "the programme")?;
    found.require_ward_programme()?;
    let enrolled = store::enrolled(&mut tx, found.uid).await?;
    if enrolled > 0 {
        return Err(Error::FailedPrecondition {
            reason: "WARDS_ENROLLED",
            message: format!(
                "{}: {enrolled} wards are enrolled; the wave plan is fixed once wards join",
                found.name()?
            ),
        });
    }
    let planned_before = store::all(&mut tx, found.uid, None).await?.len();
    store::save_plan(&mut tx, found.uid, &plan).await?;
    let name = found.name()?;
    let waves = store::all(&mut tx, found.uid, ctx.sites.sql_filter()).await?;
    let programme = programmes::store::read(&mut tx, found.uid).await?;
    // The programme keeps the plan; its waves are laid out afresh. Both are read as the
    // programme is: its site's, or (trust-wide) everyone's.
    let sites = found.site.clone().map(|s| vec![s]);
    let kind = Kind::Updated;
    crate::feed::record(
        &mut tx,
        programmes::COLLECTION,
        &name,
        kind,
        sites.clone(),
        &programme,
    )
    .await?;
    let waves: Vec<pb::Wave> = waves.iter().map(|w| store::to_proto(&name, w)).collect();
    for wave in &waves {
        // Without the wards enrolled (none yet): that count depends on the caller's sites.
        let wave = pb::Wave {
            enrolled_count: 0,
            ..wave.clone()
        };
        let kind = if (wave.number as usize) <= planned_before {
            Kind::Updated
        } else {
            Kind::Created
        };
        crate::feed::record(&mut tx, WAVES, &wave.name, kind, sites.clone(), &wave).await?;
    }
    for gone in waves.len() + 1..=planned_before {
        let wave = format!("{name}/{WAVES}/{gone}");
        crate::feed::record_deleted(&mut tx, WAVES, &wave, sites.clone()).await?;
    }
    let resp = pb::PlanWavesResponse {
        programme: Some(programme),
        waves,
    };
    tx.commit().await?;
    Ok(resp)
}

/// Lists a programme's waves in order.
pub(crate) async fn list(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::ListWavesRequest,
) -> Result<pb::ListWavesResponse, Error> {
    let pb::ListWavesRequest {
        parent,
        page_size,
        page_token,
    } = req;
    let page = Page::parse(page_size, &page_token, &parent)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let found = programmes::resolve(&mut conn, &ctx, "parent", &parent, false).await?;
    let after: i32 = page.after_key(0).and_then(|k| k.parse().ok()).unwrap_or(0);
    let (rows, next_page_token) =
        store::list(&mut conn, found.uid, ctx.sites.sql_filter(), after, &page).await?;
    let name = found.name()?;
    Ok(pb::ListWavesResponse {
        waves: rows.iter().map(|w| store::to_proto(&name, w)).collect(),
        next_page_token,
    })
}

/// The progress of a ward programme: its waves, its wards by stage and rating in each wave
/// and site, and the way to its target.
pub(crate) async fn progress(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::GetWardProgrammeProgressRequest,
) -> Result<pb::GetWardProgrammeProgressResponse, Error> {
    let pb::GetWardProgrammeProgressRequest { programme } = req;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let found = programmes::resolve(&mut conn, &ctx, "programme", &programme, false).await?;
    found.require_ward_programme()?;
    let name = found.name()?;
    let waves = store::all(&mut conn, found.uid, ctx.sites.sql_filter()).await?;
    let cells = store::stage_counts(&mut conn, found.uid, ctx.sites.sql_filter()).await?;
    let trust_enrolled = store::enrolled_in_trust(&mut conn, found.uid).await?;
    let mut totals = pb::StageCounts::default();
    let mut progress: Vec<pb::WaveProgress> = waves
        .iter()
        .map(|w| {
            // The wave's own count is limited to the caller's sites, like the rest.
            let mut wave = store::to_proto(&name, w);
            wave.enrolled_count = 0;
            pb::WaveProgress {
                wave: Some(wave),
                sites: Vec::new(),
            }
        })
        .collect();
    for (wave, site, stage, rating, n) in cells {
        let n = i32::try_from(n).unwrap_or(i32::MAX);
        let stage = pb::WardStage::from_column(&stage)?;
        let rating = rating
            .as_deref()
            .map(pb::AccreditationRating::from_column)
            .transpose()?;
        let Some(wp) = progress
            .iter_mut()
            .find(|p| p.wave.as_ref().is_some_and(|w| w.number == wave))
        else {
            continue;
        };
        let site_name = format!("sites/{site}");
        let idx = match wp.sites.iter().position(|s| s.site == site_name) {
            Some(i) => i,
            None => {
                wp.sites.push(pb::SiteStageCounts {
                    site: site_name,
                    counts: Some(pb::StageCounts::default()),
                });
                wp.sites.len() - 1
            }
        };
        let counts = wp.sites[idx].counts.get_or_insert_with(Default::default);
        for c in [counts, &mut totals] {
            add_stage(c, stage, rating, n);
        }
        if stage != pb::WardStage::Withdrawn
            && let Some(w) = wp.wave.as_mut()
        {
            w.enrolled_count += n;
        }
    }
    let today = today();
    let started = waves.iter().filter(|w| w.start_date <= today).count();
    let planned = waves.len();
    let to_i32 = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let sites = match ctx.sites.sql_filter() {
        Some(s) => s,
        None => api.sites.iter().map(ToString::to_string).collect(),
    };
    Ok(pb::GetWardProgrammeProgressResponse {
        programme: Some(programmes::store::read(&mut conn, found.uid).await?),
        waves: progress,
        waves_planned: to_i32(planned),
        waves_started: to_i32(started),
        waves_remaining: to_i32(planned - started),
        wards_enrolled: totals.enrolled,
        target_wards: found.target_wards,
        wards_to_target: (i64::from(found.target_wards) - trust_enrolled).max(0) as i32,
        totals: Some(totals),
        sites: sites.into_iter().map(|s| format!("sites/{s}")).collect(),
    })
}

fn add_stage(
    c: &mut pb::StageCounts,
    stage: pb::WardStage,
    rating: Option<pb::AccreditationRating>,
    n: i32,
) {
    match stage {
        pb::WardStage::Diagnostic => c.diagnostic += n,
        pb::WardStage::Assessment => c.assessment += n,
        pb::WardStage::Accredited => {
            c.accredited += n;
            match rating {
                Some(pb::AccreditationRating::Bronze) => c.bronze += n,
                Some(pb::AccreditationRating::Silver) => c.silver += n,
                Some(pb::AccreditationRating::Gold) => c.gold += n,
                Some(pb::AccreditationRating::Unspecified) | None => {}
            }
        }
        pb::WardStage::Withdrawn => c.withdrawn += n,
        pb::WardStage::Unspecified => {}
    }
    if stage != pb::WardStage::Withdrawn {
        c.enrolled += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qi_proto::google::r#type::Date;

    fn d(y: i32, m: i32, day: i32) -> Option<Date> {
        Some(Date {
            year: y,
            month: m,
            day,
        })
    }

    #[test]
    fn five_wards_every_three_months_until_december_2024_makes_twelve_waves() {
        let plan = Plan::parse(&pb::WavePlan {
            first_wave_date: d(2022, 1, 31),
            interval_months: 3,
            wards_per_wave: 5,
            per_site: false,
            end_date: d(2024, 12, 31),
            target_wards: 60,
            reassessment_months: 0,
        })
        .unwrap();
        let dates = plan.dates();
        assert_eq!(dates.len(), 12);
        assert_eq!(dates[1].to_string(), "2022-04-30", "month ends clamp");
        assert_eq!(dates[11].to_string(), "2024-10-31");
        assert_eq!(plan.reassessment_months, 6);
    }

    #[test]
    fn bad_plans_name_their_fields() {
        let Err(Error::InvalidArgument { violations }) = Plan::parse(&pb::WavePlan {
            first_wave_date: d(2024, 1, 1),
            interval_months: 0,
            wards_per_wave: 101,
            end_date: d(2023, 1, 1),
            ..Default::default()
        }) else {
            panic!("expected violations")
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "wave_plan.interval_months",
                "wave_plan.wards_per_wave",
                "wave_plan.end_date"
            ]
        );
    }
}
