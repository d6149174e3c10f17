//! The gRPC face of the read model: [`InsightsApi`] and the table mapping each RPC to its
//! handler.

use std::sync::Arc;

use qi_platform::SiteCode;
use qi_proto::insights as pb;
use qi_proto::insights::insights_service_server::{self, InsightsServiceServer};
use sqlx::PgPool;

use crate::{coverage, equity, impact, risk, signal, wave};

/// The read model's answers.
#[derive(Debug, Clone)]
pub struct InsightsApi {
    pub(crate) pool: PgPool,
    pub(crate) sites: Arc<[SiteCode]>,
}

impl InsightsApi {
    /// The answers over `pool` (search_path `insights`), knowing the trust's site codes.
    pub fn new(pool: PgPool, sites: &[SiteCode]) -> Self {
        InsightsApi {
            pool,
            sites: sites.into(),
        }
    }

    /// The tonic server of this service.
    pub fn into_server(self) -> InsightsServiceServer<Self> {
        InsightsServiceServer::new(self)
            .max_decoding_message_size(qi_platform::server::MAX_MESSAGE_BYTES)
    }
}

qi_platform::grpc_service! {
    impl insights_service_server::InsightsService for InsightsApi {
        get_cohort_impact(pb::GetCohortImpactRequest)
            -> pb::GetCohortImpactResponse = impact::get;
        list_capability_coverage(pb::ListCapabilityCoverageRequest)
            -> pb::ListCapabilityCoverageResponse = coverage::list;
        list_projects_at_risk(pb::ListProjectsAtRiskRequest)
            -> pb::ListProjectsAtRiskResponse = risk::list;
        explain_signal(pb::ExplainSignalRequest)
            -> pb::ExplainSignalResponse = signal::explain;
        list_equity_opportunities(pb::ListEquityOpportunitiesRequest)
            -> pb::ListEquityOpportunitiesResponse = equity::list;
        suggest_next_wave(pb::SuggestNextWaveRequest)
            -> pb::SuggestNextWaveResponse = wave::suggest;
    }
}
