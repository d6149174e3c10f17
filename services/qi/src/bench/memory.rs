//! The `memory` scenario: the resident memory of each component, idle and under the
//! gateway read load.

use qi_proto::training as pb;
use qi_proto::training::training_service_client::TrainingServiceClient;
use serde_json::{Map, json};

use super::headers::{bearer, with_header};
use super::load;
use super::{Deployment, Effort, Outcome, Target};

/// Resident memory of each component: idle when it first served, idle now (after whatever
/// scenarios ran before), and under the gateway read load.
pub(super) async fn memory(d: &Deployment, effort: Effort) -> anyhow::Result<Outcome> {
    tokio::time::sleep(effort.warmup).await;
    let idle = d.resident_mib();
    let token = bearer(&d.token("bench", &["viewer"])?)?;
    let client = TrainingServiceClient::new(d.gateway.clone());
    let call = move || {
        let (mut c, t) = (client.clone(), token.clone());
        async move {
            c.get_course(with_header(
                pb::GetCourseRequest {
                    name: "trust/courses/qsir-prac".into(),
                },
                "authorization",
                &t,
            ))
            .await
            .map(|_| ())
        }
    };
    let loaded = tokio::spawn(load::run(32, effort.round * 2, call));
    tokio::time::sleep(effort.round).await;
    let busy = d.resident_mib();
    let stats = loaded.await?;
    let mut f = Map::new();
    let mut targets = Vec::new();
    // The target is the idle footprint of a fresh component; "idle now" shows what earlier
    // scenarios (a 100,000-row sync) left the allocator holding.
    for (((name, start_mib), (_, idle_mib)), (_, busy_mib)) in
        d.idle_at_start.iter().zip(&idle).zip(&busy)
    {
        f.insert(format!("{name} idle at start MiB"), json!(start_mib));
        f.insert(format!("{name} idle now MiB"), json!(idle_mib));
        f.insert(format!("{name} under load MiB"), json!(busy_mib));
        targets.push(Target::at_most(
            &format!("{name} idle resident at start (MiB)"),
            40.0,
            *start_mib,
        ));
    }
    f.insert("load calls/s".into(), json!(stats.throughput));
    Ok(Outcome {
        name: "memory",
        figures: f,
        targets,
    })
}
