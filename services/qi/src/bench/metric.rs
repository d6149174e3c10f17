//! What the metrics scenarios share: their client of the metric service through the
//! gateway, and the metric each creates under `sites/BAS` to measure against.

use anyhow::Context as _;
use qi_proto::metrics as pb;
use qi_proto::metrics::metric_service_client::MetricServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use super::Deployment;
use super::headers::with_header;

/// The metric service's client, through the gateway.
pub(super) type MetricClient = MetricServiceClient<Channel>;

/// A client through `d`'s gateway that takes answers as large as the services send.
pub(super) fn client(d: &Deployment) -> MetricClient {
    MetricServiceClient::new(d.gateway.clone())
        .max_decoding_message_size(qi_platform::server::MAX_MESSAGE_BYTES)
}

/// Creates a metric under `sites/BAS` through the gateway, for a metrics scenario.
pub(super) async fn create(
    client: &mut MetricClient,
    token: &MetadataValue<Ascii>,
    id: &str,
    metric: pb::Metric,
) -> anyhow::Result<()> {
    client
        .create_metric(with_header(
            pb::CreateMetricRequest {
                parent: "sites/BAS".into(),
                metric_id: id.into(),
                metric: Some(metric),
                request_id: String::new(),
            },
            "authorization",
            token,
        ))
        .await
        .with_context(|| format!("creating the metric {id}"))?;
    Ok(())
}
