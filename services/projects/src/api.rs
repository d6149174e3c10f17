//! The gRPC face of the projects service.

use std::sync::Arc;

use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, SiteCode, call, idempotency};
use qi_proto::projects as pb;
use qi_proto::projects::project_service_server::{ProjectService, ProjectServiceServer};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::sites;

/// The projects service.
#[derive(Debug, Clone)]
pub struct ProjectsApi {
    pool: PgPool,
    sites: Arc<[SiteCode]>,
}

impl ProjectsApi {
    /// The service over `pool` (search_path `projects`), knowing the trust's site codes.
    pub fn new(pool: PgPool, sites: &[SiteCode]) -> Self {
        ProjectsApi {
            pool,
            sites: sites.into(),
        }
    }

    /// The tonic server of this service.
    pub fn into_server(self) -> ProjectServiceServer<Self> {
        ProjectServiceServer::new(self)
            .max_decoding_message_size(qi_platform::server::MAX_MESSAGE_BYTES)
    }

    async fn create_site(
        &self,
        ctx: &AccessContext,
        req: pb::CreateSiteRequest,
    ) -> Result<pb::CreateSiteResponse, Error> {
        let new = sites::NewSite::try_from(req.clone())?;
        if !ctx.sites.is_trust_wide() {
            return Err(Error::denied(
                "sites are registered only by trust-wide callers",
            ));
        }
        if !self.sites.contains(&new.code) {
            return Err(Error::invalid(
                "site_id",
                format!("{} is not among the configured sites (QI_SITES)", new.code),
            ));
        }
        let mut tx = self.pool.begin().await?;
        if let Some(saved) = idempotency::claim(&mut tx, ctx, &new.request_id, &req).await? {
            return Ok(saved);
        }
        let site = sites::insert(&mut tx, &new).await?;
        let resp = pb::CreateSiteResponse { site: Some(site) };
        idempotency::record(&mut tx, ctx, &new.request_id, &resp).await?;
        tx.commit().await?;
        Ok(resp)
    }

    async fn get_site(&self, req: pb::GetSiteRequest) -> Result<pb::GetSiteResponse, Error> {
        let pb::GetSiteRequest { name } = req;
        let code = sites::parse_name("name", &name)?;
        let mut conn = self.pool.acquire().await?;
        let site = sites::get(&mut conn, &code)
            .await?
            .ok_or_else(|| Error::not_found(&name))?;
        Ok(pb::GetSiteResponse { site: Some(site) })
    }

    async fn list_sites(&self, req: pb::ListSitesRequest) -> Result<pb::ListSitesResponse, Error> {
        let pb::ListSitesRequest {
            page_size,
            page_token,
        } = req;
        let page = Page::parse(page_size, &page_token, "")?;
        let mut conn = self.pool.acquire().await?;
        let (sites, next_page_token) = sites::list(&mut conn, &page).await?;
        Ok(pb::ListSitesResponse {
            sites,
            next_page_token,
        })
    }
}

#[tonic::async_trait]
impl ProjectService for ProjectsApi {
    async fn create_site(
        &self,
        req: Request<pb::CreateSiteRequest>,
    ) -> Result<Response<pb::CreateSiteResponse>, Status> {
        call(req, |ctx, r| async move { self.create_site(&ctx, r).await }).await
    }

    async fn get_site(
        &self,
        req: Request<pb::GetSiteRequest>,
    ) -> Result<Response<pb::GetSiteResponse>, Status> {
        call(req, |_, r| self.get_site(r)).await
    }

    async fn list_sites(
        &self,
        req: Request<pb::ListSitesRequest>,
    ) -> Result<Response<pb::ListSitesResponse>, Status> {
        call(req, |_, r| self.list_sites(r)).await
    }
}
