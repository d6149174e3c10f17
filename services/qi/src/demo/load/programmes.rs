//! Loads the programmes, and plans the ward programmes' waves once they exist.

use qi_proto::projects as pb;

use super::client::{Api, created, failed, made_or_found, rpc};
use crate::demo::Tally;
use crate::demo::plan::programmes::programmes;
use crate::demo::plan::wards::wave_plans;

/// Creates every programme (or finds it), then plans each ward programme's waves unless
/// they are planned.
pub(crate) async fn load(api: &Api) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    for (parent, id, programme) in programmes() {
        let name = format!("{parent}/programmes/{id}");
        let made = created(
            rpc!(
                api.projects,
                create_programme,
                pb::CreateProgrammeRequest {
                    parent: parent.clone(),
                    programme_id: id.clone(),
                    programme: Some(programme.clone()),
                    request_id: String::new(),
                }
            ),
            &name,
        )?;
        let found = async {
            let got = rpc!(
                api.projects,
                get_programme,
                pb::GetProgrammeRequest { name: name.clone() }
            )
            .map_err(|s| failed(s, &name))?;
            Ok(got.programme)
        };
        let (programme, _) = made_or_found(made.map(|r| r.programme), found, &mut tally).await?;
        let planned = programme.and_then(|p| p.wave_plan).is_some();
        let plan = wave_plans().into_iter().find(|(p, _)| *p == name);
        if let (Some((_, plan)), false) = (plan, planned) {
            rpc!(
                api.projects,
                plan_waves,
                pb::PlanWavesRequest {
                    programme: name.clone(),
                    wave_plan: Some(plan),
                    etag: String::new(),
                }
            )
            .map_err(|s| failed(s, &format!("planning the waves of {name}")))?;
        }
    }
    Ok(tally)
}
