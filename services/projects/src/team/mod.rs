//! A project's team (`{project}/teamMembers/{member}`): staff, by their canonical name
//! `staff/{employee_number}` (a name of the training service; see [`foreign::person`]), in the
//! roles lead, member, sponsor and coach; and patient partners — named people who are not
//! staff (a patient, carer or member of the public), the heart of co-production. The project
//! keeps a count of its patient partners for the portfolio.
//!
//! The team also decides who changes the project ([`check_edit`]): its lead and the members
//! marked `editor`, beside `improvement_team` at the project's sites. A project has at most
//! one lead; the lead hands the role over, and `improvement_team` assigns it
//! ([`check_lead_change`]).

mod store;

use qi_platform::changes::Kind;
use qi_platform::convert::{optional_text, required_text};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, Violations, idempotency};
use qi_proto::projects as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::ProjectsApi;
use crate::feed::{self, project_sites};
use crate::foreign;
use crate::projects::{self, ProjectRef};
use crate::stored::required_enum;

const COLLECTION: &str = "teamMembers";

/// The role that changes any project at the sites it holds, team or not.
const IMPROVEMENT_TEAM: &str = "improvement_team";

crate::stored::column_enum!(TeamRole, "team role", {
    Lead => "lead",
    Member => "member",
    Sponsor => "sponsor",
    Coach => "coach",
    PatientPartner => "patient_partner",
});

/// Whether the caller may change `project` and everything under it (issue 25): `admin` and
/// `improvement_team` may (the caller holds one of the project's sites: [`projects::find`]
/// checked that), and so may the team's editors, known by the employee number in the
/// caller's token. Anyone else is refused, with what they lack.
pub(crate) async fn check_edit(
    conn: &mut PgConnection,
    ctx: &AccessContext,
    project: &ProjectRef,
) -> Result<(), Error> {
    if ctx.has_role(IMPROVEMENT_TEAM) {
        return Ok(());
    }
    let staff = qi_names::staff_name(ctx.employee_for_membership()?);
    match store::membership(conn, project, &staff).await? {
        Some((role, editor)) if editor || role == pb::TeamRole::Lead => Ok(()),
        Some(_) => Err(Error::denied(format!(
            "{staff} is on the team of {} but not as an editor: its lead or an editor can make them one",
            project.name()
        ))),
        None => Err(Error::denied(format!(
            "{} is changed by its team's editors and improvement_team: {staff} is not on its team",
            project.name()
        ))),
    }
}

/// Whether the caller may change who holds `project`'s lead role: its lead (handing it
/// over), `improvement_team` and `admin`; while the project has no lead, any editor may
/// appoint one ([`check_edit`] has passed).
async fn check_lead_change(
    conn: &mut PgConnection,
    ctx: &AccessContext,
    project: &ProjectRef,
) -> Result<(), Error> {
    if ctx.has_role(IMPROVEMENT_TEAM) {
        return Ok(());
    }
    let Some(lead) = store::lead(conn, project).await? else {
        return Ok(());
    };
    let staff = qi_names::staff_name(ctx.employee_for_membership()?);
    if staff == lead {
        return Ok(());
    }
    Err(Error::denied(format!(
        "the lead role of {} is handed over by its lead, {lead}, or by improvement_team",
        project.name()
    )))
}

/// A team member's fields, validated: a new member, or one as an update leaves them.
#[derive(Debug, Clone)]
struct Member {
    staff: Option<String>,
    display_name: String,
    role: pb::TeamRole,
    affiliation: String,
    editor: bool,
}

impl Member {
    fn parse(ctx: &AccessContext, m: &pb::TeamMember, v: &mut Violations) -> Member {
        let pb::TeamMember {
            name: _,
            staff,
            display_name,
            role,
            affiliation,
            create_time: _,
            editor,
        } = m;
        let role = v.check(required_enum::<pb::TeamRole>("team_member.role", *role));
        let partner = role == pb::TeamRole::PatientPartner;
        let staff = match (partner, staff.is_empty()) {
            (true, false) => {
                v.add(
                    "team_member.staff",
                    "a patient partner is not staff: leave `staff` empty and give their name",
                );
                None
            }
            (true, true) => None,
            (false, _) => Some(v.check(foreign::person(ctx, "team_member.staff", staff))),
        };
        let member = Member {
            staff,
            display_name: display_name.clone(),
            role,
            affiliation: affiliation.clone(),
            editor: *editor,
        };
        member.check(v);
        member
    }

