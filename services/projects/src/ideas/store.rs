//! The `idea` table: submitting, reading, paging and the triage moves' writes.

use chrono::NaiveDate;
use qi_platform::convert::{date, etag, timestamp};
use qi_platform::paging::Page;
use qi_platform::{Error, SiteCode};
use qi_proto::projects as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{COLLECTION, IdeaRef, NewIdea};
use crate::stored::Column;

/// Finds an idea for a change, locking its row.
pub(super) async fn lock(
    conn: &mut PgConnection,
    site: &SiteCode,
    id: &str,
) -> Result<Option<IdeaRef>, Error> {
    Ok(sqlx::query_as!(
        IdeaRef,
        "SELECT uid, site, id, title, description, ward_id, state, revision FROM idea
         WHERE site = $1 AND id = $2 FOR UPDATE",
        site.as_str(),
        id,
    )
    .fetch_optional(&mut *conn)
    .await?)
}

struct IdeaRow {
    uid: Uuid,
    site: String,
    id: String,
    title: String,
    description: String,
    ward_id: Option<String>,
    submitter: String,
    submitter_staff: Option<String>,
    theme: String,
    state: String,
    decline_reason: Option<String>,
    merged_idea: Option<String>,
    merged_project: Option<String>,
    project: Option<String>,
    reopen_reason: Option<String>,
    decision_time: Option<chrono::DateTime<chrono::Utc>>,
    submit_date: NaiveDate,
    create_time: chrono::DateTime<chrono::Utc>,
    update_time: chrono::DateTime<chrono::Utc>,
    revision: i64,
}

/// `query_as!` into [`IdeaRow`] of the idea's columns (with the names it links to) and
/// `$tail`: the columns are written once, and every statement is still checked at build time.
macro_rules! idea_rows {
    ($tail:literal, $($arg:expr),* $(,)?) => {
        sqlx::query_as!(
            IdeaRow,
            "SELECT i.uid, i.site, i.id, i.title, i.description, i.ward_id, i.submitter,
                    i.submitter_staff, i.theme, i.state, i.decline_reason,
                    'sites/' || m.site || '/ideas/' || m.id AS merged_idea,
                    'sites/' || mp.lead_site || '/projects/' || mp.id AS merged_project,
                    'sites/' || p.lead_site || '/projects/' || p.id AS project,
                    i.reopen_reason, i.decision_time, i.submit_date, i.create_time,
                    i.update_time, i.revision
             FROM idea i
             LEFT JOIN idea m ON m.uid = i.merged_idea_uid
             LEFT JOIN project mp ON mp.uid = i.merged_project_uid
             LEFT JOIN project p ON p.uid = i.project_uid"
                + $tail,
            $($arg),*
        )
    };
}

impl TryFrom<IdeaRow> for pb::Idea {
    type Error = Error;
    fn try_from(r: IdeaRow) -> Result<Self, Error> {
        Ok(pb::Idea {
            name: format!("sites/{}/{COLLECTION}/{}", r.site, r.id),
            title: r.title,
            description: r.description,
            ward: r
                .ward_id
                .map(|w| format!("sites/{}/{}/{w}", r.site, crate::wards::COLLECTION))
                .unwrap_or_default(),
            submitter: r.submitter,
            submitter_staff: r.submitter_staff.unwrap_or_default(),
            theme: r.theme,
            state: pb::IdeaState::from_column(&r.state)? as i32,
            decline_reason: r.decline_reason.unwrap_or_default(),
            merged_into: r.merged_idea.or(r.merged_project).unwrap_or_default(),
            project: r.project.unwrap_or_default(),
            reopen_reason: r.reopen_reason.unwrap_or_default(),
            create_time: Some(timestamp(r.create_time)),
            update_time: Some(timestamp(r.update_time)),
            decision_time: r.decision_time.map(timestamp),
            etag: etag(r.revision),
            submit_date: Some(date(r.submit_date)),
        })
    }
}

/// Reads one idea by its internal id.
pub(super) async fn read(conn: &mut PgConnection, uid: Uuid) -> Result<pb::Idea, Error> {
    let row = idea_rows!(" WHERE i.uid = $1", uid)
        .fetch_one(&mut *conn)
        .await?;
    row.try_into()
}

