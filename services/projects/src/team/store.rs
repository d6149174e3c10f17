//! The `team_member` table, and the count of patient partners the project keeps in step.

use qi_platform::Error;
use qi_platform::convert::timestamp;
use qi_platform::paging::Page;
use qi_proto::projects as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{COLLECTION, Member};
use crate::projects::ProjectRef;
use crate::stored::Column;

struct MemberRow {
    id: Uuid,
    staff: Option<String>,
    display_name: String,
    role: String,
    affiliation: String,
    create_time: chrono::DateTime<chrono::Utc>,
    editor: bool,
}

fn to_proto(project: &str, r: MemberRow) -> Result<pb::TeamMember, Error> {
    let role = pb::TeamRole::from_column(&r.role)?;
    Ok(pb::TeamMember {
        name: format!("{project}/{COLLECTION}/{}", r.id),
        staff: r.staff.unwrap_or_default(),
        display_name: r.display_name,
        role: role as i32,
        affiliation: r.affiliation,
        create_time: Some(timestamp(r.create_time)),
        // The lead always edits.
        editor: r.editor || role == pb::TeamRole::Lead,
    })
}

/// `query_as!` into [`MemberRow`] of `$head`, the member's columns, then `$tail`: the
/// columns are written once, and every statement is still checked at build time.
macro_rules! member_rows {
    ($head:literal, $tail:literal, $($arg:expr),* $(,)?) => {
        sqlx::query_as!(
            MemberRow,
            $head + "id, staff, display_name, role, affiliation, create_time, editor" + $tail,
            $($arg),*
        )
    };
}

