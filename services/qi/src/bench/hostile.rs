//! Hostile requests: eight callers at once, each sending one `BatchCreateMeasurements` of
//! 4.18 MB that is nothing but 2,090,000 empty measurements (`0x12 0x00` each), back to
//! back for a round, while the resident memory of the process answering them is watched.
//! Decoded, one such request was a 600 MB structure (issue 19); counted on the wire
//! against the contract's bound (`qi_proto::limits`), it is refused before decoding.
//!
//! Three cases: straight to `qi serve metrics`, through `qi serve gateway` (the gateway
//! refuses it, so the service never sees it), and `qi up` (everything in one process).
//! Each reports the process's resident memory idle and its peak during the round; the
//! targets are on the growth.

use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use qi_platform::access::ACCESS_HEADER;
use qi_platform::{AccessContext, SiteScope};
use serde_json::{Map, json};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use super::figures::note_errors;
use super::headers::bearer;
use super::load::{self, LoadStats};
use super::{Deployment, Effort, Outcome, Target};

const METHOD: &str = "/qi.metrics.v1.MetricService/BatchCreateMeasurements";
/// Callers at once.
const CALLERS: usize = 8;
/// Empty measurements in each request: 4.18 MB on the wire, under the 4 MiB message limit.
const EMPTIES: usize = 2_090_000;

/// The request of the issue: a parent, then nothing but empty measurements.
fn hostile_message() -> Bytes {
    use prost::Message as _;
    let mut bytes = qi_proto::metrics::BatchCreateMeasurementsRequest {
        parent: "sites/BAS/metrics/bench-hostile".into(),
        ..Default::default()
    }
    .encode_to_vec();
    bytes.reserve(EMPTIES * 2);
    for _ in 0..EMPTIES {
        bytes.extend_from_slice(&[0x12, 0x00]);
    }
    Bytes::from(bytes)
}

/// Sends the raw message over `channel` with one header, from `CALLERS` callers for a round.
async fn attack(
    channel: Channel,
    header: (&'static str, MetadataValue<Ascii>),
    effort: Effort,
) -> LoadStats {
    let message = hostile_message();
    let call = move || {
        let (channel, message, header) = (channel.clone(), message.clone(), header.clone());
        async move {
            let mut grpc = tonic::client::Grpc::new(channel)
                .max_encoding_message_size(qi_platform::server::MAX_MESSAGE_BYTES);
            grpc.ready()
                .await
                .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
            let mut req = tonic::Request::new(message);
            req.metadata_mut().insert(header.0, header.1);
            grpc.unary(
                req,
                http::uri::PathAndQuery::from_static(METHOD),
                qi_platform::codec::BytesCodec,
            )
            .await
            .map(|_| ())
        }
    };
    load::run(CALLERS, effort.round, call).await
}

/// A value of `/proc/{pid}/status` in MiB (`VmRSS`, `VmHWM`).
fn status_mib(pid: u32, key: &str) -> Option<f64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse::<f64>()
        .ok()
        .map(|kb| kb / 1024.0)
}

/// Runs `round` while watching the resident memory of `pids`; returns each one's idle
/// figure and its peak. The peak is the kernel's high-water mark, reset before the round
/// (`clear_refs` 5), and at least the highest of samples taken every 5 ms.
async fn watched<F: std::future::Future<Output = LoadStats>>(
    pids: &[u32],
    round: F,
) -> (LoadStats, Vec<(f64, f64)>) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle: Vec<f64> = pids
        .iter()
        .map(|p| status_mib(*p, "VmRSS:").unwrap_or(f64::NAN))
        .collect();
    let reset: Vec<bool> = pids
        .iter()
        .map(|p| std::fs::write(format!("/proc/{p}/clear_refs"), "5").is_ok())
        .collect();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sampling = {
        let pids = pids.to_vec();
        tokio::spawn(async move {
            let mut peaks = vec![0.0f64; pids.len()];
            loop {
                for (peak, p) in peaks.iter_mut().zip(&pids) {
                    *peak = peak.max(status_mib(*p, "VmRSS:").unwrap_or(0.0));
                }
                tokio::select! {
                    _ = &mut stop_rx => return peaks,
                    () = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
            }
        })
    };
    let stats = round.await;
    let _ = stop_tx.send(());
    let sampled = sampling.await.unwrap_or_default();
    let figures = pids
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let hwm = if reset[i] {
                status_mib(*p, "VmHWM:").unwrap_or(0.0)
            } else {
                0.0
            };
            (idle[i], hwm.max(sampled.get(i).copied().unwrap_or(0.0)))
        })
        .collect();
    (stats, figures)
}

/// The three cases, each against its target growth.
pub(super) async fn hostile(d: &Deployment, effort: Effort) -> anyhow::Result<Outcome> {
    let mut f = Map::new();
    let mut targets = Vec::new();
    let mut record = |f: &mut Map<String, serde_json::Value>,
                      case: &str,
                      name: &str,
                      (idle, peak): (f64, f64),
                      bound: Option<f64>| {
        f.insert(format!("{case}: {name} idle MiB"), json!(idle));
        f.insert(format!("{case}: {name} peak MiB"), json!(peak));
        if let Some(bound) = bound {
            targets.push(Target::at_most(
                &format!("{case}: {name} growth under 8 hostile calls (MiB)"),
                bound,
                peak - idle,
            ));
        }
    };
    f.insert("request bytes".into(), json!(hostile_message().len()));

    let metrics = d.pid("metrics").context("no metrics process")?;
    let gateway = d.pid("gateway").context("no gateway process")?;

    // Straight to the service, with the access context the gateway would sign.
    let ctx = AccessContext {
        subject: "bench-hostile".into(),
        roles: vec!["improvement_team".into()],
        sites: SiteScope::TrustWide,
        method: METHOD.into(),
        employee: None,
        employee_claim: Default::default(),
        token_expiry: None,
    };
    let ctx: MetadataValue<Ascii> = d.signer.sign(&ctx)?.parse()?;
    let (stats, mem) = watched(
        &[metrics],
        attack(d.metrics.clone(), (ACCESS_HEADER, ctx), effort),
    )
    .await;
    record(&mut f, "direct", "metrics", mem[0], Some(64.0));
    note_errors(&mut f, "direct", &[stats]);

    let token = bearer(&d.token("bench-hostile", &["improvement_team"])?)?;
    let (stats, mem) = watched(
        &[gateway, metrics],
        attack(d.gateway.clone(), ("authorization", token.clone()), effort),
    )
    .await;
    record(&mut f, "via gateway", "gateway", mem[0], Some(64.0));
    record(&mut f, "via gateway", "metrics", mem[1], None);
    note_errors(&mut f, "via gateway", &[stats]);

    let up = d.start_up().await?;
    let (stats, mem) = watched(
        &[up.pid()],
        attack(up.channel.clone(), ("authorization", token), effort),
    )
    .await;
    record(&mut f, "qi up", "qi up", mem[0], Some(128.0));
    note_errors(&mut f, "qi up", &[stats]);
    drop(up);

    Ok(Outcome {
        name: "hostile",
        figures: f,
        targets,
    })
}
