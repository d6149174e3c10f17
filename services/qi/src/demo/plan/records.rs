//! The ideas' and projects' records as the projects service takes them: who submitted an
//! idea, a project's description, aim and how far patients are involved.

use chrono::Months;
use qi_platform::convert::date;
use qi_proto::projects as pb;

use super::people::Workforce;
use super::portfolio::{Fate, IdeaPlan, ProjectPlan};
use crate::demo::data::projects::THEMES;
use crate::demo::day;
use crate::demo::rng::{Rng, person};

impl IdeaPlan {
    /// The idea as submitted: by a member of staff of its site, or by a patient.
    pub(crate) fn record(&self, staff: &Workforce) -> pb::Idea {
        let mut r = Rng::of("idea-submitter", self.n as u64);
        let submitter_staff = r
            .chance(0.7)
            .then(|| staff.at(self.site, 400 + r.below(400) as usize).clone());
        let submitter = match &submitter_staff {
            Some(p) => p.display(),
            None => {
                let (f, s) = person(&mut r);
                format!("{f} {s} (patient)")
            }
        };
        let theme = &THEMES[self.theme];
        pb::Idea {
            title: self.title.clone(),
            description: format!(
                "{}. Suggested to improve {} and tried elsewhere in the NHS.",
                self.title,
                theme.name.to_lowercase()
            ),
            ward: self
                .ward
                .map(|w| format!("sites/{}/wards/{w}", self.site))
                .unwrap_or_default(),
            submitter,
            submitter_staff: submitter_staff.map(|p| p.name()).unwrap_or_default(),
            theme: theme.name.into(),
            submit_date: Some(date(self.submitted)),
            ..Default::default()
        }
    }
}

impl ProjectPlan {
    /// A wrapped programme's project as created (an idea's is created by accepting it).
    pub(crate) fn record(&self) -> pb::Project {
        pb::Project {
            title: self.title.clone(),
            description: format!(
                "Worked on by {}'s learners on the QSIR Practitioner course.",
                self.site
            ),
            aim: Some(self.aim()),
            participating_sites: self.participating.clone(),
            wards: self
                .ward
                .map(|w| vec![format!("sites/{}/wards/{w}", self.site)])
                .unwrap_or_default(),
            programme: self.programme.clone().unwrap_or_default(),
            patient_involvement: self.involvement() as i32,
            ..self.charter()
        }
    }

    /// Its charter: the problem, scope, stakeholders and expected benefits of its theme at
    /// its place, and the QSIR phase its fate puts it in.
    pub(crate) fn charter(&self) -> pb::Project {
        let t = &THEMES[self.theme];
        let (_, measure, baseline, _, unit) = t.aim;
        let place = self.place();
        let mut r = Rng::of("charter", self.key);
        let phase = match self.fate {
            Fate::Scoping => *r.pick(&[pb::QsirPhase::StartOut, pb::QsirPhase::DefineAndScope]),
            Fate::InProgress => *r.pick(&[
                pb::QsirPhase::MeasureAndUnderstand,
                pb::QsirPhase::DesignAndPlan,
                pb::QsirPhase::PilotAndImplement,
            ]),
            Fate::Completed => pb::QsirPhase::SustainAndShare,
            Fate::Stopped => pb::QsirPhase::DesignAndPlan,
        };
        let mut benefits = vec![t.benefit.0 as i32];
        if r.chance(0.5) && t.benefit.0 != pb::BenefitKind::StaffHoursReleased {
            benefits.push(pb::BenefitKind::StaffHoursReleased as i32);
        }
        pb::Project {
            problem_statement: format!(
                "On {place}, {} stands at {baseline} {unit}, worse than similar wards; patients \
                 and staff say {} is the work that suffers.",
                measure.to_lowercase(),
                t.name.to_lowercase()
            ),
            scope_in: format!("Adult inpatients on {place}, seven days a week."),
            scope_out: "Paediatrics, day cases and changes to staffing levels.".into(),
            stakeholders: vec![
                format!("{place} nursing team"),
                "Patients and carers".into(),
                "Divisional leadership".into(),
            ],
            expected_benefits: benefits,
            qsir_phase: phase as i32,
            theme: t.name.into(),
            ..Default::default()
        }
    }

    /// Its aim: its theme's, at its ward or site, within a year of starting.
    pub(crate) fn aim(&self) -> pb::Aim {
        let t = &THEMES[self.theme];
        let (statement, measure, baseline, target, unit) = t.aim;
        let place = self.place();
        pb::Aim {
            statement: format!(
                "{statement} on {place} from {baseline} to {target} {unit} within a year"
            ),
            measure: measure.into(),
            metric: t
                .measures
                .first()
                .map(|(m, _)| format!("sites/{}/metrics/{m}", self.site))
                .unwrap_or_default(),
            baseline: Some(baseline),
            target: Some(target),
            unit: unit.into(),
            target_date: Some(date(self.start.max(day(2021, 1, 1)) + Months::new(12))),
        }
    }

    /// How far patients are involved: more where it is co-produced.
    pub(crate) fn involvement(&self) -> pb::PatientInvolvement {
        let mut r = Rng::of("involvement", self.key);
        if self.coproduced {
            *r.pick(&[
                pb::PatientInvolvement::CoProducing,
                pb::PatientInvolvement::CoDesigning,
                pb::PatientInvolvement::Engaging,
            ])
        } else {
            *r.pick(&[
                pb::PatientInvolvement::Consulting,
                pb::PatientInvolvement::Informing,
                pb::PatientInvolvement::None,
            ])
        }
    }
}