/// Adds a member to a project's team, counting a patient partner on the project; `None`
/// if the staff member is on the team already.
pub(super) async fn insert(
    conn: &mut PgConnection,
    project: &ProjectRef,
    new: &Member,
) -> Result<Option<pb::TeamMember>, Error> {
    let row = member_rows!(
        "INSERT INTO team_member (project_uid, id, staff, display_name, role, affiliation, editor)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (project_uid, staff) DO NOTHING
         RETURNING ",
        "",
        project.uid,
        Uuid::now_v7(),
        new.staff,
        new.display_name,
        new.role.column(),
        new.affiliation,
        new.editor,
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

/// A staff member's role and edit flag on a project's team, if they are on it.
pub(super) async fn membership(
    conn: &mut PgConnection,
    project: &ProjectRef,
    staff: &str,
) -> Result<Option<(pb::TeamRole, bool)>, Error> {
    let row = sqlx::query!(
        "SELECT role, editor FROM team_member WHERE project_uid = $1 AND staff = $2",
        project.uid,
        staff,
    )
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| Ok((pb::TeamRole::from_column(&r.role)?, r.editor)))
        .transpose()
}

/// The staff name of a project's lead, if it has one.
pub(super) async fn lead(
    conn: &mut PgConnection,
    project: &ProjectRef,
) -> Result<Option<String>, Error> {
    let lead = sqlx::query_scalar!(
        "SELECT staff FROM team_member WHERE project_uid = $1 AND role = 'lead'",
        project.uid,
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(lead.map(Option::unwrap_or_default))
}

/// One member of a project's team, as stored. The caller holds the project's row lock
/// ([`crate::projects::find`] with `write`), so the member cannot change underneath.
pub(super) async fn get(
    conn: &mut PgConnection,
    project: &ProjectRef,
    id: Uuid,
) -> Result<Option<Member>, Error> {
    let row = sqlx::query!(
        "SELECT staff, display_name, role, affiliation, editor FROM team_member
         WHERE project_uid = $1 AND id = $2",
        project.uid,
        id,
    )
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| {
        Ok(Member {
            staff: r.staff,
            display_name: r.display_name,
            role: pb::TeamRole::from_column(&r.role)?,
            affiliation: r.affiliation,
            editor: r.editor,
        })
    })
    .transpose()
}

/// Stores a member's changed fields (never their person, which is immutable).
pub(super) async fn update(
    conn: &mut PgConnection,
    project: &ProjectRef,
    id: Uuid,
    member: &Member,
) -> Result<pb::TeamMember, Error> {
    let row = member_rows!(
        "UPDATE team_member SET role = $3, editor = $4, display_name = $5, affiliation = $6
         WHERE project_uid = $1 AND id = $2
         RETURNING ",
        "",
        project.uid,
        id,
        member.role.column(),
        member.editor,
        member.display_name,
        member.affiliation,
    )
    .fetch_one(&mut *conn)
    .await?;
    to_proto(&project.name(), row)
}

/// Makes the project's lead, if it has one, an editing member: the first half of handing
/// the lead over (the unique index allows one lead at a time). Returns the former lead as
/// they now are.
pub(super) async fn hand_over_lead(
    conn: &mut PgConnection,
    project: &ProjectRef,
) -> Result<Option<pb::TeamMember>, Error> {
    let row = member_rows!(
        "UPDATE team_member SET role = 'member', editor = true
         WHERE project_uid = $1 AND role = 'lead'
         RETURNING ",
        "",
        project.uid,
    )
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| to_proto(&project.name(), r)).transpose()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{after_uid, everything, pages, project, stored, transaction, uid_of};

    fn staff(n: &str, role: pb::TeamRole) -> Member {
        Member {
            staff: Some(format!("staff/{n}")),
            display_name: String::new(),
            role,
            affiliation: "Ward 4".into(),
            editor: false,
        }
    }

    fn partner(name: &str) -> Member {
        Member {
            staff: None,
            display_name: name.to_owned(),
            role: pb::TeamRole::PatientPartner,
            affiliation: "Carer".into(),
            editor: false,
        }
    }

    #[tokio::test]
    async fn members_read_back_and_patient_partners_are_counted_in_and_out() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let p = project(&mut conn, "BAS", "p1").await?;
        let other = project(&mut conn, "SOU", "p2").await?;
        let lead = insert(&mut conn, &p, &staff("12345678", pb::TeamRole::Lead))
            .await?
            .expect("inserted");
        assert!(
            lead.name.starts_with("sites/BAS/projects/p1/teamMembers/"),
            "{}",
            lead.name
        );
        assert_eq!(
            (lead.staff.as_str(), lead.display_name.as_str()),
            ("staff/12345678", "")
        );
        assert_eq!(lead.role, pb::TeamRole::Lead as i32);
        assert_eq!(lead.affiliation, "Ward 4");
        assert!(lead.create_time.is_some());
        assert_eq!(stored(&mut conn, &p).await?.patient_partner_count, 0);
        // Two partners are two people: a NULL staff never collides.
        let pat = insert(&mut conn, &p, &partner("Pat Smith"))
            .await?
            .expect("inserted");
        assert_eq!(
            (pat.staff.as_str(), pat.display_name.as_str()),
            ("", "Pat Smith")
        );
        assert_eq!(pat.role, pb::TeamRole::PatientPartner as i32);
        let sam = insert(&mut conn, &p, &partner("Sam Jones"))
            .await?
            .expect("inserted");
        assert_eq!(stored(&mut conn, &p).await?.patient_partner_count, 2);
        // The same staff member again is refused and counts nothing; on another project
        // they are a member of their own.
        assert_eq!(
            insert(&mut conn, &p, &staff("12345678", pb::TeamRole::Coach)).await?,
            None
        );
        assert!(
            insert(&mut conn, &other, &staff("12345678", pb::TeamRole::Member))
                .await?
                .is_some()
        );
        insert(&mut conn, &other, &partner("Alex Brown")).await?;
        let (team, _) = list(&mut conn, &p, None, &everything()?).await?;
        assert_eq!(team, [lead.clone(), pat.clone(), sam]);
        assert_eq!(stored(&mut conn, &other).await?.patient_partner_count, 1);
        // Deleting a partner uncounts them; deleting staff does not; a member of another
        // project, or one already gone, is not found.
        assert!(delete(&mut conn, &p, uid_of(&pat.name)).await?);
        assert_eq!(stored(&mut conn, &p).await?.patient_partner_count, 1);
        assert!(!delete(&mut conn, &p, uid_of(&pat.name)).await?);
        assert_eq!(stored(&mut conn, &p).await?.patient_partner_count, 1);
        assert!(delete(&mut conn, &p, uid_of(&lead.name)).await?);
        assert_eq!(stored(&mut conn, &p).await?.patient_partner_count, 1);
        let (theirs, _) = list(&mut conn, &other, None, &everything()?).await?;
        assert!(!delete(&mut conn, &p, uid_of(&theirs[1].name)).await?);
        assert_eq!(stored(&mut conn, &other).await?.patient_partner_count, 1);
        let (theirs_after, _) = list(&mut conn, &other, None, &everything()?).await?;
        assert_eq!(theirs_after, theirs);
        Ok(())
    }

    #[tokio::test]
    async fn a_team_lists_in_the_order_added_page_by_page_and_only_its_own() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let p = project(&mut conn, "BAS", "p1").await?;
        let other = project(&mut conn, "BAS", "p2").await?;
        let mut added = Vec::new();
        for n in ["30000000", "10000000", "50000000", "20000000", "40000000"] {
            let m = insert(&mut conn, &p, &staff(n, pb::TeamRole::Member))
                .await?
                .expect("inserted");
            added.push(m.staff);
            insert(&mut conn, &other, &staff(n, pb::TeamRole::Member)).await?;
        }
        insert(&mut conn, &other, &partner("Pat Smith")).await?;
        let paged = pages(2, async |page| {
            list(&mut conn, &p, after_uid(&page), &page).await
        })
        .await?;
        let staff: Vec<Vec<String>> = paged
            .into_iter()
            .map(|page| {
                page.into_iter()
                    .inspect(|m| assert!(m.name.starts_with("sites/BAS/projects/p1/")))
                    .map(|m| m.staff)
                    .collect()
            })
            .collect();
        assert_eq!(
            staff,
            [&added[0..2], &added[2..4], &added[4..5]].map(|s| s.to_vec())
        );
        Ok(())
    }

    #[tokio::test]
    async fn the_lead_is_handed_over_and_edit_rights_are_read_per_person() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let p = project(&mut conn, "BAS", "p1").await?;
        let other = project(&mut conn, "BAS", "p2").await?;
        let lead = insert(&mut conn, &p, &staff("10000001", pb::TeamRole::Lead))
            .await?
            .expect("inserted");
        assert!(lead.editor, "the lead always edits");
        let mut editing = staff("10000002", pb::TeamRole::Coach);
        editing.editor = true;
        let coach = insert(&mut conn, &p, &editing).await?.expect("inserted");
        let plain = insert(&mut conn, &p, &staff("10000003", pb::TeamRole::Member))
            .await?
            .expect("inserted");
        assert!(coach.editor && !plain.editor);
        insert(&mut conn, &other, &staff("10000003", pb::TeamRole::Lead)).await?;
        let of = async |conn: &mut PgConnection, n: &str| {
            membership(conn, &p, &format!("staff/{n}")).await
        };
        assert_eq!(
            of(&mut conn, "10000001").await?,
            Some((pb::TeamRole::Lead, false))
        );
        assert_eq!(
            of(&mut conn, "10000002").await?,
            Some((pb::TeamRole::Coach, true))
        );
        // Lead of p2 is nothing on p1.
        assert_eq!(
            of(&mut conn, "10000003").await?,
            Some((pb::TeamRole::Member, false))
        );
        assert_eq!(of(&mut conn, "10000009").await?, None);
        assert_eq!(lead_of(&mut conn, &p).await?, "staff/10000001");

        // A second lead is refused by the store itself.
        let mut second = get(&mut conn, &p, uid_of(&plain.name))
            .await?
            .expect("found");
        second.role = pb::TeamRole::Lead;
        let mut savepoint = sqlx::Connection::begin(&mut *conn).await?;
        assert!(
            update(&mut savepoint, &p, uid_of(&plain.name), &second)
                .await
                .is_err()
        );
        savepoint.rollback().await?;
        // Handing over: the former lead stays on as an editing member.
        hand_over_lead(&mut conn, &p).await?;
        let new_lead = update(&mut conn, &p, uid_of(&plain.name), &second).await?;
        assert!(new_lead.editor);
        assert_eq!(lead_of(&mut conn, &p).await?, "staff/10000003");
        assert_eq!(
            of(&mut conn, "10000001").await?,
            Some((pb::TeamRole::Member, true))
        );
        // p2's lead is untouched.
        assert_eq!(lead_of(&mut conn, &other).await?, "staff/10000003");
        Ok(())
    }

    async fn lead_of(conn: &mut PgConnection, p: &ProjectRef) -> anyhow::Result<String> {
        Ok(lead(conn, p).await?.unwrap_or_default())
    }
}
