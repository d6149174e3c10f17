//! The gRPC face of the projects service: the service type and one table mapping every RPC
//! to its handler in the module of its resource. Each handler gets the caller's access
//! context; errors map to a status in one place (`qi_platform::rpc::call`).

use std::sync::Arc;

use qi_platform::SiteCode;
use qi_platform::changes::{Feed, FeedSettings};
use qi_proto::projects as pb;
use qi_proto::projects::project_service_server::ProjectServiceServer;
use sqlx::PgPool;

use crate::{
    driver_diagrams, engagement, enrolments, feed, ideas, measures, pdsa, portfolio, programmes,
    projects, scores, sites, team, wards, waves,
};

/// The projects service.
#[derive(Debug, Clone)]
pub struct ProjectsApi {
    pub(crate) pool: PgPool,
    pub(crate) sites: Arc<[SiteCode]>,
    /// The idea funnel's review deadline, in days (`QI_IDEA_REVIEW_DAYS`).
    pub(crate) idea_review_days: u32,
    /// The change feed (`WatchChanges`).
    pub(crate) feed: Arc<Feed>,
}

/// The review deadline when none is configured (`QI_IDEA_REVIEW_DAYS`'s default).
const IDEA_REVIEW_DAYS: u32 = 30;

impl ProjectsApi {
    /// The service over `pool` (search_path `projects`), knowing the trust's site codes.
    pub fn new(pool: PgPool, sites: &[SiteCode]) -> Self {
        ProjectsApi {
            feed: Feed::new(pool.clone(), FeedSettings::default()),
            pool,
            sites: sites.into(),
            idea_review_days: IDEA_REVIEW_DAYS,
        }
    }

    /// The same service, publishing through `feed` (made with the `QI_CHANGES_*` settings
    /// over this service's pool, and stopped by the server when it stops).
    pub fn with_feed(mut self, feed: Arc<Feed>) -> Self {
        self.feed = feed;
        self
    }

    /// The same service, counting an idea waiting longer than `days` for triage as overdue
    /// (`QI_IDEA_REVIEW_DAYS`).
    pub fn with_idea_review_days(mut self, days: u32) -> Self {
        self.idea_review_days = days.max(1);
        self
    }

    /// The tonic server of this service.
    pub fn into_server(self) -> ProjectServiceServer<Self> {
        ProjectServiceServer::new(self)
            .max_decoding_message_size(qi_platform::server::MAX_MESSAGE_BYTES)
    }
}

