//! `GetOverview`: the programme's headline for the caller's sites, gathered from the three
//! services in parallel. Each sub-call carries the caller's own access context (signed for
//! that sub-call's method), so every service scopes its answer exactly as it would for the
//! caller. A service that fails or is slow leaves its figures out and is named in
//! `unavailable`; the others still answer.

use std::time::Duration;

use qi_platform::access::ACCESS_HEADER;
use qi_platform::deadline::CallDeadline;
use qi_platform::{AccessContext, Error};
use qi_proto::gateway as pb;
use qi_proto::metrics as m;
use qi_proto::metrics::metric_service_client::MetricServiceClient;
use qi_proto::projects as p;
use qi_proto::projects::project_service_client::ProjectServiceClient;
use qi_proto::training as t;
use qi_proto::training::training_service_client::TrainingServiceClient;
use tonic::Status;
use tonic::transport::Channel;

use crate::own::Own;
use crate::proxy::Gateway;
use crate::{Backend, Metrics, Projects, Training};

/// How long the overview waits for each service.
const WAIT: Duration = Duration::from_secs(5);

/// A request to `method` of `service`, carrying the caller's context re-signed for it.
fn as_caller<T>(
    gw: &Gateway,
    ctx: &AccessContext,
    service: &str,
    method: &str,
    wait: Duration,
    message: T,
) -> Result<tonic::Request<T>, Status> {
    let sub = AccessContext {
        method: format!("/{service}/{method}"),
        ..ctx.clone()
    };
    let mut req = tonic::Request::new(message);
    req.metadata_mut().insert(ACCESS_HEADER, gw.signed(&sub)?);
    req.metadata_mut()
        .insert("grpc-timeout", qi_platform::deadline::grpc_timeout(wait));
    Ok(req)
}

fn channel(gw: &Gateway, service: &str) -> Result<Channel, Status> {
    gw.backend_channel(service)
        .ok_or_else(|| crate::proxy::no_backend(service))
}

async fn training(
    gw: &Gateway,
    ctx: &AccessContext,
    wait: Duration,
) -> Result<t::GetTrainingSummaryResponse, Status> {
    let mut client = TrainingServiceClient::new(channel(gw, Training::NAME)?);
    let req = t::GetTrainingSummaryRequest {
        parent: "sites/-".into(),
        ..Default::default()
    };
    Ok(client
        .get_training_summary(as_caller(
            gw,
            ctx,
            Training::NAME,
            "GetTrainingSummary",
            wait,
            req,
        )?)
        .await?
        .into_inner())
}

