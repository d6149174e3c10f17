//! The gRPC face of the metrics service: [`MetricsApi`] and the one table that maps each
//! RPC of the contract to its handler.

use std::sync::Arc;

use qi_platform::SiteCode;
use qi_platform::changes::{Feed, FeedSettings};
use qi_proto::metrics as pb;
use qi_proto::metrics::metric_service_server::{self, MetricServiceServer};
use sqlx::PgPool;

use crate::{
    annotations, charts, dashboard, definitions, feed, inequality, measurements, rebase_points,
    run_charts,
};

/// The run-chart threshold when none is configured (`QI_RUN_CHART_BELOW_POINTS`'s default).
pub const DEFAULT_RUN_CHART_BELOW_POINTS: usize = 15;

/// The metrics service.
#[derive(Debug, Clone)]
pub struct MetricsApi {
    pub(crate) pool: PgPool,
    pub(crate) sites: Arc<[SiteCode]>,
    /// The QMS dashboard reads a metric with fewer periods than this by a run chart.
    pub(crate) run_chart_below_points: usize,
    /// The change feed (`WatchChanges`).
    pub(crate) feed: Arc<Feed>,
}

impl MetricsApi {
    /// The service over `pool` (search_path `metrics`), knowing the trust's site codes.
    pub fn new(pool: PgPool, sites: &[SiteCode]) -> Self {
        MetricsApi {
            feed: Feed::new(pool.clone(), FeedSettings::default()),
            pool,
            sites: sites.into(),
            run_chart_below_points: DEFAULT_RUN_CHART_BELOW_POINTS,
        }
    }

    /// The same service, reading dashboard metrics with fewer than `points` periods by a
    /// run chart (`QI_RUN_CHART_BELOW_POINTS`).
    pub fn with_run_chart_below_points(mut self, points: usize) -> Self {
        self.run_chart_below_points = points.max(1);
        self
    }

    /// The same service, publishing through `feed` (made with the `QI_CHANGES_*` settings
    /// over this service's pool, and stopped by the server when it stops).
    pub fn with_feed(mut self, feed: Arc<Feed>) -> Self {
        self.feed = feed;
        self
    }

    /// The tonic server of this service.
    pub fn into_server(self) -> MetricServiceServer<Self> {
        MetricServiceServer::new(self)
            .max_decoding_message_size(qi_platform::server::MAX_MESSAGE_BYTES)
    }
}

qi_platform::grpc_service! {
    impl metric_service_server::MetricService for MetricsApi {
        streams { WatchChangesStream = pb::WatchChangesResponse; }
        create_metric(pb::CreateMetricRequest) -> pb::CreateMetricResponse = definitions::create;
        get_metric(pb::GetMetricRequest) -> pb::GetMetricResponse = definitions::get;
        list_metrics(pb::ListMetricsRequest) -> pb::ListMetricsResponse = definitions::list;
        update_metric(pb::UpdateMetricRequest) -> pb::UpdateMetricResponse = definitions::update;
        batch_create_measurements(pb::BatchCreateMeasurementsRequest)
            -> pb::BatchCreateMeasurementsResponse = measurements::batch_create;
        list_measurements(pb::ListMeasurementsRequest)
            -> pb::ListMeasurementsResponse = measurements::list;
        create_annotation(pb::CreateAnnotationRequest)
            -> pb::CreateAnnotationResponse = annotations::create;
        list_annotations(pb::ListAnnotationsRequest)
            -> pb::ListAnnotationsResponse = annotations::list;
        delete_annotation(pb::DeleteAnnotationRequest)
            -> pb::DeleteAnnotationResponse = annotations::delete;
        create_rebase_point(pb::CreateRebasePointRequest)
            -> pb::CreateRebasePointResponse = rebase_points::create;
        list_rebase_points(pb::ListRebasePointsRequest)
            -> pb::ListRebasePointsResponse = rebase_points::list;
        delete_rebase_point(pb::DeleteRebasePointRequest)
            -> pb::DeleteRebasePointResponse = rebase_points::delete;
        get_spc_chart(pb::GetSpcChartRequest) -> pb::GetSpcChartResponse = charts::get;
        compute_spc(pb::ComputeSpcRequest) -> pb::ComputeSpcResponse = charts::compute;
        render_spc_chart(pb::RenderSpcChartRequest)
            -> pb::RenderSpcChartResponse = charts::render;
        get_run_chart(pb::GetRunChartRequest) -> pb::GetRunChartResponse = run_charts::get;
        compute_run_chart(pb::ComputeRunChartRequest)
            -> pb::ComputeRunChartResponse = run_charts::compute;
        render_run_chart(pb::RenderRunChartRequest)
            -> pb::RenderRunChartResponse = run_charts::render;
        get_inequality_breakdown(pb::GetInequalityBreakdownRequest)
            -> pb::GetInequalityBreakdownResponse = inequality::get;
        get_qms_dashboard(pb::GetQmsDashboardRequest)
            -> pb::GetQmsDashboardResponse = dashboard::get;
        watch_changes(pb::WatchChangesRequest) -> Self::WatchChangesStream = feed::watch;
    }
}
