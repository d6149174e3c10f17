//! The programmes: the ward accreditation programme and the next ward programme, one wrapped around each Practitioner
//! cohort of the wrapped list, and each site's thematic programme.

use qi_proto::projects as pb;

use super::training::practitioner_start;
use crate::demo::data::projects::{
    NEXT_PROGRAMME, NEXT_PROGRAMME_ABOUT, THEMATIC, THEMES, WARD_PROGRAMME_ABOUT, WRAPPED,
};

/// A programme to create: (parent, id, programme).
pub(crate) type ProgrammePlan = (String, String, pb::Programme);

/// Every programme, the ward programmes first.
pub(crate) fn programmes() -> Vec<ProgrammePlan> {
    let mut all = vec![(
        "trust".to_owned(),
        "ward-accreditation".to_owned(),
        pb::Programme {
            display_name: "Ward accreditation programme".into(),
            description: WARD_PROGRAMME_ABOUT.into(),
            kind: pb::ProgrammeKind::WardProgramme as i32,
            ..Default::default()
        },
    )];
    all.push((
        "trust".to_owned(),
        NEXT_PROGRAMME
            .trim_start_matches("trust/programmes/")
            .to_owned(),
        pb::Programme {
            display_name: "Fundamental standards of care".into(),
            description: NEXT_PROGRAMME_ABOUT.into(),
            kind: pb::ProgrammeKind::WardProgramme as i32,
            ..Default::default()
        },
    ));
    for (year, month, _, title, theme) in WRAPPED {
        all.push((
            "trust".into(),
            format!("wrapped-{year}-{month:02}"),
            pb::Programme {
                display_name: title.into(),
                description: format!(
                    "The QSIR Practitioner cohort of {} works on one {} problem across the three sites.",
                    practitioner_start(year, month).format("%B %Y"),
                    THEMES[theme].name.to_lowercase()
                ),
                kind: pb::ProgrammeKind::TrainingWrapped as i32,
                cohort: format!("trust/cohorts/prac-{year}-{month:02}"),
                ..Default::default()
            },
        ));
    }
    for (site, id, theme) in THEMATIC {
        all.push((
            format!("sites/{site}"),
            id.into(),
            pb::Programme {
                display_name: format!("{} at {site}", THEMES[theme].name),
                description: format!(
                    "{site}'s projects on {}.",
                    THEMES[theme].name.to_lowercase()
                ),
                kind: pb::ProgrammeKind::Thematic as i32,
                theme: THEMES[theme].name.into(),
                ..Default::default()
            },
        ));
    }
    all
}
