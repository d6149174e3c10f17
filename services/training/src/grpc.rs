//! The gRPC face of the training service: the service type and the table mapping each RPC
//! to its handler (the handlers live with their resources).

use std::sync::Arc;

use qi_platform::SiteCode;
use qi_platform::changes::{Feed, FeedSettings};
use qi_proto::training as pb;
use qi_proto::training::training_service_server::{self, TrainingServiceServer};
use sqlx::PgPool;

use crate::{
    attendance, cohorts, courses, enrolments, esr_mappings, feed, register, sessions, staff, sync,
};

/// The training service.
#[derive(Debug, Clone)]
pub struct TrainingApi {
    pub(crate) pool: PgPool,
    pub(crate) sites: Arc<[SiteCode]>,
    /// The change feed (`WatchChanges`).
    pub(crate) feed: Arc<Feed>,
}

impl TrainingApi {
    /// The service over `pool` (search_path `training`), knowing the trust's site codes.
    pub fn new(pool: PgPool, sites: &[SiteCode]) -> Self {
        TrainingApi {
            feed: Feed::new(pool.clone(), FeedSettings::default()),
            pool,
            sites: sites.into(),
        }
    }

    /// The same service, publishing through `feed` (made with the `QI_CHANGES_*` settings
    /// over this service's pool, and stopped by the server when it stops).
    pub fn with_feed(mut self, feed: Arc<Feed>) -> Self {
        self.feed = feed;
        self
    }

    /// The tonic server of this service.
    pub fn into_server(self) -> TrainingServiceServer<Self> {
        TrainingServiceServer::new(self)
            .max_decoding_message_size(qi_platform::server::MAX_MESSAGE_BYTES)
    }
}

qi_platform::grpc_service! {
    impl training_service_server::TrainingService for TrainingApi {
        streams {
            StreamTrainingRecordsStream = pb::StreamTrainingRecordsResponse;
            WatchChangesStream = pb::WatchChangesResponse;
        }
        create_course(pb::CreateCourseRequest) -> pb::CreateCourseResponse = courses::create;
        get_course(pb::GetCourseRequest) -> pb::GetCourseResponse = courses::get;
        list_courses(pb::ListCoursesRequest) -> pb::ListCoursesResponse = courses::list;
        update_course(pb::UpdateCourseRequest) -> pb::UpdateCourseResponse = courses::update;
        create_cohort(pb::CreateCohortRequest) -> pb::CreateCohortResponse = cohorts::create;
        plan_cohorts(pb::PlanCohortsRequest) -> pb::PlanCohortsResponse = cohorts::plan;
        get_cohort(pb::GetCohortRequest) -> pb::GetCohortResponse = cohorts::get;
        list_cohorts(pb::ListCohortsRequest) -> pb::ListCohortsResponse = cohorts::list;
        update_cohort(pb::UpdateCohortRequest) -> pb::UpdateCohortResponse = cohorts::update;
        open_cohort(pb::OpenCohortRequest) -> pb::OpenCohortResponse = cohorts::open;
        start_cohort(pb::StartCohortRequest) -> pb::StartCohortResponse = cohorts::start;
        complete_cohort(pb::CompleteCohortRequest) -> pb::CompleteCohortResponse = cohorts::complete;
        cancel_cohort(pb::CancelCohortRequest) -> pb::CancelCohortResponse = cohorts::cancel;
        list_sessions(pb::ListSessionsRequest) -> pb::ListSessionsResponse = sessions::list;
        update_session(pb::UpdateSessionRequest) -> pb::UpdateSessionResponse = sessions::update;
        create_enrolment(pb::CreateEnrolmentRequest) -> pb::CreateEnrolmentResponse = enrolments::create;
        withdraw_enrolment(pb::WithdrawEnrolmentRequest) -> pb::WithdrawEnrolmentResponse = enrolments::withdraw;
        list_enrolments(pb::ListEnrolmentsRequest) -> pb::ListEnrolmentsResponse = enrolments::list;
        record_attendance(pb::RecordAttendanceRequest) -> pb::RecordAttendanceResponse = attendance::record;
        get_staff(pb::GetStaffRequest) -> pb::GetStaffResponse = staff::get;
        list_staff(pb::ListStaffRequest) -> pb::ListStaffResponse = staff::list;
        get_training_record(pb::GetTrainingRecordRequest) -> pb::GetTrainingRecordResponse = register::get_record;
        list_completions(pb::ListCompletionsRequest) -> pb::ListCompletionsResponse = register::list;
        get_training_summary(pb::GetTrainingSummaryRequest) -> pb::GetTrainingSummaryResponse = register::summarize;
        sync_staff(tonic::Streaming<pb::SyncStaffRequest>) -> pb::SyncStaffResponse = sync::run;
        stream_training_records(pb::StreamTrainingRecordsRequest)
            -> Self::StreamTrainingRecordsStream = register::stream;
        create_esr_mapping(pb::CreateEsrMappingRequest) -> pb::CreateEsrMappingResponse = esr_mappings::create;
        get_esr_mapping(pb::GetEsrMappingRequest) -> pb::GetEsrMappingResponse = esr_mappings::get;
        list_esr_mappings(pb::ListEsrMappingsRequest) -> pb::ListEsrMappingsResponse = esr_mappings::list;
        delete_esr_mapping(pb::DeleteEsrMappingRequest) -> pb::DeleteEsrMappingResponse = esr_mappings::delete;
        batch_upsert_esr_mappings(pb::BatchUpsertEsrMappingsRequest)
            -> pb::BatchUpsertEsrMappingsResponse = esr_mappings::batch_upsert;
        import_completions(pb::ImportCompletionsRequest)
            -> pb::ImportCompletionsResponse = register::import::import;
        reconcile_training(pb::ReconcileTrainingRequest)
            -> pb::ReconcileTrainingResponse = register::reconcile::reconcile;
        watch_changes(pb::WatchChangesRequest) -> Self::WatchChangesStream = feed::watch;
    }
}