    /// The rules every stored member keeps, each violation naming its field.
    fn check(&self, v: &mut Violations) {
        let partner = self.role == pb::TeamRole::PatientPartner;
        if partner {
            v.check(required_text(
                "team_member.display_name",
                &self.display_name,
                200,
            ));
        } else {
            v.check(optional_text(
                "team_member.display_name",
                &self.display_name,
                200,
            ));
        }
        v.check(optional_text(
            "team_member.affiliation",
            &self.affiliation,
            200,
        ));
        if partner && self.editor {
            v.add(
                "team_member.editor",
                "a patient partner calls with no token of their own, so cannot be an editor",
            );
        }
    }
}

/// Adds a member to the team of an open project.
pub(crate) async fn create(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::CreateTeamMemberRequest,
) -> Result<pb::CreateTeamMemberResponse, Error> {
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let project = projects::resolve(&mut tx, &ctx, "parent", &req.parent, true).await?;
    let mut v = Violations::new();
    v.check(idempotency::validate_request_id(&req.request_id));
    let Some(member) = req.team_member.as_ref() else {
        return Err(v.missing("team_member"));
    };
    let new = Member::parse(&ctx, member, &mut v);
    v.finish()?;
    idempotency::once(tx, &ctx, &req.request_id, &req, async |tx| {
        project.require_open()?;
        // The lead already on the team is already a member: ALREADY_EXISTS, below.
        if new.role == pb::TeamRole::Lead
            && let Some(lead) = store::lead(tx, &project).await?
            && new.staff.as_ref() != Some(&lead)
        {
            return Err(Error::FailedPrecondition {
                reason: "LEAD_TAKEN",
                message: format!(
                    "{} has a lead, {lead}: the lead hands the role over with UpdateTeamMember",
                    project.name()
                ),
            });
        }
        let member =
            store::insert(tx, &project, &new)
                .await?
                .ok_or_else(|| Error::AlreadyExists {
                    name: format!(
                        "{} on the team of {}",
                        new.staff.clone().unwrap_or_default(),
                        project.name()
                    ),
                })?;
        let sites = project_sites(&project);
        feed::record(tx, COLLECTION, &member.name, Kind::Created, sites, &member).await?;
        if new.role == pb::TeamRole::PatientPartner {
            // It counts its patient partners.
            feed::record_project(tx, &project).await?;
        }
        Ok(pb::CreateTeamMemberResponse {
            team_member: Some(member),
        })
    })
    .await
}

/// Lists a project's team.
pub(crate) async fn list(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::ListTeamMembersRequest,
) -> Result<pb::ListTeamMembersResponse, Error> {
    let pb::ListTeamMembersRequest {
        parent,
        page_size,
        page_token,
    } = req;
    let page = Page::parse(page_size, &page_token, &parent)?;
    let after: Option<Uuid> = page.parsed_key(0)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let project = projects::resolve(&mut conn, &ctx, "parent", &parent, false).await?;
    let (team_members, next_page_token) = store::list(&mut conn, &project, after, &page).await?;
    Ok(pb::ListTeamMembersResponse {
        team_members,
        next_page_token,
    })
}

/// Removes a member from the team of an open project; removing the lead is for those who
/// may change the lead role.
pub(crate) async fn delete(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::DeleteTeamMemberRequest,
) -> Result<pb::DeleteTeamMemberResponse, Error> {
    let pb::DeleteTeamMemberRequest { name } = req;
    projects::delete_child(api, &ctx, &name, COLLECTION, async |tx, project, id| {
        let role = store::get(tx, project, id).await?.map(|m| m.role);
        if role == Some(pb::TeamRole::Lead) {
            check_lead_change(tx, &ctx, project).await?;
        }
        let deleted = store::delete(tx, project, id).await?;
        if deleted && role == Some(pb::TeamRole::PatientPartner) {
            // It counts its patient partners.
            feed::record_project(tx, project).await?;
        }
        Ok(deleted)
    })
    .await?;
    Ok(pb::DeleteTeamMemberResponse {})
}

/// The fields UpdateTeamMember changes.
const UPDATABLE: &[&str] = &["role", "editor", "display_name", "affiliation"];

