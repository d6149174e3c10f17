//! The gateway's `grpc.health.v1` answers for the suite behind it: each service's name
//! (`qi.training.v1.TrainingService`, …) reports what that service's own health check says,
//! checked every few seconds, and the overall `""` is NOT_SERVING while any of them is down.
//! The gateway's own `qi.gateway.v1.GatewayService` reports the gateway alone: NOT_SERVING
//! while it cannot write its audit trail (the readiness probe's name), since it would
//! soon refuse every call. `liveness` stays SERVING through a database outage, so the
//! kubelet restarts nothing for one.
//!
//! Kubernetes probes the gateway on `qi.gateway.v1.GatewayService`, not `""`: every gateway
//! replica sees the same backends, so taking them all out of the Service because one backend
//! is down would refuse the calls the healthy services could answer (calls to the down one
//! get UNAVAILABLE at once), and restarting the gateway would mend nothing. `""` is for
//! monitoring and for `qi up`, where it answers "is the whole suite serving?".

use std::collections::HashMap;
use std::time::Duration;

use qi_platform::server::HealthWatch;

use crate::audit::AuditLog;
use tonic::transport::Channel;
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus as Reported;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::server::HealthReporter;

/// The gateway's own health name (its readiness probe's).
const GATEWAY: &str = <crate::GatewayItself as crate::Backend>::NAME;

/// How long one backend has to answer its health check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Watches `backends` (service name → channel) every `every`, reporting each one's status
/// under its name and the suite's under `""`.
pub(crate) fn watch(
    backends: HashMap<String, Channel>,
    audit: AuditLog,
    every: Duration,
) -> HealthWatch {
    Box::new(move |reporter| Box::pin(run(reporter, backends, audit, every)))
}

async fn run(
    reporter: HealthReporter,
    backends: HashMap<String, Channel>,
    audit: AuditLog,
    every: Duration,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Until the first round, the names report what the server set at start (SERVING).
    let mut was: HashMap<String, bool> = backends.keys().map(|k| (k.clone(), true)).collect();
    loop {
        ticks.tick().await;
        let mut checks = tokio::task::JoinSet::new();
        for (name, channel) in &backends {
            let (name, channel) = (name.clone(), channel.clone());
            checks.spawn(async move {
                let up = check(channel, &name).await;
                (name, up)
            });
        }
        let auditing = audit.healthy();
        reporter.set_service_status(GATEWAY, status(auditing)).await;
        let mut all_up = auditing;
        while let Some(Ok((name, up))) = checks.join_next().await {
            all_up &= up;
            if was.insert(name.clone(), up) != Some(up) {
                if up {
                    tracing::info!(service = name, "backend serving again");
                } else {
                    tracing::warn!(service = name, "backend not serving");
                }
            }
            reporter.set_service_status(&name, status(up)).await;
        }
        reporter.set_service_status("", status(all_up)).await;
    }
}

fn status(up: bool) -> ServingStatus {
    if up {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

/// Whether the backend says it is serving `service` (a server with another role, or one
/// draining, says not).
async fn check(channel: Channel, service: &str) -> bool {
    let mut client = HealthClient::new(channel);
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: service.to_owned(),
    });
    request.set_timeout(CHECK_TIMEOUT);
    let answer = tokio::time::timeout(CHECK_TIMEOUT, client.check(request)).await;
    matches!(
        answer,
        Ok(Ok(response)) if response.get_ref().status == Reported::Serving as i32
    )
}
