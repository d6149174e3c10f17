//! The gateway's own RPCs (`qi.gateway.v1.GatewayService`), answered in this process by the
//! generated server. A call reaches it the way a call reaches a service: admitted, checked
//! and recorded by the proxy first, then handed on with the caller's access context and the
//! call's deadline in its extensions, where the services' own layers would put them.

use std::sync::Arc;

use qi_proto::gateway as pb;
use qi_proto::gateway::gateway_service_server::{GatewayService, GatewayServiceServer};
use tonic::body::Body;
use tower::ServiceExt as _;

use crate::proxy::Gateway;
use crate::{audit, overview};

/// The gateway's own service, answering for the gateway it belongs to.
#[derive(Debug)]
pub(crate) struct Own(Arc<Gateway>);

impl Own {
    /// The gateway whose figures and audit trail this service answers with.
    pub(crate) fn gateway(&self) -> &Gateway {
        &self.0
    }
}

qi_platform::grpc_service! {
    impl GatewayService for Own {
        get_overview(pb::GetOverviewRequest) -> pb::GetOverviewResponse = overview::get;
        list_audit_events(pb::ListAuditEventsRequest) -> pb::ListAuditEventsResponse = audit::list;
    }
}

/// Answers one admitted call to the gateway's own service.
pub(crate) async fn serve(gateway: Arc<Gateway>, req: http::Request<Body>) -> http::Response<Body> {
    let server = GatewayServiceServer::new(Own(gateway))
        .max_decoding_message_size(qi_platform::server::MAX_MESSAGE_BYTES);
    let Ok(response) = server.oneshot(req).await;
    response
}
