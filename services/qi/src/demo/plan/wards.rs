//! The ward accreditation programme: five wards a wave, a wave every three months from
//! January 2022 to December 2024, sixty in all; each assessed, most accredited, and many
//! reassessed six months later.

use chrono::{Months, NaiveDate};
use qi_platform::convert::date;
use qi_proto::projects as pb;

use crate::demo::AS_OF;
use crate::demo::data::projects::{
    FIRST_WAVE, LAST_WAVE_BY, NEXT_FIRST_WAVE, NEXT_LAST_WAVE_BY, NEXT_PROGRAMME, PROGRAMME_WARDS,
    REASSESSMENT_MONTHS, STANDARDS, WARD_PROGRAMME, WARDS_PER_WAVE, WAVE_MONTHS,
};
use crate::demo::rng::Rng;
use crate::seed::{SITES, WARDS};

/// One ward of the ward programme.
#[derive(Debug, Clone)]
pub(crate) struct WardPlan {
    pub(crate) site: &'static str,
    pub(crate) ward: &'static str,
    pub(crate) wave: i32,
    /// When assessment began.
    pub(crate) assessed: NaiveDate,
    /// Its accreditation: (date, rating, standards met).
    pub(crate) accredited: Option<(NaiveDate, pb::AccreditationRating, i32)>,
    /// Its reassessment, the same way.
    pub(crate) reassessed: Option<(NaiveDate, pb::AccreditationRating, i32)>,
}

impl WardPlan {
    /// The ward's enrolment's name.
    pub(crate) fn name(&self) -> String {
        format!(
            "{WARD_PROGRAMME}/wardEnrolments/{}-{}",
            self.site.to_lowercase(),
            self.ward
        )
    }
}

/// The accreditation programme's waves, as `PlanWaves` takes them.
fn wave_plan() -> pb::WavePlan {
    pb::WavePlan {
        first_wave_date: Some(date(FIRST_WAVE)),
        interval_months: WAVE_MONTHS as i32,
        wards_per_wave: WARDS_PER_WAVE as i32,
        per_site: false,
        end_date: Some(date(LAST_WAVE_BY)),
        target_wards: PROGRAMME_WARDS as i32,
        reassessment_months: REASSESSMENT_MONTHS as i32,
    }
}

/// Each ward programme's waves, as `PlanWaves` takes them: the accreditation programme's,
/// and the next programme's (two wards a site each quarter).
pub(crate) fn wave_plans() -> [(&'static str, pb::WavePlan); 2] {
    let next = pb::WavePlan {
        first_wave_date: Some(date(NEXT_FIRST_WAVE)),
        interval_months: WAVE_MONTHS as i32,
        wards_per_wave: 2,
        per_site: true,
        end_date: Some(date(NEXT_LAST_WAVE_BY)),
        target_wards: 48,
        reassessment_months: REASSESSMENT_MONTHS as i32,
    };
    [(WARD_PROGRAMME, wave_plan()), (NEXT_PROGRAMME, next)]
}

/// The programme's wards, wave by wave.
pub(crate) fn ward_programme() -> Vec<WardPlan> {
    (0..PROGRAMME_WARDS)
        .map(|k| {
            let mut r = Rng::of("ward-programme", k as u64);
            let wave = (k / WARDS_PER_WAVE) as i32 + 1;
            let start = FIRST_WAVE + Months::new(WAVE_MONTHS * (wave as u32 - 1));
            let stuck = r.chance(0.06);
            let accredited = (!stuck).then(|| {
                let (rating, met) = rate(&mut r, false);
                (start + Months::new(6), rating, met)
            });
            let reassessed = accredited.and_then(|(d, _, _)| {
                let again = d + Months::new(REASSESSMENT_MONTHS);
                (again <= AS_OF && r.chance(0.6)).then(|| {
                    let (rating, met) = rate(&mut r, true);
                    (again, rating, met)
                })
            });
            WardPlan {
                site: SITES[k % 3].0,
                ward: WARDS[k / 3],
                wave,
                assessed: start + Months::new(3),
                accredited,
                reassessed,
            }
        })
        .collect()
}

/// An assessment's rating and standards met (more of them on reassessment).
fn rate(r: &mut Rng, better: bool) -> (pb::AccreditationRating, i32) {
    let met = (10 + r.below(4) as i32 + i32::from(better) * 2).min(STANDARDS);
    let rating = match met {
        14.. => pb::AccreditationRating::Gold,
        12..=13 => pb::AccreditationRating::Silver,
        _ => pb::AccreditationRating::Bronze,
    };
    (rating, met)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ward_programme_has_sixty_wards_in_twelve_waves() {
        let wards = ward_programme();
        assert_eq!(wards.len(), 60);
        assert_eq!(wards.iter().map(|w| w.wave).max(), Some(12));
    }
}
