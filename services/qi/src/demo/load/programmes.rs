//! Loads the programmes, and plans the ward programme's waves once it exists.

use qi_proto::projects as pb;

use super::client::{Api, created, failed, made_or_found, rpc};
use crate::demo::Tally;
use crate::demo::data::projects::WARD_PROGRAMME;
use crate::demo::plan::programmes::programmes;
use crate::demo::plan::wards::wave_plan;

/// Creates every programme (or finds it), then plans the ward programme's waves unless
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
        if name == WARD_PROGRAMME && !planned {
            rpc!(
                api.projects,
                plan_waves,
                pb::PlanWavesRequest {
                    programme: name.clone(),
                    wave_plan: Some(wave_plan()),
                    etag: String::new(),
                }
            )
            .map_err(|s| failed(s, &format!("planning the waves of {name}")))?;
        }
    }
    Ok(tally)
}
