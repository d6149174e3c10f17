//! An idea's history: every state it enters (submitted first), when, who moved it and why,
//! kept in `idea_event` as each move is written, so the portfolio's funnel can count time
//! in each stage and conversion between stages.
//!
//! A move made before the suite existed is loaded with its `effective_date`: it is put at
//! noon (Europe/London) of that day, and may not come before the idea's last step, so the
//! history reads in order.

use chrono::{DateTime, NaiveDate, Utc};
use qi_platform::calendar::{london_date, london_noon, not_future};
use qi_platform::convert::{optional_date, timestamp};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error};
use qi_proto::google::r#type::Date;
use qi_proto::projects as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::ProjectsApi;
use crate::stored::Column;

/// Who makes a move, and when.
#[derive(Debug, Clone)]
pub(super) struct Step {
    pub(super) at: DateTime<Utc>,
    /// Set when the caller dated the move: it is checked against the last step.
    dated: Option<NaiveDate>,
    actor: String,
    actor_staff: Option<String>,
}

impl Step {
    /// A move by the caller, now or on the `effective_date` it gives (read from `field`).
    pub(super) fn parse(
        ctx: &AccessContext,
        field: &str,
        effective_date: Option<&Date>,
    ) -> Result<Self, Error> {
        let dated = optional_date(field, effective_date)?
            .map(|d| not_future(field, d))
            .transpose()?;
        Ok(Self::by(ctx, dated))
    }

    /// A move by the caller on day `dated` (`None`: now).
    pub(super) fn by(ctx: &AccessContext, dated: Option<NaiveDate>) -> Self {
        let now = Utc::now();
        Step {
            // Noon of today may be later than now: a step is never in the future.
            at: dated.map_or(now, |d| london_noon(d).min(now)),
            dated,
            actor: ctx.subject.clone(),
            actor_staff: ctx.employee.as_ref().map(qi_names::staff_name),
        }
    }
}

/// Keeps the idea `uid` entering `state` at `step`, after its last step, and returns the
/// time it is kept at: a dated step before the last step's day is refused, and one earlier
/// the same day is put at the last step's time.
pub(super) async fn record(
    conn: &mut PgConnection,
    uid: Uuid,
    state: &str,
    step: &Step,
    reason: &str,
) -> Result<DateTime<Utc>, Error> {
    let last = sqlx::query!(
        "SELECT seq, event_time FROM idea_event WHERE idea_uid = $1 ORDER BY seq DESC LIMIT 1",
        uid,
    )
    .fetch_optional(&mut *conn)
    .await?;
    let (seq, at) = match last {
        None => (1, step.at),
        Some(last) => {
            if let Some(d) = step.dated {
                let last_day = london_date(last.event_time);
                if d < last_day {
                    return Err(Error::invalid(
                        "effective_date",
                        format!("{d} is before the idea's last step, on {last_day}"),
                    ));
                }
            }
            (last.seq + 1, step.at.max(last.event_time))
        }
    };
    sqlx::query!(
        "INSERT INTO idea_event (idea_uid, seq, state, event_time, actor, actor_staff, reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        uid,
        seq,
        state,
        at,
        step.actor,
        step.actor_staff,
        reason,
    )
    .execute(&mut *conn)
    .await?;
    Ok(at)
}

/// Reads an idea's history, oldest first.
pub(crate) async fn list(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::ListIdeaEventsRequest,
) -> Result<pb::ListIdeaEventsResponse, Error> {
    use qi_platform::names::OwnerAccess as _;
    let pb::ListIdeaEventsRequest {
        parent,
        page_size,
        page_token,
    } = req;
    let (site, id) = super::parse_name("parent", &parent)?;
    qi_platform::names::Owner::Site(site.clone()).check_read(&ctx)?;
    let page = Page::parse(page_size, &page_token, &parent)?;
    let after: Option<i32> = page.parsed_key(0)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let rows = sqlx::query!(
        r#"SELECT e.seq AS "seq?", e.state AS "state?", e.event_time AS "event_time?",
                e.actor AS "actor?", e.actor_staff, e.reason AS "reason?"
         FROM idea i
         LEFT JOIN idea_event e ON e.idea_uid = i.uid AND e.seq > coalesce($3, 0)
         WHERE i.site = $1 AND i.id = $2
         ORDER BY e.seq LIMIT $4"#,
        site.as_str(),
        id,
        after,
        page.limit(),
    )
    .fetch_all(&mut *conn)
    .await?;
    // The join keeps the idea's row when it has no (more) steps: no row, no idea.
    if rows.is_empty() {
        return Err(Error::not_found(&parent));
    }
    let rows: Vec<_> = rows.into_iter().filter(|r| r.seq.is_some()).collect();
    let (rows, next_page_token) = page.finish(rows, |r| vec![r.seq.unwrap_or(0).to_string()]);
    let idea_events = rows
        .into_iter()
        .map(|r| {
            let state = pb::IdeaState::from_column(r.state.as_deref().unwrap_or_default())?;
            Ok(pb::IdeaEvent {
                state: state.into(),
                event_time: r.event_time.map(timestamp),
                actor: r.actor.unwrap_or_default(),
                actor_staff: r.actor_staff.unwrap_or_default(),
                reason: r.reason.unwrap_or_default(),
            })
        })
        .collect::<Result<_, Error>>()?;
    Ok(pb::ListIdeaEventsResponse {
        idea_events,
        next_page_token,
    })
}
