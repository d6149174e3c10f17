//! The `team_member` table, and the count of patient partners the project keeps in step.

use qi_platform::Error;
use qi_platform::convert::timestamp;
use qi_platform::paging::Page;
use qi_proto::projects as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{COLLECTION, NewMember};
use crate::projects::ProjectRef;
use crate::stored::Column;

struct MemberRow {
    id: Uuid,
    staff: Option<String>,
    display_name: String,
    role: String,
    affiliation: String,
    create_time: chrono::DateTime<chrono::Utc>,
}

fn to_proto(project: &str, r: MemberRow) -> Result<pb::TeamMember, Error> {
    Ok(pb::TeamMember {
        name: format!("{project}/{COLLECTION}/{}", r.id),
        staff: r.staff.unwrap_or_default(),
        display_name: r.display_name,
        role: pb::TeamRole::from_column(&r.role)? as i32,
        affiliation: r.affiliation,
        create_time: Some(timestamp(r.create_time)),
    })
}

/// `query_as!` into [`MemberRow`] of `$head`, the member's columns, then `$tail`: the
/// columns are written once, and every statement is still checked at build time.
macro_rules! member_rows {
    ($head:literal, $tail:literal, $($arg:expr),* $(,)?) => {
        sqlx::query_as!(
            MemberRow,
            $head + "id, staff, display_name, role, affiliation, create_time" + $tail,
            $($arg),*
        )
    };
}

/// Adds a member to a project's team, counting a patient partner on the project; `None`
/// if the staff member is on the team already.
pub(super) async fn insert(
    conn: &mut PgConnection,
    project: &ProjectRef,
    new: &NewMember,
) -> Result<Option<pb::TeamMember>, Error> {
    let row = member_rows!(
        "INSERT INTO team_member (project_uid, id, staff, display_name, role, affiliation)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (project_uid, staff) DO NOTHING
         RETURNING ",
        "",
        project.uid,
        Uuid::now_v7(),
        new.staff,
        new.display_name,
        new.role.column(),
        new.affiliation,
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    if new.role == pb::TeamRole::PatientPartner {
        sqlx::query!(
            "UPDATE project SET patient_partner_count = patient_partner_count + 1 WHERE uid = $1",
            project.uid,
        )
        .execute(&mut *conn)
        .await?;
    }
    to_proto(&project.name(), row).map(Some)
}

/// One page of a project's team, in the order members were added.
pub(super) async fn list(
    conn: &mut PgConnection,
    project: &ProjectRef,
    after: Option<Uuid>,
    page: &Page,
) -> Result<(Vec<pb::TeamMember>, String), Error> {
    let rows = member_rows!(
        "SELECT ",
        " FROM team_member
         WHERE project_uid = $1 AND ($2::uuid IS NULL OR id > $2)
         ORDER BY id LIMIT $3",
        project.uid,
        after,
        page.limit(),
    )
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| vec![r.id.to_string()]);
    let name = project.name();
    let members = rows
        .into_iter()
        .map(|r| to_proto(&name, r))
        .collect::<Result<_, _>>()?;
    Ok((members, next))
}

/// Removes a member from a project's team, uncounting a patient partner; `false` if there
/// was no such member.
pub(super) async fn delete(
    conn: &mut PgConnection,
    project: &ProjectRef,
    id: Uuid,
) -> Result<bool, Error> {
    let role = sqlx::query_scalar!(
        "DELETE FROM team_member WHERE project_uid = $1 AND id = $2 RETURNING role",
        project.uid,
        id,
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(role) = role else {
        return Ok(false);
    };
    if role == "patient_partner" {
        sqlx::query!(
            "UPDATE project SET patient_partner_count = patient_partner_count - 1 WHERE uid = $1",
            project.uid,
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(true)
}
