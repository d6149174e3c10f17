//! The gRPC face of the metrics service.

use std::sync::Arc;

use qi_platform::names::{self, ListParent};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, SiteCode, call, idempotency};
use qi_proto::metrics as pb;
use qi_proto::metrics::metric_service_server::{MetricService, MetricServiceServer};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::definitions;

/// The metrics service.
#[derive(Debug, Clone)]
pub struct MetricsApi {
    pool: PgPool,
    sites: Arc<[SiteCode]>,
}

impl MetricsApi {
    /// The service over `pool` (search_path `metrics`), knowing the trust's site codes.
    pub fn new(pool: PgPool, sites: &[SiteCode]) -> Self {
        MetricsApi {
            pool,
            sites: sites.into(),
        }
    }

    /// The tonic server of this service.
    pub fn into_server(self) -> MetricServiceServer<Self> {
        MetricServiceServer::new(self)
            .max_decoding_message_size(qi_platform::server::MAX_MESSAGE_BYTES)
    }

    async fn create_metric(
        &self,
        ctx: &AccessContext,
        req: pb::CreateMetricRequest,
    ) -> Result<pb::CreateMetricResponse, Error> {
        let new = definitions::NewMetric::try_from(req.clone())?;
        new.owner.check_write(ctx)?;
        new.owner.check_known("parent", &self.sites)?;
        let mut tx = self.pool.begin().await?;
        if let Some(saved) = idempotency::claim(&mut tx, ctx, &new.request_id, &req).await? {
            return Ok(saved);
        }
        let metric = definitions::insert(&mut tx, &new).await?;
        let resp = pb::CreateMetricResponse {
            metric: Some(metric),
        };
        idempotency::record(&mut tx, ctx, &new.request_id, &resp).await?;
        tx.commit().await?;
        Ok(resp)
    }

    async fn get_metric(
        &self,
        ctx: &AccessContext,
        req: pb::GetMetricRequest,
    ) -> Result<pb::GetMetricResponse, Error> {
        let pb::GetMetricRequest { name } = req;
        let (owner, id) = names::parse_name("name", &name, definitions::COLLECTION)?;
        owner.check_read(ctx)?;
        let mut conn = self.pool.acquire().await?;
        let metric = definitions::get(&mut conn, &owner, &id)
            .await?
            .ok_or_else(|| Error::not_found(&name))?;
        Ok(pb::GetMetricResponse {
            metric: Some(metric),
        })
    }

    async fn list_metrics(
        &self,
        ctx: &AccessContext,
        req: pb::ListMetricsRequest,
    ) -> Result<pb::ListMetricsResponse, Error> {
        let pb::ListMetricsRequest {
            parent,
            page_size,
            page_token,
        } = req;
        let list_parent = ListParent::parse("parent", &parent)?;
        let page = Page::parse(page_size, &page_token, &parent)?;
        let mut conn = self.pool.acquire().await?;
        let (metrics, next_page_token) =
            definitions::list(&mut conn, ctx, &list_parent, &page).await?;
        Ok(pb::ListMetricsResponse {
            metrics,
            next_page_token,
        })
    }
}

#[tonic::async_trait]
impl MetricService for MetricsApi {
    async fn create_metric(
        &self,
        req: Request<pb::CreateMetricRequest>,
    ) -> Result<Response<pb::CreateMetricResponse>, Status> {
        call(
            req,
            |ctx, r| async move { self.create_metric(&ctx, r).await },
        )
        .await
    }

    async fn get_metric(
        &self,
        req: Request<pb::GetMetricRequest>,
    ) -> Result<Response<pb::GetMetricResponse>, Status> {
        call(req, |ctx, r| async move { self.get_metric(&ctx, r).await }).await
    }

    async fn list_metrics(
        &self,
        req: Request<pb::ListMetricsRequest>,
    ) -> Result<Response<pb::ListMetricsResponse>, Status> {
        call(
            req,
            |ctx, r| async move { self.list_metrics(&ctx, r).await },
        )
        .await
    }
}
