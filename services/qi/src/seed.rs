//! `qi seed`: the reference trust's organisation — its three sites and sixty wards — created
//! through the gateway like any client. Safe to run again: what exists is left as it is.

use anyhow::Context as _;
use qi_proto::projects as pb;
use qi_proto::projects::project_service_client::ProjectServiceClient;
use tonic::Code;

/// The reference trust's sites.
pub const SITES: [(&str, &str); 3] = [
    ("BAS", "Basildon University Hospital"),
    ("BRM", "Broomfield Hospital"),
    ("SOU", "Southend University Hospital"),
];

/// Ward names (generated, twenty per site) and the specialties they cycle through.
pub(crate) const WARDS: [&str; 20] = [
    "ash", "beech", "birch", "cedar", "elm", "fir", "hazel", "holly", "juniper", "larch", "lime",
    "maple", "oak", "pine", "rowan", "spruce", "sycamore", "walnut", "willow", "yew",
];
const SPECIALTIES: [&str; 8] = [
    "Acute medicine",
    "General surgery",
    "Care of older people",
    "Respiratory",
    "Cardiology",
    "Orthopaedics",
    "Stroke",
    "Gastroenterology",
];

/// What a seed run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    /// Records created.
    pub created: u32,
    /// Records that were there already.
    pub existing: u32,
}

fn count(
    outcome: Result<(), tonic::Status>,
    seeded: &mut Seeded,
    what: &str,
) -> anyhow::Result<()> {
    match outcome {
        Ok(()) => seeded.created += 1,
        Err(s) if s.code() == Code::AlreadyExists => seeded.existing += 1,
        Err(s) => anyhow::bail!("creating {what}: {:?} {}", s.code(), s.message()),
    }
    Ok(())
}

/// Creates the reference trust's sites and wards through the gateway with `token` (a
/// trust-wide admin's).
pub async fn reference_trust(gateway: &str, token: &str) -> anyhow::Result<Seeded> {
    let channel = tonic::transport::Endpoint::from_shared(gateway.to_owned())
        .with_context(|| format!("{gateway} is not a URL"))?
        .connect()
        .await
        .with_context(|| format!("connecting to the gateway at {gateway}"))?;
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {token}")
        .parse()
        .context("the token is not valid header text")?;
    let mut client =
        ProjectServiceClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
            req.metadata_mut().insert("authorization", bearer.clone());
            Ok(req)
        });
    let mut seeded = Seeded::default();
    for (code, name) in SITES {
        let made = client
            .create_site(pb::CreateSiteRequest {
                site_id: code.into(),
                site: Some(pb::Site {
                    display_name: name.into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .map(|_| ());
        count(made, &mut seeded, &format!("site {code}"))?;
    }
    for (s, (code, _)) in SITES.iter().enumerate() {
        for (w, ward) in WARDS.iter().enumerate() {
            let mut title = ward.to_string();
            title[..1].make_ascii_uppercase();
            let made = client
                .create_ward(pb::CreateWardRequest {
                    parent: format!("sites/{code}"),
                    ward_id: (*ward).into(),
                    ward: Some(pb::Ward {
                        display_name: format!("{title} Ward"),
                        specialty: SPECIALTIES[(s * 3 + w) % SPECIALTIES.len()].into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                })
                .await
                .map(|_| ());
            count(
                made,
                &mut seeded,
                &format!("ward sites/{code}/wards/{ward}"),
            )?;
        }
    }
    Ok(seeded)
}