/// The portfolio, and the wards enrolled across the ward programmes the caller can see.
async fn projects(
    gw: &Gateway,
    ctx: &AccessContext,
    wait: Duration,
) -> Result<(p::PortfolioCounts, i64), Status> {
    let mut client = ProjectServiceClient::new(channel(gw, Projects::NAME)?);
    let portfolio = client
        .get_portfolio_summary(as_caller(
            gw,
            ctx,
            Projects::NAME,
            "GetPortfolioSummary",
            wait,
            p::GetPortfolioSummaryRequest {
                parent: "sites/-".into(),
                ..Default::default()
            },
        )?)
        .await?
        .into_inner()
        .totals
        .unwrap_or_default();
    let mut wards = 0i64;
    for parent in ["sites/-", "trust"] {
        let mut page_token = String::new();
        loop {
            let page = client
                .list_programmes(as_caller(
                    gw,
                    ctx,
                    Projects::NAME,
                    "ListProgrammes",
                    wait,
                    p::ListProgrammesRequest {
                        parent: parent.into(),
                        kind: p::ProgrammeKind::WardProgramme as i32,
                        page_size: 500,
                        page_token: page_token.clone(),
                    },
                )?)
                .await?
                .into_inner();
            for programme in page.programmes {
                let progress = client
                    .get_ward_programme_progress(as_caller(
                        gw,
                        ctx,
                        Projects::NAME,
                        "GetWardProgrammeProgress",
                        wait,
                        p::GetWardProgrammeProgressRequest {
                            programme: programme.name,
                        },
                    )?)
                    .await?
                    .into_inner();
                wards += i64::from(progress.wards_enrolled);
            }
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
    }
    Ok((portfolio, wards))
}

/// (metrics on the dashboard, metrics whose latest point is a concern).
async fn metrics(gw: &Gateway, ctx: &AccessContext, wait: Duration) -> Result<(i64, i64), Status> {
    let mut client = MetricServiceClient::new(channel(gw, Metrics::NAME)?);
    let (mut shown, mut concern) = (0i64, 0i64);
    let mut page_token = String::new();
    loop {
        let page = client
            .get_qms_dashboard(as_caller(
                gw,
                ctx,
                Metrics::NAME,
                "GetQmsDashboard",
                wait,
                m::GetQmsDashboardRequest {
                    parent: "sites/-".into(),
                    page_size: 500,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
            )?)
            .await?
            .into_inner();
        for row in &page.rows {
            shown += 1;
            let icon = m::SpcVariationIcon::try_from(row.variation_icon);
            if matches!(
                icon,
                Ok(m::SpcVariationIcon::ConcernHigh | m::SpcVariationIcon::ConcernLow)
            ) {
                concern += 1;
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    Ok((shown, concern))
}

/// `GetOverview`: gathers the overview for the caller. Each service is waited for at most
/// [`WAIT`], and never past what is left of the call's own deadline, which the services are
/// given too.
pub(crate) async fn get(
    own: &Own,
    ctx: AccessContext,
    _: pb::GetOverviewRequest,
) -> Result<pb::GetOverviewResponse, Error> {
    let gw = own.gateway();
    let remaining = CallDeadline::current().map_or(gw.default_timeout(), |d| d.remaining());
    let wait = WAIT.min(remaining);
    let (trained, portfolio, dashboard) = tokio::join!(
        tokio::time::timeout(wait, training(gw, &ctx, wait)),
        tokio::time::timeout(wait, projects(gw, &ctx, wait)),
        tokio::time::timeout(wait, metrics(gw, &ctx, wait)),
    );
    let mut overview = pb::Overview {
        sites: ctx.sites.to_claim(),
        ..Default::default()
    };
    match trained {
        Ok(Ok(t)) => {
            overview.staff_trained = t.staff_trained;
            overview.trained_by_course = t
                .course_totals
                .into_iter()
                .map(|c| pb::CourseCount {
                    course_code: c.course_code,
                    staff: c.staff,
                })
                .collect();
        }
        failed => note(&mut overview, Training::NAME, failed.map(|r| r.map(|_| ()))),
    }
    match portfolio {
        Ok(Ok((counts, wards))) => {
            overview.ideas_received = counts.ideas_received;
            overview.projects_in_progress = counts.projects_in_progress;
            overview.projects_completed = counts.projects_completed;
            overview.projects_coproduced = counts.projects_coproduced;
            overview.wards_in_programme = wards;
        }
        failed => note(&mut overview, Projects::NAME, failed.map(|r| r.map(|_| ()))),
    }
    match dashboard {
        Ok(Ok((shown, concern))) => {
            overview.metrics_on_dashboard = shown;
            overview.metrics_of_concern = concern;
        }
        failed => note(&mut overview, Metrics::NAME, failed.map(|r| r.map(|_| ()))),
    }
    Ok(pb::GetOverviewResponse {
        overview: Some(overview),
    })
}

fn note(
    overview: &mut pb::Overview,
    service: &str,
    outcome: Result<Result<(), Status>, tokio::time::error::Elapsed>,
) {
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(status)) => {
            tracing::warn!(service, code = ?status.code(), message = status.message(), "overview: a service failed");
            overview.unavailable.push(service.to_owned());
        }
        Err(_) => {
            tracing::warn!(service, "overview: a service did not answer in time");
            overview.unavailable.push(service.to_owned());
        }
    }
}
