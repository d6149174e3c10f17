//! The gRPC face of the projects service: every RPC reads the caller's access context and
//! runs its handler (in the module of its resource), mapping errors in the one place they
//! map. Each write runs in one transaction, scoped to the caller's sites.

use std::sync::Arc;

use qi_platform::{SiteCode, call};

use crate::{
    engagement, enrolments, ideas, measures, pdsa, portfolio, programmes, projects, scores, sites,
    team, wards, waves,
};
use qi_proto::projects as pb;
use qi_proto::projects::project_service_server::{ProjectService, ProjectServiceServer};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

/// The projects service.
#[derive(Debug, Clone)]
pub struct ProjectsApi {
    pub(crate) pool: PgPool,
    pub(crate) sites: Arc<[SiteCode]>,
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
}

#[tonic::async_trait]
impl ProjectService for ProjectsApi {
    async fn create_site(
        &self,
        req: Request<pb::CreateSiteRequest>,
    ) -> Result<Response<pb::CreateSiteResponse>, Status> {
        call(
            req,
            |ctx, r| async move { sites::create(self, ctx, r).await },
        )
        .await
    }

    async fn get_site(
        &self,
        req: Request<pb::GetSiteRequest>,
    ) -> Result<Response<pb::GetSiteResponse>, Status> {
        call(req, |ctx, r| async move { sites::get(self, ctx, r).await }).await
    }

    async fn list_sites(
        &self,
        req: Request<pb::ListSitesRequest>,
    ) -> Result<Response<pb::ListSitesResponse>, Status> {
        call(req, |ctx, r| async move { sites::list(self, ctx, r).await }).await
    }

    async fn create_ward(
        &self,
        req: Request<pb::CreateWardRequest>,
    ) -> Result<Response<pb::CreateWardResponse>, Status> {
        call(
            req,
            |ctx, r| async move { wards::create(self, ctx, r).await },
        )
        .await
    }

    async fn get_ward(
        &self,
        req: Request<pb::GetWardRequest>,
    ) -> Result<Response<pb::GetWardResponse>, Status> {
        call(req, |ctx, r| async move { wards::get(self, ctx, r).await }).await
    }

    async fn list_wards(
        &self,
        req: Request<pb::ListWardsRequest>,
    ) -> Result<Response<pb::ListWardsResponse>, Status> {
        call(req, |ctx, r| async move { wards::list(self, ctx, r).await }).await
    }

    async fn create_idea(
        &self,
        req: Request<pb::CreateIdeaRequest>,
    ) -> Result<Response<pb::CreateIdeaResponse>, Status> {
        call(
            req,
            |ctx, r| async move { ideas::create(self, ctx, r).await },
        )
        .await
    }

    async fn get_idea(
        &self,
        req: Request<pb::GetIdeaRequest>,
    ) -> Result<Response<pb::GetIdeaResponse>, Status> {
        call(req, |ctx, r| async move { ideas::get(self, ctx, r).await }).await
    }

    async fn list_ideas(
        &self,
        req: Request<pb::ListIdeasRequest>,
    ) -> Result<Response<pb::ListIdeasResponse>, Status> {
        call(req, |ctx, r| async move { ideas::list(self, ctx, r).await }).await
    }

    async fn review_idea(
        &self,
        req: Request<pb::ReviewIdeaRequest>,
    ) -> Result<Response<pb::ReviewIdeaResponse>, Status> {
        call(
            req,
            |ctx, r| async move { ideas::review(self, ctx, r).await },
        )
        .await
    }

    async fn accept_idea(
        &self,
        req: Request<pb::AcceptIdeaRequest>,
    ) -> Result<Response<pb::AcceptIdeaResponse>, Status> {
        call(
            req,
            |ctx, r| async move { ideas::accept(self, ctx, r).await },
        )
        .await
    }

    async fn decline_idea(
        &self,
        req: Request<pb::DeclineIdeaRequest>,
    ) -> Result<Response<pb::DeclineIdeaResponse>, Status> {
        call(
            req,
            |ctx, r| async move { ideas::decline(self, ctx, r).await },
        )
        .await
    }

    async fn merge_idea(
        &self,
        req: Request<pb::MergeIdeaRequest>,
    ) -> Result<Response<pb::MergeIdeaResponse>, Status> {
        call(
            req,
            |ctx, r| async move { ideas::merge(self, ctx, r).await },
        )
        .await
    }

    async fn reopen_idea(
        &self,
        req: Request<pb::ReopenIdeaRequest>,
    ) -> Result<Response<pb::ReopenIdeaResponse>, Status> {
        call(
            req,
            |ctx, r| async move { ideas::reopen(self, ctx, r).await },
        )
        .await
    }

    async fn create_project(
        &self,
        req: Request<pb::CreateProjectRequest>,
    ) -> Result<Response<pb::CreateProjectResponse>, Status> {
        call(
            req,
            |ctx, r| async move { projects::create(self, ctx, r).await },
        )
        .await
    }

