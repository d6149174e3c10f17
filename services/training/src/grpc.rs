//! The gRPC face of the training service: reads the access context, validates, and runs
//! each call's SQL in one transaction scoped to the caller's sites.

use std::sync::Arc;

use qi_platform::convert::{optional_date, required_text};
use qi_platform::names::{self, ListParent, Owner};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, SiteCode, Violations, call, idempotency};
use qi_proto::training as pb;
use qi_proto::training::training_service_server::{TrainingService, TrainingServiceServer};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::cohorts::CohortState;
use crate::{attendance, cohorts, courses, enrolments, register, sessions, staff, sync};

/// Changes per message of the training-record export.
const EXPORT_PAGE: i64 = 1_000;

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
        let mut tx = qi_platform::db::begin(&self.pool).await?;
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
        let mut conn = qi_platform::db::begin(&self.pool).await?;
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
        let mut conn = qi_platform::db::begin(&self.pool).await?;
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
        let mut tx = qi_platform::db::begin(&self.pool).await?;
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
        let mut conn = qi_platform::db::begin(&self.pool).await?;
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
        let mut conn = qi_platform::db::begin(&self.pool).await?;
        let (cohorts, next_page_token) = cohorts::list(&mut conn, ctx, &list_parent, &page).await?;
        Ok(pb::ListCohortsResponse {
            cohorts,
            next_page_token,
        })
    }

    async fn plan_cohorts(
        &self,
        ctx: &AccessContext,
        req: pb::PlanCohortsRequest,
    ) -> Result<pb::PlanCohortsResponse, Error> {
        let plan = cohorts::Plan::try_from(req.clone())?;
        plan.owner.check_write(ctx)?;
        plan.owner.check_known("parent", &self.sites)?;
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        if let Some(saved) = idempotency::claim(&mut tx, ctx, &plan.request_id, &req).await? {
            return Ok(saved);
        }
        let resp = pb::PlanCohortsResponse {
            cohorts: cohorts::plan(&mut tx, &plan).await?,
        };
        idempotency::record(&mut tx, ctx, &plan.request_id, &resp).await?;
        tx.commit().await?;
        Ok(resp)
    }

    async fn update_cohort(
        &self,
        ctx: &AccessContext,
        req: pb::UpdateCohortRequest,
    ) -> Result<pb::UpdateCohortResponse, Error> {
        let pb::UpdateCohortRequest {
            cohort,
            update_mask,
        } = req;
        let cohort = cohort.ok_or_else(|| Error::invalid("cohort", "is required"))?;
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        let found = cohorts::resolve(&mut tx, ctx, "cohort.name", &cohort.name, true, true).await?;
        let updated = cohorts::update(&mut tx, &found, cohort, update_mask.as_ref()).await?;
        tx.commit().await?;
        Ok(pb::UpdateCohortResponse {
            cohort: Some(updated),
        })
    }

    async fn transition(
        &self,
        ctx: &AccessContext,
        name: &str,
        etag: &str,
        to: cohorts::CohortState,
        reason: Option<&str>,
    ) -> Result<pb::Cohort, Error> {
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        let found = cohorts::resolve(&mut tx, ctx, "name", name, true, true).await?;
        let cohort = cohorts::transition(&mut tx, &found, to, etag, reason).await?;
        tx.commit().await?;
        Ok(cohort)
    }

    async fn list_sessions(
        &self,
        ctx: &AccessContext,
        req: pb::ListSessionsRequest,
    ) -> Result<pb::ListSessionsResponse, Error> {
        let pb::ListSessionsRequest { parent } = req;
        let mut conn = qi_platform::db::begin(&self.pool).await?;
        let found = cohorts::resolve(&mut conn, ctx, "parent", &parent, false, false).await?;
        Ok(pb::ListSessionsResponse {
            sessions: sessions::list(&mut conn, &found).await?,
        })
    }

    async fn update_session(
        &self,
        ctx: &AccessContext,
        req: pb::UpdateSessionRequest,
    ) -> Result<pb::UpdateSessionResponse, Error> {
        let pb::UpdateSessionRequest {
            session,
            update_mask,
        } = req;
        let session = session.ok_or_else(|| Error::invalid("session", "is required"))?;
        let (owner, cohort_id, number) = sessions::parse_name("session.name", &session.name)?;
        owner.check_write(ctx)?;
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        let found = cohorts::locate(&mut tx, &owner, &cohort_id, true)
            .await?
            .ok_or_else(|| Error::not_found(&session.name))?;
        let updated =
            sessions::update(&mut tx, &found, number, &session, update_mask.as_ref()).await?;
        tx.commit().await?;
        Ok(pb::UpdateSessionResponse {
            session: Some(updated),
        })
    }

    async fn create_enrolment(
        &self,
        ctx: &AccessContext,
        req: pb::CreateEnrolmentRequest,
    ) -> Result<pb::CreateEnrolmentResponse, Error> {
        qi_platform::idempotency::validate_request_id(&req.request_id)?;
        let staff_name = req
            .enrolment
            .as_ref()
            .map(|e| e.staff.clone())
            .ok_or_else(|| Error::invalid("enrolment", "is required"))?;
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        let found = cohorts::resolve(&mut tx, ctx, "parent", &req.parent, true, true).await?;
        if let Some(saved) = idempotency::claim(&mut tx, ctx, &req.request_id, &req).await? {
            return Ok(saved);
        }
        let enrolment =
            enrolments::create(&mut tx, ctx, &found, "enrolment.staff", &staff_name).await?;
        let resp = pb::CreateEnrolmentResponse {
            enrolment: Some(enrolment),
        };
        idempotency::record(&mut tx, ctx, &req.request_id, &resp).await?;
        tx.commit().await?;
        Ok(resp)
    }

    async fn withdraw_enrolment(
        &self,
        ctx: &AccessContext,
        req: pb::WithdrawEnrolmentRequest,
    ) -> Result<pb::WithdrawEnrolmentResponse, Error> {
        let pb::WithdrawEnrolmentRequest { name } = req;
        let (owner, cohort_id, number) = enrolments::parse_name("name", &name)?;
        owner.check_write(ctx)?;
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        let found = cohorts::locate(&mut tx, &owner, &cohort_id, true)
            .await?
            .ok_or_else(|| Error::not_found(&name))?;
        let (enrolment, promoted) = enrolments::withdraw(&mut tx, &found, &number, &name).await?;
        tx.commit().await?;
        Ok(pb::WithdrawEnrolmentResponse {
            enrolment: Some(enrolment),
            promoted,
        })
    }

    async fn list_enrolments(
        &self,
        ctx: &AccessContext,
        req: pb::ListEnrolmentsRequest,
    ) -> Result<pb::ListEnrolmentsResponse, Error> {
        let pb::ListEnrolmentsRequest {
            parent,
            page_size,
            page_token,
        } = req;
        let page = Page::parse(page_size, &page_token, &parent)?;
        let mut conn = qi_platform::db::begin(&self.pool).await?;
        let found = cohorts::resolve(&mut conn, ctx, "parent", &parent, false, false).await?;
        let (enrolments, next_page_token) =
            enrolments::list(&mut conn, &found, &page, ctx.sites.sql_filter()).await?;
        Ok(pb::ListEnrolmentsResponse {
            enrolments,
            next_page_token,
        })
    }

    async fn record_attendance(
        &self,
        ctx: &AccessContext,
        req: pb::RecordAttendanceRequest,
    ) -> Result<pb::RecordAttendanceResponse, Error> {
        let pb::RecordAttendanceRequest { session, records } = req;
        let (owner, cohort_id, number) = sessions::parse_name("session", &session)?;
        owner.check_write(ctx)?;
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        let found = cohorts::locate(&mut tx, &owner, &cohort_id, true)
            .await?
            .ok_or_else(|| Error::not_found(&session))?;
        let today = qi_platform::calendar::today();
        let resp = attendance::record(&mut tx, &found, &session, number, records, today).await?;
        tx.commit().await?;
        Ok(resp)
    }

    async fn get_staff(
        &self,
        ctx: &AccessContext,
        req: pb::GetStaffRequest,
    ) -> Result<pb::GetStaffResponse, Error> {
        let pb::GetStaffRequest { name } = req;
        let parsed = staff::parse_name("name", &name)?;
        let mut conn = qi_platform::db::begin(&self.pool).await?;
        let row = staff::require(&mut conn, ctx, &name, &parsed).await?;
        Ok(pb::GetStaffResponse {
            staff: Some(row.into()),
        })
    }

    async fn list_staff(
        &self,
        ctx: &AccessContext,
        req: pb::ListStaffRequest,
    ) -> Result<pb::ListStaffResponse, Error> {
        let pb::ListStaffRequest {
            parent,
            page_size,
            page_token,
            show_inactive,
        } = req;
        let list_parent = ListParent::parse("parent", &parent)?;
        let page = Page::parse(page_size, &page_token, &format!("{parent}|{show_inactive}"))?;
        let mut conn = qi_platform::db::begin(&self.pool).await?;
        let (staff, next_page_token) =
            staff::list(&mut conn, ctx, &list_parent, show_inactive, &page).await?;
        Ok(pb::ListStaffResponse {
            staff,
            next_page_token,
        })
    }

    async fn get_training_record(
        &self,
        ctx: &AccessContext,
        req: pb::GetTrainingRecordRequest,
    ) -> Result<pb::GetTrainingRecordResponse, Error> {
        let pb::GetTrainingRecordRequest { staff: name } = req;
        let parsed = staff::parse_name("staff", &name)?;
        let mut conn = qi_platform::db::begin(&self.pool).await?;
        let person = staff::require(&mut conn, ctx, &name, &parsed).await?;
        let enrolments = enrolments::of_staff(&mut conn, &person.employee_number).await?;
        let completions = register::of_staff(&mut conn, &person.employee_number).await?;
        Ok(pb::GetTrainingRecordResponse {
            staff: Some(person.into()),
            enrolments,
            completions,
        })
    }

    async fn list_completions(
        &self,
        ctx: &AccessContext,
        req: pb::ListCompletionsRequest,
    ) -> Result<pb::ListCompletionsResponse, Error> {
        let params = format!(
            "{}|{}|{:?}|{:?}",
            req.parent, req.course, req.completed_on_or_after, req.completed_before
        );
        let pb::ListCompletionsRequest {
            parent,
            course,
            completed_on_or_after,
            completed_before,
            page_size,
            page_token,
        } = req;
        let mut v = Violations::new();
        let list_parent = v.check(ListParent::parse("parent", &parent).map(Some));
        let course_id = if course.is_empty() {
            None
        } else {
            Some(v.check(cohorts::course_id("course", &course)))
        };
        let from = v.check(optional_date(
            "completed_on_or_after",
            completed_on_or_after.as_ref(),
        ));
        let before = v.check(optional_date("completed_before", completed_before.as_ref()));
        v.finish()?;
        let list_parent = list_parent.ok_or_else(|| Error::invalid("parent", "is required"))?;
        let page = Page::parse(page_size, &page_token, &params)?;
        let filter = register::Filter {
            course_id,
            from,
            before,
        };
        let mut conn = qi_platform::db::begin(&self.pool).await?;
        let (completions, next_page_token) =
            register::list(&mut conn, ctx, &list_parent, &filter, &page).await?;
        Ok(pb::ListCompletionsResponse {
            completions,
            next_page_token,
        })
    }

    async fn get_training_summary(
        &self,
        ctx: &AccessContext,
        req: pb::GetTrainingSummaryRequest,
    ) -> Result<pb::GetTrainingSummaryResponse, Error> {
        let pb::GetTrainingSummaryRequest {
            parent,
            period,
            start_date,
            end_date,
        } = req;
        let mut v = Violations::new();
        let list_parent = v.check(ListParent::parse("parent", &parent).map(Some));
        let period = v.check(
            pb::SummaryPeriod::try_from(period)
                .map_err(|_| Error::invalid("period", "choose YEAR, QUARTER or MONTH")),
        );
        let from = v.check(optional_date("start_date", start_date.as_ref()));
        let before = v.check(optional_date("end_date", end_date.as_ref()));
        v.finish()?;
        let list_parent = list_parent.ok_or_else(|| Error::invalid("parent", "is required"))?;
        let mut conn = qi_platform::db::begin(&self.pool).await?;
        register::summary(&mut conn, ctx, &list_parent, period, from, before).await
    }

    async fn sync_staff(
        &self,
        stream: tonic::Streaming<pb::SyncStaffRequest>,
    ) -> Result<pb::SyncStaffResponse, Error> {
        // Its own task: if the caller goes mid-stream, the sync still ends cleanly (the COPY
        // aborted, the transaction rolled back) rather than being dropped mid-COPY.
        let sync = sync::run(
            self.pool.clone(),
            self.sites.clone(),
            qi_platform::calendar::today(),
            stream,
        );
        // A spawned task is outside the call's deadline scope: carry it over.
        let deadline = qi_platform::deadline::CallDeadline::current();
        tokio::spawn(qi_platform::deadline::within(deadline, sync))
            .await
            .map_err(|e| Error::Internal(anyhow::anyhow!("the sync task failed: {e}")))?
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

    async fn plan_cohorts(
        &self,
        req: Request<pb::PlanCohortsRequest>,
    ) -> Result<Response<pb::PlanCohortsResponse>, Status> {
        call(
            req,
            |ctx, r| async move { self.plan_cohorts(&ctx, r).await },
        )
        .await
    }

    async fn update_cohort(
        &self,
        req: Request<pb::UpdateCohortRequest>,
    ) -> Result<Response<pb::UpdateCohortResponse>, Status> {
        call(
            req,
            |ctx, r| async move { self.update_cohort(&ctx, r).await },
        )
        .await
    }

    async fn open_cohort(
        &self,
        req: Request<pb::OpenCohortRequest>,
    ) -> Result<Response<pb::OpenCohortResponse>, Status> {
        call(req, |ctx, r| async move {
            let cohort = self
                .transition(&ctx, &r.name, &r.etag, CohortState::Open, None)
                .await?;
            Ok(pb::OpenCohortResponse {
                cohort: Some(cohort),
            })
        })
        .await
    }

    async fn start_cohort(
        &self,
        req: Request<pb::StartCohortRequest>,
    ) -> Result<Response<pb::StartCohortResponse>, Status> {
        call(req, |ctx, r| async move {
            let cohort = self
                .transition(&ctx, &r.name, &r.etag, CohortState::Running, None)
                .await?;
            Ok(pb::StartCohortResponse {
                cohort: Some(cohort),
            })
        })
        .await
    }

    async fn complete_cohort(
        &self,
        req: Request<pb::CompleteCohortRequest>,
    ) -> Result<Response<pb::CompleteCohortResponse>, Status> {
        call(req, |ctx, r| async move {
            let cohort = self
                .transition(&ctx, &r.name, &r.etag, CohortState::Completed, None)
                .await?;
            Ok(pb::CompleteCohortResponse {
                cohort: Some(cohort),
            })
        })
        .await
    }

    async fn cancel_cohort(
        &self,
        req: Request<pb::CancelCohortRequest>,
    ) -> Result<Response<pb::CancelCohortResponse>, Status> {
        call(req, |ctx, r| async move {
            let reason = required_text("reason", &r.reason, 500)?;
            let cohort = self
                .transition(
                    &ctx,
                    &r.name,
                    &r.etag,
                    CohortState::Cancelled,
                    Some(&reason),
                )
                .await?;
            Ok(pb::CancelCohortResponse {
                cohort: Some(cohort),
            })
        })
        .await
    }

    async fn list_sessions(
        &self,
        req: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        call(
            req,
            |ctx, r| async move { self.list_sessions(&ctx, r).await },
        )
        .await
    }

    async fn update_session(
        &self,
        req: Request<pb::UpdateSessionRequest>,
    ) -> Result<Response<pb::UpdateSessionResponse>, Status> {
        call(
            req,
            |ctx, r| async move { self.update_session(&ctx, r).await },
        )
        .await
    }

    async fn create_enrolment(
        &self,
        req: Request<pb::CreateEnrolmentRequest>,
    ) -> Result<Response<pb::CreateEnrolmentResponse>, Status> {
        call(
            req,
            |ctx, r| async move { self.create_enrolment(&ctx, r).await },
        )
        .await
    }

    async fn withdraw_enrolment(
        &self,
        req: Request<pb::WithdrawEnrolmentRequest>,
    ) -> Result<Response<pb::WithdrawEnrolmentResponse>, Status> {
        call(req, |ctx, r| async move {
            self.withdraw_enrolment(&ctx, r).await
        })
        .await
    }

    async fn list_enrolments(
        &self,
        req: Request<pb::ListEnrolmentsRequest>,
    ) -> Result<Response<pb::ListEnrolmentsResponse>, Status> {
        call(
            req,
            |ctx, r| async move { self.list_enrolments(&ctx, r).await },
        )
        .await
    }

    async fn record_attendance(
        &self,
        req: Request<pb::RecordAttendanceRequest>,
    ) -> Result<Response<pb::RecordAttendanceResponse>, Status> {
        call(req, |ctx, r| async move {
            self.record_attendance(&ctx, r).await
        })
        .await
    }

    async fn get_staff(
        &self,
        req: Request<pb::GetStaffRequest>,
    ) -> Result<Response<pb::GetStaffResponse>, Status> {
        call(req, |ctx, r| async move { self.get_staff(&ctx, r).await }).await
    }

    async fn list_staff(
        &self,
        req: Request<pb::ListStaffRequest>,
    ) -> Result<Response<pb::ListStaffResponse>, Status> {
        call(req, |ctx, r| async move { self.list_staff(&ctx, r).await }).await
    }

    async fn get_training_record(
        &self,
        req: Request<pb::GetTrainingRecordRequest>,
    ) -> Result<Response<pb::GetTrainingRecordResponse>, Status> {
        call(req, |ctx, r| async move {
            self.get_training_record(&ctx, r).await
        })
        .await
    }

    async fn list_completions(
        &self,
        req: Request<pb::ListCompletionsRequest>,
    ) -> Result<Response<pb::ListCompletionsResponse>, Status> {
        call(
            req,
            |ctx, r| async move { self.list_completions(&ctx, r).await },
        )
        .await
    }

    async fn get_training_summary(
        &self,
        req: Request<pb::GetTrainingSummaryRequest>,
    ) -> Result<Response<pb::GetTrainingSummaryResponse>, Status> {
        call(req, |ctx, r| async move {
            self.get_training_summary(&ctx, r).await
        })
        .await
    }

    async fn sync_staff(
        &self,
        req: Request<tonic::Streaming<pb::SyncStaffRequest>>,
    ) -> Result<Response<pb::SyncStaffResponse>, Status> {
        call(req, |_, stream| self.sync_staff(stream)).await
    }

    type StreamTrainingRecordsStream = std::pin::Pin<
        Box<
            dyn tokio_stream::Stream<Item = Result<pb::StreamTrainingRecordsResponse, Status>>
                + Send,
        >,
    >;

    async fn stream_training_records(
        &self,
        req: Request<pb::StreamTrainingRecordsRequest>,
    ) -> Result<Response<Self::StreamTrainingRecordsStream>, Status> {
        call(req, |_, r| async move {
            let mut cursor = register::parse_cursor(&r.since_cursor)?;
            let pool = self.pool.clone();
            // Pages of changes, each read when the client is ready for it.
            let (tx, rx) = tokio::sync::mpsc::channel(2);
            tokio::spawn(async move {
                loop {
                    let page = match qi_platform::db::begin(&pool).await {
                        Ok(mut conn) => {
                            register::changes_since(&mut conn, cursor, EXPORT_PAGE).await
                        }
                        Err(e) => Err(e),
                    };
                    let done = match page {
                        Ok(changes) => {
                            let Some(last) = changes.last() else { break };
                            cursor = last.cursor.parse().unwrap_or(i64::MAX);
                            let short = (changes.len() as i64) < EXPORT_PAGE;
                            if tx
                                .send(Ok(pb::StreamTrainingRecordsResponse { changes }))
                                .await
                                .is_err()
                            {
                                break;
                            }
                            short
                        }
                        Err(e) => {
                            let _ = tx.send(Err(Status::from(e))).await;
                            true
                        }
                    };
                    if done {
                        break;
                    }
                }
            });
            let stream: Self::StreamTrainingRecordsStream =
                Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx));
            Ok(stream)
        })
        .await
    }
}