/// Inserts a submitted idea; `None` if its id is taken at its site.
pub(super) async fn insert(
    conn: &mut PgConnection,
    new: &NewIdea,
    submit_date: NaiveDate,
) -> Result<Option<Uuid>, Error> {
    Ok(sqlx::query_scalar!(
        "INSERT INTO idea (uid, site, id, title, description, ward_id, submitter,
                           submitter_staff, theme, submit_date)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT DO NOTHING RETURNING uid",
        Uuid::now_v7(),
        new.site.as_str(),
        new.id,
        new.title,
        new.description,
        new.ward,
        new.submitter,
        new.submitter_staff,
        new.theme,
        submit_date,
    )
    .fetch_optional(&mut *conn)
    .await?)
}

/// Reads one idea by its site and id.
pub(super) async fn find(
    conn: &mut PgConnection,
    site: &SiteCode,
    id: &str,
) -> Result<Option<pb::Idea>, Error> {
    let row = idea_rows!(" WHERE i.site = $1 AND i.id = $2", site.as_str(), id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(TryInto::try_into).transpose()
}

/// One page of ideas, newest first, of `sites` (`None`: every site), in `state` if given
/// and with `theme` (any case) if not empty.
pub(super) async fn list(
    conn: &mut PgConnection,
    sites: Option<Vec<String>>,
    state: Option<&str>,
    theme: &str,
    after: Option<Uuid>,
    page: &Page,
) -> Result<(Vec<pb::Idea>, String), Error> {
    let rows = idea_rows!(
        "
         WHERE ($1::text[] IS NULL OR i.site = ANY($1))
           AND ($2::text IS NULL OR i.state = $2)
           AND ($3 = '' OR lower(i.theme) = lower($3))
           AND ($4::uuid IS NULL OR i.uid < $4)
         ORDER BY i.uid DESC LIMIT $5",
        sites.as_deref(),
        state,
        theme,
        after,
        page.limit(),
    )
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| vec![r.uid.to_string()]);
    let ideas = rows
        .into_iter()
        .map(TryInto::try_into)
        .collect::<Result<_, _>>()?;
    Ok((ideas, next))
}

/// The uid and state of the idea a merge names as its target, if it exists.
pub(super) async fn merge_target(
    conn: &mut PgConnection,
    site: &SiteCode,
    id: &str,
) -> Result<Option<(Uuid, String)>, Error> {
    let row = sqlx::query!(
        "SELECT uid, state FROM idea WHERE site = $1 AND id = $2",
        site.as_str(),
        id,
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| (r.uid, r.state)))
}

/// The write of one triage move.
pub(super) enum Triage<'a> {
    /// Under review.
    Review,
    /// Accepted, linked to the project it became.
    Accept { project: Uuid },
    /// Declined, with a reason.
    Decline { reason: &'a str },
    /// Merged into another idea or a project.
    Merge {
        idea: Option<Uuid>,
        project: Option<Uuid>,
    },
    /// Under review again, with a reason.
    Reopen { reason: &'a str },
}

/// Writes a triage move on the idea `uid`.
pub(super) async fn triage(conn: &mut PgConnection, uid: Uuid, t: Triage<'_>) -> Result<(), Error> {
    let query = match t {
        Triage::Review => {
            sqlx::query!("UPDATE idea SET state = 'under_review' WHERE uid = $1", uid)
        }
        Triage::Accept { project } => sqlx::query!(
            "UPDATE idea SET state = 'accepted', project_uid = $2, decision_time = now()
             WHERE uid = $1",
            uid,
            project,
        ),
        Triage::Decline { reason } => sqlx::query!(
            "UPDATE idea SET state = 'declined', decline_reason = $2, decision_time = now()
             WHERE uid = $1",
            uid,
            reason,
        ),
        Triage::Merge { idea, project } => sqlx::query!(
            "UPDATE idea SET state = 'merged', merged_idea_uid = $2, merged_project_uid = $3,
                    decision_time = now()
             WHERE uid = $1",
            uid,
            idea,
            project,
        ),
        Triage::Reopen { reason } => sqlx::query!(
            "UPDATE idea SET state = 'under_review', decline_reason = NULL,
                    reopen_reason = $2, decision_time = NULL
             WHERE uid = $1",
            uid,
            reason,
        ),
    };
    query.execute(&mut *conn).await?;
    Ok(())
}
