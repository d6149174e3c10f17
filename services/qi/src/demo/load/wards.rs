//! Loads the ward accreditation programme's wards: each enrolled (unless it is), assessed
//! and accredited, and reassessed where the plan has it.

use std::collections::BTreeMap;
use std::sync::Arc;

use qi_platform::convert::date;
use qi_proto::projects as pb;

use super::client::{Api, each, failed, rpc};
use crate::demo::Tally;
use crate::demo::data::projects::{STANDARDS, WARD_PROGRAMME};
use crate::demo::plan::wards::{WardPlan, ward_programme};

/// Loads every ward of the programme. A full wave is checked before a duplicate, so the
/// wards already enrolled are read first rather than created again.
pub(crate) async fn load(api: &Api) -> anyhow::Result<Tally> {
    let enrolled = Arc::new(enrolled(api).await?);
    let api = api.clone();
    each(ward_programme(), move |w| {
        let api = api.clone();
        let found = enrolled.get(&w.name()).copied();
        async move { ward(&api, w, found).await }
    })
    .await
}

/// The programme's enrolments already made, by name, with their stage.
async fn enrolled(api: &Api) -> anyhow::Result<BTreeMap<String, i32>> {
    let mut out = BTreeMap::new();
    let mut page_token = String::new();
    loop {
        let page = rpc!(
            api.projects,
            list_ward_enrolments,
            pb::ListWardEnrolmentsRequest {
                parent: WARD_PROGRAMME.into(),
                wave: 0,
                page_size: 500,
                page_token: page_token.clone(),
            }
        )
        .map_err(|s| failed(s, WARD_PROGRAMME))?;
        out.extend(page.ward_enrolments.into_iter().map(|e| (e.name, e.stage)));
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        page_token = page.next_page_token;
    }
}

/// Enrols a ward (unless `found` says it is, and at which stage) and takes it through
/// assessment and accreditation.
async fn ward(api: &Api, w: WardPlan, found: Option<i32>) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let name = w.name();
    let fresh = found.is_none();
    let stage = match found {
        Some(stage) => {
            tally.existing += 1;
            stage
        }
        None => {
            let stage = enrol(api, &w).await?;
            tally.created += 1;
            stage
        }
    };
    if stage == pb::WardStage::Diagnostic as i32 {
        rpc!(
            api.projects,
            start_ward_assessment,
            pb::StartWardAssessmentRequest {
                name: name.clone(),
                assessment_date: Some(date(w.assessed)),
                etag: String::new(),
            }
        )
        .map_err(|s| failed(s, &format!("assessing {name}")))?;
        tally.step(fresh);
    }
    if stage == pb::WardStage::Diagnostic as i32 || stage == pb::WardStage::Assessment as i32 {
        for (d, rating, met) in w.accredited.iter().chain(w.reassessed.iter()) {
            rpc!(
                api.projects,
                accredit_ward,
                pb::AccreditWardRequest {
                    name: name.clone(),
                    rating: *rating as i32,
                    standards_met: *met,
                    standards_assessed: STANDARDS,
                    accredited_date: Some(date(*d)),
                    etag: String::new(),
                }
            )
            .map_err(|s| failed(s, &format!("accrediting {name}")))?;
            tally.step(fresh);
        }
    }
    Ok(tally)
}

/// Enrols the ward in its wave; returns the stage it starts at.
async fn enrol(api: &Api, w: &WardPlan) -> anyhow::Result<i32> {
    let made = rpc!(
        api.projects,
        create_ward_enrolment,
        pb::CreateWardEnrolmentRequest {
            parent: WARD_PROGRAMME.into(),
            ward_enrolment: Some(pb::WardEnrolment {
                ward: format!("sites/{}/wards/{}", w.site, w.ward),
                wave: w.wave,
                ..Default::default()
            }),
            request_id: String::new(),
        }
    )
    .map_err(|s| failed(s, &w.name()))?;
    Ok(made.ward_enrolment.map(|e| e.stage).unwrap_or_default())
}