    async fn get_project(
        &self,
        req: Request<pb::GetProjectRequest>,
    ) -> Result<Response<pb::GetProjectResponse>, Status> {
        call(
            req,
            |ctx, r| async move { projects::get(self, ctx, r).await },
        )
        .await
    }

    async fn list_projects(
        &self,
        req: Request<pb::ListProjectsRequest>,
    ) -> Result<Response<pb::ListProjectsResponse>, Status> {
        call(
            req,
            |ctx, r| async move { projects::list(self, ctx, r).await },
        )
        .await
    }

    async fn update_project(
        &self,
        req: Request<pb::UpdateProjectRequest>,
    ) -> Result<Response<pb::UpdateProjectResponse>, Status> {
        call(
            req,
            |ctx, r| async move { projects::update(self, ctx, r).await },
        )
        .await
    }

    async fn start_project(
        &self,
        req: Request<pb::StartProjectRequest>,
    ) -> Result<Response<pb::StartProjectResponse>, Status> {
        call(
            req,
            |ctx, r| async move { projects::start(self, ctx, r).await },
        )
        .await
    }

    async fn complete_project(
        &self,
        req: Request<pb::CompleteProjectRequest>,
    ) -> Result<Response<pb::CompleteProjectResponse>, Status> {
        call(req, |ctx, r| async move {
            projects::complete(self, ctx, r).await
        })
        .await
    }

    async fn stop_project(
        &self,
        req: Request<pb::StopProjectRequest>,
    ) -> Result<Response<pb::StopProjectResponse>, Status> {
        call(
            req,
            |ctx, r| async move { projects::stop(self, ctx, r).await },
        )
        .await
    }

    async fn record_progress_score(
        &self,
        req: Request<pb::RecordProgressScoreRequest>,
    ) -> Result<Response<pb::RecordProgressScoreResponse>, Status> {
        call(
            req,
            |ctx, r| async move { scores::record(self, ctx, r).await },
        )
        .await
    }

    async fn list_progress_scores(
        &self,
        req: Request<pb::ListProgressScoresRequest>,
    ) -> Result<Response<pb::ListProgressScoresResponse>, Status> {
        call(
            req,
            |ctx, r| async move { scores::list(self, ctx, r).await },
        )
        .await
    }

    async fn create_team_member(
        &self,
        req: Request<pb::CreateTeamMemberRequest>,
    ) -> Result<Response<pb::CreateTeamMemberResponse>, Status> {
        call(
            req,
            |ctx, r| async move { team::create(self, ctx, r).await },
        )
        .await
    }

    async fn list_team_members(
        &self,
        req: Request<pb::ListTeamMembersRequest>,
    ) -> Result<Response<pb::ListTeamMembersResponse>, Status> {
        call(req, |ctx, r| async move { team::list(self, ctx, r).await }).await
    }

    async fn delete_team_member(
        &self,
        req: Request<pb::DeleteTeamMemberRequest>,
    ) -> Result<Response<pb::DeleteTeamMemberResponse>, Status> {
        call(
            req,
            |ctx, r| async move { team::delete(self, ctx, r).await },
        )
        .await
    }

    async fn create_measure(
        &self,
        req: Request<pb::CreateMeasureRequest>,
    ) -> Result<Response<pb::CreateMeasureResponse>, Status> {
        call(
            req,
            |ctx, r| async move { measures::create(self, ctx, r).await },
        )
        .await
    }

    async fn list_measures(
        &self,
        req: Request<pb::ListMeasuresRequest>,
    ) -> Result<Response<pb::ListMeasuresResponse>, Status> {
        call(
            req,
            |ctx, r| async move { measures::list(self, ctx, r).await },
        )
        .await
    }

    async fn delete_measure(
        &self,
        req: Request<pb::DeleteMeasureRequest>,
    ) -> Result<Response<pb::DeleteMeasureResponse>, Status> {
        call(
            req,
            |ctx, r| async move { measures::delete(self, ctx, r).await },
        )
        .await
    }

    async fn create_pdsa_cycle(
        &self,
        req: Request<pb::CreatePdsaCycleRequest>,
    ) -> Result<Response<pb::CreatePdsaCycleResponse>, Status> {
        call(
            req,
            |ctx, r| async move { pdsa::create(self, ctx, r).await },
        )
        .await
    }

    async fn get_pdsa_cycle(
        &self,
        req: Request<pb::GetPdsaCycleRequest>,
    ) -> Result<Response<pb::GetPdsaCycleResponse>, Status> {
        call(req, |ctx, r| async move { pdsa::get(self, ctx, r).await }).await
    }

    async fn list_pdsa_cycles(
        &self,
        req: Request<pb::ListPdsaCyclesRequest>,
    ) -> Result<Response<pb::ListPdsaCyclesResponse>, Status> {
        call(req, |ctx, r| async move { pdsa::list(self, ctx, r).await }).await
    }