/// Changes a member's role, edit rights, name or affiliation. Making someone the lead hands
/// the role over: the former lead stays on as an editing member.
pub(crate) async fn update(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::UpdateTeamMemberRequest,
) -> Result<pb::UpdateTeamMemberResponse, Error> {
    let pb::UpdateTeamMemberRequest {
        team_member,
        update_mask,
    } = req;
    let member = team_member.ok_or_else(|| Error::invalid("team_member", "is required"))?;
    let field = "team_member.name";
    let (path, id) = projects::parse_child(field, &member.name, COLLECTION)?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let project = projects::find(&mut tx, &ctx, field, &path, true).await?;
    let paths = qi_platform::update_mask::paths(update_mask.as_ref(), UPDATABLE, |p| match p {
        "role" => member.role != 0,
        "editor" => member.editor,
        "display_name" => !member.display_name.is_empty(),
        "affiliation" => !member.affiliation.is_empty(),
        _ => false,
    })?;
    let role = if paths.contains(&"role") {
        Some(required_enum::<pb::TeamRole>(
            "team_member.role",
            member.role,
        )?)
    } else {
        None
    };
    project.require_open()?;
    let current = store::get(&mut tx, &project, id)
        .await?
        .ok_or_else(|| Error::not_found(&member.name))?;
    let mut next = current.clone();
    for p in &paths {
        match *p {
            "role" => next.role = role.unwrap_or(current.role),
            "editor" => next.editor = member.editor,
            "display_name" => next.display_name = member.display_name.clone(),
            _ => next.affiliation = member.affiliation.clone(),
        }
    }
    let mut v = Violations::new();
    let partner = |m: &Member| m.role == pb::TeamRole::PatientPartner;
    if partner(&current) != partner(&next) {
        v.add(
            "team_member.role",
            "staff and patient partners do not trade places: remove the member and add them again",
        );
    }
    next.check(&mut v);
    v.finish()?;
    let lead = pb::TeamRole::Lead;
    if (current.role == lead) != (next.role == lead) {
        check_lead_change(&mut tx, &ctx, &project).await?;
    }
    if next.role == lead
        && current.role != lead
        && let Some(former) = store::hand_over_lead(&mut tx, &project).await?
    {
        let sites = project_sites(&project);
        let kind = Kind::Updated;
        feed::record(&mut tx, COLLECTION, &former.name, kind, sites, &former).await?;
    }
    let stored = store::update(&mut tx, &project, id, &next).await?;
    let sites = project_sites(&project);
    let kind = Kind::Updated;
    feed::record(&mut tx, COLLECTION, &stored.name, kind, sites, &stored).await?;
    tx.commit().await?;
    Ok(pb::UpdateTeamMemberResponse {
        team_member: Some(stored),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{caller, project, transaction};

    fn fields(m: pb::TeamMember) -> Vec<String> {
        let mut v = Violations::new();
        Member::parse(&caller(None), &m, &mut v);
        match v.finish() {
            Ok(()) => Vec::new(),
            Err(Error::InvalidArgument { violations }) => {
                violations.into_iter().map(|v| v.field).collect()
            }
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn patient_partners_are_named_people_who_are_not_staff() {
        let partner = pb::TeamMember {
            role: pb::TeamRole::PatientPartner as i32,
            display_name: "Pat Smith".into(),
            ..Default::default()
        };
        assert!(fields(partner.clone()).is_empty());
        let mut as_staff = partner.clone();
        as_staff.staff = "sites/BAS/staff/12345678".into();
        assert_eq!(fields(as_staff), ["team_member.staff"]);
        let mut nameless = partner;
        nameless.display_name = String::new();
        assert_eq!(fields(nameless), ["team_member.display_name"]);
        let lead_without_staff = pb::TeamMember {
            role: pb::TeamRole::Lead as i32,
            ..Default::default()
        };
        assert_eq!(fields(lead_without_staff), ["team_member.staff"]);
    }

    /// A member in `role` named by `staff`, as `ctx` sends it, parsed.
    fn member(ctx: &AccessContext, staff: &str, role: pb::TeamRole) -> Member {
        let mut v = Violations::new();
        let new = Member::parse(
            ctx,
            &pb::TeamMember {
                staff: staff.into(),
                role: role as i32,
                ..Default::default()
            },
            &mut v,
        );
        v.finish().expect("a valid member");
        new
    }

    #[tokio::test]
    async fn one_person_is_one_membership_whichever_form_names_them() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let p = project(&mut conn, "BAS", "p1").await?;
        let me = caller(Some("12345678"));
        let lead = member(&me, "sites/BAS/staff/12345678", pb::TeamRole::Lead);
        assert_eq!(lead.staff.as_deref(), Some("staff/12345678"));
        let stored = store::insert(&mut conn, &p, &lead)
            .await?
            .expect("inserted");
        assert_eq!(stored.staff, "staff/12345678");
        // The same person moved to SOU, under the canonical name, and as the caller.
        for again in ["sites/SOU/staff/12345678", "staff/12345678", "staff/me"] {
            let new = member(&me, again, pb::TeamRole::Member);
            assert!(
                store::insert(&mut conn, &p, &new).await?.is_none(),
                "{again}"
            );
        }
        let (team, _) = store::list(&mut conn, &p, None, &crate::testing::everything()?).await?;
        let staff: Vec<_> = team.iter().map(|m| m.staff.as_str()).collect();
        assert_eq!(staff, ["staff/12345678"]);
        Ok(())
    }
}
