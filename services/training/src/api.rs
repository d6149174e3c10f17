//! The gRPC face of the training service: reads the access context, validates, and runs
//! each call's SQL in one transaction scoped to the caller's sites.

use std::sync::Arc;

use qi_platform::names::{self, ListParent, Owner};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, SiteCode, call, idempotency};
use qi_proto::training as pb;
use qi_proto::training::training_service_server::{TrainingService, TrainingServiceServer};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::{cohorts, courses};

/// The training service.
#[derive(Debug, Clone)]
pub struct TrainingApi {
    pool: PgPool,
    sites: Arc<[SiteCode]>,
}

impl TrainingApi {
    /// The service over `pool` (search_path `training`), knowing the trust's site codes.
    pub fn new(pool: PgPool, sites: &[SiteCode]) -> Self {
        TrainingApi {
            pool,
            sites: sites.into(),
        }
    }

    /// The tonic server of this service.
    pub fn into_server(self) -> TrainingServiceServer<Self> {
        TrainingServiceServer::new(self)
            .max_decoding_message_size(qi_platform::server::MAX_MESSAGE_BYTES)
    }

    async fn create_course(
        &self,
        ctx: &AccessContext,
        req: pb::CreateCourseRequest,
    ) -> Result<pb::CreateCourseResponse, Error> {
        let new = courses::NewCourse::try_from(req.clone())?;
        Owner::Trust.check_write(ctx)?;
        let mut tx = self.pool.begin().await?;
        if let Some(saved) = idempotency::claim(&mut tx, ctx, &new.request_id, &req).await? {
            return Ok(saved);
        }
        let course = courses::insert(&mut tx, &new).await?;
        let resp = pb::CreateCourseResponse {
            course: Some(course),
        };
        idempotency::record(&mut tx, ctx, &new.request_id, &resp).await?;
        tx.commit().await?;
        Ok(resp)
    }

    async fn get_course(&self, req: pb::GetCourseRequest) -> Result<pb::GetCourseResponse, Error> {
        let pb::GetCourseRequest { name } = req;
        let (owner, id) = names::parse_name("name", &name, courses::COLLECTION)?;
        if owner != Owner::Trust {
            return Err(Error::not_found(name));
        }
        let mut conn = self.pool.acquire().await?;
        let course = courses::get(&mut conn, &id)
            .await?
            .ok_or_else(|| Error::not_found(&name))?;
        Ok(pb::GetCourseResponse {
            course: Some(course),
        })
    }

    async fn list_courses(
        &self,
        req: pb::ListCoursesRequest,
    ) -> Result<pb::ListCoursesResponse, Error> {
        let pb::ListCoursesRequest {
            parent,
            page_size,
            page_token,
        } = req;
        if parent != "trust" {
            return Err(Error::invalid(
                "parent",
                "courses are trust-wide: use `trust`",
            ));
        }
        let page = Page::parse(page_size, &page_token, &parent)?;
        let mut conn = self.pool.acquire().await?;
        let (courses, next_page_token) = courses::list(&mut conn, &page).await?;
        Ok(pb::ListCoursesResponse {
            courses,
            next_page_token,
        })
    }

    async fn create_cohort(
        &self,
        ctx: &AccessContext,
        req: pb::CreateCohortRequest,
    ) -> Result<pb::CreateCohortResponse, Error> {
        let new = cohorts::NewCohort::try_from(req.clone())?;
        new.owner.check_write(ctx)?;
        new.owner.check_known("parent", &self.sites)?;
        let mut tx = self.pool.begin().await?;
        if let Some(saved) = idempotency::claim(&mut tx, ctx, &new.request_id, &req).await? {
            return Ok(saved);
        }
        let cohort = cohorts::insert(&mut tx, &new).await?;
        let resp = pb::CreateCohortResponse {
            cohort: Some(cohort),
        };
        idempotency::record(&mut tx, ctx, &new.request_id, &resp).await?;
        tx.commit().await?;
        Ok(resp)
    }

    async fn get_cohort(
        &self,
        ctx: &AccessContext,
        req: pb::GetCohortRequest,
    ) -> Result<pb::GetCohortResponse, Error> {
        let pb::GetCohortRequest { name } = req;
        let (owner, id) = names::parse_name("name", &name, cohorts::COLLECTION)?;
        // Authorization before existence: no answer about another site's cohorts.
        owner.check_read(ctx)?;
        let mut conn = self.pool.acquire().await?;
        let cohort = cohorts::get(&mut conn, &owner, &id)
            .await?
            .ok_or_else(|| Error::not_found(&name))?;
        Ok(pb::GetCohortResponse {
            cohort: Some(cohort),
        })
    }

    async fn list_cohorts(
        &self,
        ctx: &AccessContext,
        req: pb::ListCohortsRequest,
    ) -> Result<pb::ListCohortsResponse, Error> {
        let pb::ListCohortsRequest {
            parent,
            page_size,
            page_token,
        } = req;
        let list_parent = ListParent::parse("parent", &parent)?;
        let page = Page::parse(page_size, &page_token, &parent)?;
        let mut conn = self.pool.acquire().await?;
        let (cohorts, next_page_token) = cohorts::list(&mut conn, ctx, &list_parent, &page).await?;
        Ok(pb::ListCohortsResponse {
            cohorts,
            next_page_token,
        })
    }
}

#[tonic::async_trait]
impl TrainingService for TrainingApi {
    async fn create_course(
        &self,
        req: Request<pb::CreateCourseRequest>,
    ) -> Result<Response<pb::CreateCourseResponse>, Status> {
        call(
            req,
            |ctx, r| async move { self.create_course(&ctx, r).await },
        )
        .await
    }

    async fn get_course(
        &self,
        req: Request<pb::GetCourseRequest>,
    ) -> Result<Response<pb::GetCourseResponse>, Status> {
        call(req, |_, r| self.get_course(r)).await
    }

    async fn list_courses(
        &self,
        req: Request<pb::ListCoursesRequest>,
    ) -> Result<Response<pb::ListCoursesResponse>, Status> {
        call(req, |_, r| self.list_courses(r)).await
    }

    async fn create_cohort(
        &self,
        req: Request<pb::CreateCohortRequest>,
    ) -> Result<Response<pb::CreateCohortResponse>, Status> {
        call(
            req,
            |ctx, r| async move { self.create_cohort(&ctx, r).await },
        )
        .await
    }

    async fn get_cohort(
        &self,
        req: Request<pb::GetCohortRequest>,
    ) -> Result<Response<pb::GetCohortResponse>, Status> {
        call(req, |ctx, r| async move { self.get_cohort(&ctx, r).await }).await
    }

    async fn list_cohorts(
        &self,
        req: Request<pb::ListCohortsRequest>,
    ) -> Result<Response<pb::ListCohortsResponse>, Status> {
        call(
            req,
            |ctx, r| async move { self.list_cohorts(&ctx, r).await },
        )
        .await
    }
}