    async fn update_pdsa_cycle(
        &self,
        req: Request<pb::UpdatePdsaCycleRequest>,
    ) -> Result<Response<pb::UpdatePdsaCycleResponse>, Status> {
        call(
            req,
            |ctx, r| async move { pdsa::update(self, ctx, r).await },
        )
        .await
    }

    async fn decide_pdsa_cycle(
        &self,
        req: Request<pb::DecidePdsaCycleRequest>,
    ) -> Result<Response<pb::DecidePdsaCycleResponse>, Status> {
        call(
            req,
            |ctx, r| async move { pdsa::decide(self, ctx, r).await },
        )
        .await
    }

    async fn create_engagement_activity(
        &self,
        req: Request<pb::CreateEngagementActivityRequest>,
    ) -> Result<Response<pb::CreateEngagementActivityResponse>, Status> {
        call(req, |ctx, r| async move {
            engagement::create(self, ctx, r).await
        })
        .await
    }

    async fn list_engagement_activities(
        &self,
        req: Request<pb::ListEngagementActivitiesRequest>,
    ) -> Result<Response<pb::ListEngagementActivitiesResponse>, Status> {
        call(
            req,
            |ctx, r| async move { engagement::list(self, ctx, r).await },
        )
        .await
    }

    async fn create_programme(
        &self,
        req: Request<pb::CreateProgrammeRequest>,
    ) -> Result<Response<pb::CreateProgrammeResponse>, Status> {
        call(req, |ctx, r| async move {
            programmes::create(self, ctx, r).await
        })
        .await
    }

    async fn get_programme(
        &self,
        req: Request<pb::GetProgrammeRequest>,
    ) -> Result<Response<pb::GetProgrammeResponse>, Status> {
        call(
            req,
            |ctx, r| async move { programmes::get(self, ctx, r).await },
        )
        .await
    }

    async fn list_programmes(
        &self,
        req: Request<pb::ListProgrammesRequest>,
    ) -> Result<Response<pb::ListProgrammesResponse>, Status> {
        call(
            req,
            |ctx, r| async move { programmes::list(self, ctx, r).await },
        )
        .await
    }

    async fn plan_waves(
        &self,
        req: Request<pb::PlanWavesRequest>,
    ) -> Result<Response<pb::PlanWavesResponse>, Status> {
        call(req, |ctx, r| async move { waves::plan(self, ctx, r).await }).await
    }

    async fn list_waves(
        &self,
        req: Request<pb::ListWavesRequest>,
    ) -> Result<Response<pb::ListWavesResponse>, Status> {
        call(req, |ctx, r| async move { waves::list(self, ctx, r).await }).await
    }

    async fn create_ward_enrolment(
        &self,
        req: Request<pb::CreateWardEnrolmentRequest>,
    ) -> Result<Response<pb::CreateWardEnrolmentResponse>, Status> {
        call(req, |ctx, r| async move {
            enrolments::create(self, ctx, r).await
        })
        .await
    }

    async fn list_ward_enrolments(
        &self,
        req: Request<pb::ListWardEnrolmentsRequest>,
    ) -> Result<Response<pb::ListWardEnrolmentsResponse>, Status> {
        call(
            req,
            |ctx, r| async move { enrolments::list(self, ctx, r).await },
        )
        .await
    }

    async fn start_ward_assessment(
        &self,
        req: Request<pb::StartWardAssessmentRequest>,
    ) -> Result<Response<pb::StartWardAssessmentResponse>, Status> {
        call(req, |ctx, r| async move {
            enrolments::start_assessment(self, ctx, r).await
        })
        .await
    }

    async fn accredit_ward(
        &self,
        req: Request<pb::AccreditWardRequest>,
    ) -> Result<Response<pb::AccreditWardResponse>, Status> {
        call(req, |ctx, r| async move {
            enrolments::accredit(self, ctx, r).await
        })
        .await
    }

    async fn withdraw_ward_enrolment(
        &self,
        req: Request<pb::WithdrawWardEnrolmentRequest>,
    ) -> Result<Response<pb::WithdrawWardEnrolmentResponse>, Status> {
        call(req, |ctx, r| async move {
            enrolments::withdraw(self, ctx, r).await
        })
        .await
    }

    async fn get_ward_programme_progress(
        &self,
        req: Request<pb::GetWardProgrammeProgressRequest>,
    ) -> Result<Response<pb::GetWardProgrammeProgressResponse>, Status> {
        call(
            req,
            |ctx, r| async move { waves::progress(self, ctx, r).await },
        )
        .await
    }

    async fn get_portfolio_summary(
        &self,
        req: Request<pb::GetPortfolioSummaryRequest>,
    ) -> Result<Response<pb::GetPortfolioSummaryResponse>, Status> {
        call(
            req,
            |ctx, r| async move { portfolio::get(self, ctx, r).await },
        )
        .await
    }
}
