//! Patient engagement activities of a project (`{project}/engagementActivities/{id}`):
//! what was held, when, with how many people. With patient partners on the team, they make
//! a project count as co-produced; the project keeps a count for the portfolio.

mod store;

use chrono::NaiveDate;
use qi_platform::calendar::not_future;
use qi_platform::changes::Kind;
use qi_platform::convert::{int_in, long_text, required_date};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, Violations, idempotency};
use qi_proto::projects as pb;
use uuid::Uuid;

use crate::ProjectsApi;
use crate::projects;
use crate::stored::required_enum;

const COLLECTION: &str = "engagementActivities";

crate::stored::column_enum!(EngagementKind, "engagement kind", {
    Survey => "survey",
    Interview => "interview",
    FocusGroup => "focus_group",
    Workshop => "workshop",
    PatientStory => "patient_story",
    Other => "other",
});

/// Records an engagement activity of an open project.
pub(crate) async fn create(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::CreateEngagementActivityRequest,
) -> Result<pb::CreateEngagementActivityResponse, Error> {
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let project = projects::resolve(&mut tx, &ctx, "parent", &req.parent, true).await?;
    let mut v = Violations::new();
    v.check(idempotency::validate_request_id(&req.request_id));
    let Some(activity) = req.engagement_activity.as_ref() else {
        return Err(v.missing("engagement_activity"));
    };
    let pb::EngagementActivity {
        name: _,
        activity_date,
        kind,
        participants,
        summary,
        create_time: _,
    } = activity;
    let day = v.check(
        required_date("engagement_activity.activity_date", activity_date.as_ref())
            .and_then(|d| not_future("engagement_activity.activity_date", d)),
    );
    let kind = v.check(required_enum::<pb::EngagementKind>(
        "engagement_activity.kind",
        *kind,
    ));
    let participants = v.check(int_in(
        "engagement_activity.participants",
        *participants,
        1..=100_000,
    ));
    let summary = v.check(long_text("engagement_activity.summary", summary, 5000));
    v.finish()?;
    idempotency::once(tx, &ctx, &req.request_id, &req, async |tx| {
        project.require_open()?;
        let activity = store::insert(tx, &project, day, kind, participants, &summary).await?;
        let sites = crate::feed::project_sites(&project);
        let kind = Kind::Created;
        crate::feed::record(tx, COLLECTION, &activity.name, kind, sites, &activity).await?;
        // It counts its activities.
        crate::feed::record_project(tx, &project).await?;
        Ok(pb::CreateEngagementActivityResponse {
            engagement_activity: Some(activity),
        })
    })
    .await
}

/// Lists a project's engagement activities, latest first.
pub(crate) async fn list(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::ListEngagementActivitiesRequest,
) -> Result<pb::ListEngagementActivitiesResponse, Error> {
    let pb::ListEngagementActivitiesRequest {
        parent,
        page_size,
        page_token,
    } = req;
    let page = Page::parse(page_size, &page_token, &parent)?;
    let after_date: Option<NaiveDate> = page.parsed_key(0)?;
    let after_id: Option<Uuid> = page.parsed_key(1)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let project = projects::resolve(&mut conn, &ctx, "parent", &parent, false).await?;
    let (engagement_activities, next_page_token) =
        store::list(&mut conn, &project, after_date, after_id, &page).await?;
    Ok(pb::ListEngagementActivitiesResponse {
        engagement_activities,
        next_page_token,
    })
}
