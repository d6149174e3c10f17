//! Patient engagement activities of a project (`{project}/engagementActivities/{id}`):
//! what was held, when, with how many people. With patient partners on the team, they make
//! a project count as co-produced; the project keeps a count for the portfolio.

use chrono::NaiveDate;
use qi_platform::calendar::not_future;
use qi_platform::convert::{date, int_in, long_text, required_date, timestamp};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, Violations, idempotency};
use qi_proto::projects as pb;
use uuid::Uuid;

use crate::ProjectsApi;
use crate::projects;
use crate::stored::{Column, required_enum};

const COLLECTION: &str = "engagementActivities";

crate::stored::column_enum!(EngagementKind, "engagement kind", {
    Survey => "survey",
    Interview => "interview",
    FocusGroup => "focus_group",
    Workshop => "workshop",
    PatientStory => "patient_story",
    Other => "other",
});

#[derive(sqlx::FromRow)]
struct ActivityRow {
    id: Uuid,
    activity_date: NaiveDate,
    kind: String,
    participants: i32,
    summary: String,
    create_time: chrono::DateTime<chrono::Utc>,
}

fn to_proto(project: &str, r: ActivityRow) -> Result<pb::EngagementActivity, Error> {
    Ok(pb::EngagementActivity {
        name: format!("{project}/{COLLECTION}/{}", r.id),
        activity_date: Some(date(r.activity_date)),
        kind: pb::EngagementKind::from_column(&r.kind)? as i32,
        participants: r.participants,
        summary: r.summary,
        create_time: Some(timestamp(r.create_time)),
    })
}

const COLUMNS: &str = "id, activity_date, kind, participants, summary, create_time";

pub(crate) async fn create(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::CreateEngagementActivityRequest,
) -> Result<pb::CreateEngagementActivityResponse, Error> {
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
            .and_then(|d| not_future("engagement_activity.activity_date", d))
            .map(Some),
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
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let project = projects::resolve(&mut tx, &ctx, "parent", &req.parent, true).await?;
    if let Some(saved) = idempotency::claim(&mut tx, &ctx, &req.request_id, &req).await? {
        return Ok(saved);
    }
    project.require_open()?;
    let row: ActivityRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO engagement_activity (project_uid, id, activity_date, kind, participants, summary)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    )))
    .bind(project.uid)
    .bind(Uuid::now_v7())
    .bind(day)
    .bind(kind.column())
    .bind(participants)
    .bind(&summary)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("UPDATE project SET engagement_count = engagement_count + 1 WHERE uid = $1")
        .bind(project.uid)
        .execute(&mut *tx)
        .await?;
    let resp = pb::CreateEngagementActivityResponse {
        engagement_activity: Some(to_proto(&project.name(), row)?),
    };
    idempotency::record(&mut tx, &ctx, &req.request_id, &resp).await?;
    tx.commit().await?;
    Ok(resp)
}

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
    let bad = || Error::invalid("page_token", "not a token this list returned");
    let after_date: Option<NaiveDate> = page
        .after_key(0)
        .map(str::parse)
        .transpose()
        .map_err(|_| bad())?;
    let after_id: Option<Uuid> = page
        .after_key(1)
        .map(str::parse)
        .transpose()
        .map_err(|_| bad())?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let project = projects::resolve(&mut conn, &ctx, "parent", &parent, false).await?;
    let rows: Vec<ActivityRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM engagement_activity
         WHERE project_uid = $1
           AND ($2::date IS NULL OR (activity_date, id) < ($2, $3))
         ORDER BY activity_date DESC, id DESC LIMIT $4"
    )))
    .bind(project.uid)
    .bind(after_date)
    .bind(after_id)
    .bind(page.limit())
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next_page_token) = page.finish(rows, |r| {
        vec![r.activity_date.to_string(), r.id.to_string()]
    });
    let name = project.name();
    Ok(pb::ListEngagementActivitiesResponse {
        engagement_activities: rows
            .into_iter()
            .map(|r| to_proto(&name, r))
            .collect::<Result<_, _>>()?,
        next_page_token,
    })
}