qi_platform::grpc_service! {
    impl pb::project_service_server::ProjectService for ProjectsApi {
        streams { WatchChangesStream = pb::WatchChangesResponse; }
        create_site(pb::CreateSiteRequest) -> pb::CreateSiteResponse = sites::create;
        get_site(pb::GetSiteRequest) -> pb::GetSiteResponse = sites::get;
        list_sites(pb::ListSitesRequest) -> pb::ListSitesResponse = sites::list;
        create_ward(pb::CreateWardRequest) -> pb::CreateWardResponse = wards::create;
        get_ward(pb::GetWardRequest) -> pb::GetWardResponse = wards::get;
        list_wards(pb::ListWardsRequest) -> pb::ListWardsResponse = wards::list;
        create_idea(pb::CreateIdeaRequest) -> pb::CreateIdeaResponse = ideas::create;
        get_idea(pb::GetIdeaRequest) -> pb::GetIdeaResponse = ideas::get;
        list_ideas(pb::ListIdeasRequest) -> pb::ListIdeasResponse = ideas::list;
        update_idea(pb::UpdateIdeaRequest) -> pb::UpdateIdeaResponse = ideas::update;
        list_idea_events(pb::ListIdeaEventsRequest) -> pb::ListIdeaEventsResponse = ideas::list_events;
        assign_idea_reviewer(pb::AssignIdeaReviewerRequest) -> pb::AssignIdeaReviewerResponse = ideas::assign_reviewer;
        review_idea(pb::ReviewIdeaRequest) -> pb::ReviewIdeaResponse = ideas::review;
        accept_idea(pb::AcceptIdeaRequest) -> pb::AcceptIdeaResponse = ideas::accept;
        decline_idea(pb::DeclineIdeaRequest) -> pb::DeclineIdeaResponse = ideas::decline;
        merge_idea(pb::MergeIdeaRequest) -> pb::MergeIdeaResponse = ideas::merge;
        reopen_idea(pb::ReopenIdeaRequest) -> pb::ReopenIdeaResponse = ideas::reopen;
        create_project(pb::CreateProjectRequest) -> pb::CreateProjectResponse = projects::create;
        get_project(pb::GetProjectRequest) -> pb::GetProjectResponse = projects::get;
        list_projects(pb::ListProjectsRequest) -> pb::ListProjectsResponse = projects::list;
        update_project(pb::UpdateProjectRequest) -> pb::UpdateProjectResponse = projects::update;
        start_project(pb::StartProjectRequest) -> pb::StartProjectResponse = projects::start;
        complete_project(pb::CompleteProjectRequest)
            -> pb::CompleteProjectResponse = projects::complete;
        stop_project(pb::StopProjectRequest) -> pb::StopProjectResponse = projects::stop;
        record_progress_score(pb::RecordProgressScoreRequest)
            -> pb::RecordProgressScoreResponse = scores::record;
        list_progress_scores(pb::ListProgressScoresRequest)
            -> pb::ListProgressScoresResponse = scores::list;
        create_team_member(pb::CreateTeamMemberRequest)
            -> pb::CreateTeamMemberResponse = team::create;
        list_team_members(pb::ListTeamMembersRequest) -> pb::ListTeamMembersResponse = team::list;
        delete_team_member(pb::DeleteTeamMemberRequest)
            -> pb::DeleteTeamMemberResponse = team::delete;
        update_team_member(pb::UpdateTeamMemberRequest)
            -> pb::UpdateTeamMemberResponse = team::update;
        create_measure(pb::CreateMeasureRequest) -> pb::CreateMeasureResponse = measures::create;
        list_measures(pb::ListMeasuresRequest) -> pb::ListMeasuresResponse = measures::list;
        delete_measure(pb::DeleteMeasureRequest) -> pb::DeleteMeasureResponse = measures::delete;
        create_pdsa_cycle(pb::CreatePdsaCycleRequest) -> pb::CreatePdsaCycleResponse = pdsa::create;
        get_pdsa_cycle(pb::GetPdsaCycleRequest) -> pb::GetPdsaCycleResponse = pdsa::get;
        list_pdsa_cycles(pb::ListPdsaCyclesRequest) -> pb::ListPdsaCyclesResponse = pdsa::list;
        update_pdsa_cycle(pb::UpdatePdsaCycleRequest) -> pb::UpdatePdsaCycleResponse = pdsa::update;
        decide_pdsa_cycle(pb::DecidePdsaCycleRequest) -> pb::DecidePdsaCycleResponse = pdsa::decide;
        get_driver_diagram(pb::GetDriverDiagramRequest)
            -> pb::GetDriverDiagramResponse = driver_diagrams::get;
        list_driver_diagram_versions(pb::ListDriverDiagramVersionsRequest)
            -> pb::ListDriverDiagramVersionsResponse = driver_diagrams::list_versions;
        edit_driver_diagram(pb::EditDriverDiagramRequest)
            -> pb::EditDriverDiagramResponse = driver_diagrams::edit;
        render_driver_diagram(pb::RenderDriverDiagramRequest)
            -> pb::RenderDriverDiagramResponse = driver_diagrams::render;
        create_engagement_activity(pb::CreateEngagementActivityRequest)
            -> pb::CreateEngagementActivityResponse = engagement::create;
        list_engagement_activities(pb::ListEngagementActivitiesRequest)
            -> pb::ListEngagementActivitiesResponse = engagement::list;
        create_programme(pb::CreateProgrammeRequest)
            -> pb::CreateProgrammeResponse = programmes::create;
        get_programme(pb::GetProgrammeRequest) -> pb::GetProgrammeResponse = programmes::get;
        list_programmes(pb::ListProgrammesRequest) -> pb::ListProgrammesResponse = programmes::list;
        plan_waves(pb::PlanWavesRequest) -> pb::PlanWavesResponse = waves::plan;
        list_waves(pb::ListWavesRequest) -> pb::ListWavesResponse = waves::list;
        create_ward_enrolment(pb::CreateWardEnrolmentRequest)
            -> pb::CreateWardEnrolmentResponse = enrolments::create;
        list_ward_enrolments(pb::ListWardEnrolmentsRequest)
            -> pb::ListWardEnrolmentsResponse = enrolments::list;
        start_ward_assessment(pb::StartWardAssessmentRequest)
            -> pb::StartWardAssessmentResponse = enrolments::start_assessment;
        accredit_ward(pb::AccreditWardRequest) -> pb::AccreditWardResponse = enrolments::accredit;
        withdraw_ward_enrolment(pb::WithdrawWardEnrolmentRequest)
            -> pb::WithdrawWardEnrolmentResponse = enrolments::withdraw;
        get_ward_programme_progress(pb::GetWardProgrammeProgressRequest)
            -> pb::GetWardProgrammeProgressResponse = waves::progress;
        get_portfolio_summary(pb::GetPortfolioSummaryRequest)
            -> pb::GetPortfolioSummaryResponse = portfolio::get;
        watch_changes(pb::WatchChangesRequest) -> Self::WatchChangesStream = feed::watch;
    }
}
