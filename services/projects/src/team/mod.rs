//! A project's team (`{project}/teamMembers/{member}`): staff, by their canonical name
//! `staff/{employee_number}` (a name of the training service; see [`foreign::person`]), in the roles lead, member, sponsor and coach; and patient partners — named
//! people who are not staff (a patient, carer or member of the public), the heart of
//! co-production. The project keeps a count of its patient partners for the portfolio.

mod store;

use qi_platform::convert::{optional_text, required_text};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, Violations, idempotency};
use qi_proto::projects as pb;
use uuid::Uuid;

use crate::ProjectsApi;
use crate::foreign;
use crate::projects;
use crate::stored::required_enum;

const COLLECTION: &str = "teamMembers";

crate::stored::column_enum!(TeamRole, "team role", {
    Lead => "lead",
    Member => "member",
    Sponsor => "sponsor",
    Coach => "coach",
    PatientPartner => "patient_partner",
});

/// A team member to add, validated.
#[derive(Debug)]
struct NewMember {
    staff: Option<String>,
    display_name: String,
    role: pb::TeamRole,
    affiliation: String,
}

impl NewMember {
    fn parse(ctx: &AccessContext, m: &pb::TeamMember, v: &mut Violations) -> NewMember {
        let pb::TeamMember {
            name: _,
            staff,
            display_name,
            role,
            affiliation,
            create_time: _,
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
        let display_name = if partner {
            v.check(required_text("team_member.display_name", display_name, 200))
        } else {
            v.check(optional_text("team_member.display_name", display_name, 200))
        };
        let affiliation = v.check(optional_text("team_member.affiliation", affiliation, 200));
        NewMember {
            staff,
            display_name,
            role,
            affiliation,
        }
    }
}

/// Adds a member to the team of an open project.
pub(crate) async fn create(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::CreateTeamMemberRequest,
) -> Result<pb::CreateTeamMemberResponse, Error> {
    let mut v = Violations::new();
    v.check(idempotency::validate_request_id(&req.request_id));
    let Some(member) = req.team_member.as_ref() else {
        return Err(v.missing("team_member"));
    };
    let new = NewMember::parse(&ctx, member, &mut v);
    v.finish()?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let project = projects::resolve(&mut tx, &ctx, "parent", &req.parent, true).await?;
    idempotency::once(tx, &ctx, &req.request_id, &req, async |tx| {
        project.require_open()?;
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

/// Removes a member from the team of an open project.
pub(crate) async fn delete(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::DeleteTeamMemberRequest,
) -> Result<pb::DeleteTeamMemberResponse, Error> {
    let pb::DeleteTeamMemberRequest { name } = req;
    projects::delete_child(api, &ctx, &name, COLLECTION, store::delete).await?;
    Ok(pb::DeleteTeamMemberResponse {})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{caller, project, transaction};

    fn fields(m: pb::TeamMember) -> Vec<String> {
        let mut v = Violations::new();
        NewMember::parse(&caller(None), &m, &mut v);
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
    fn member(ctx: &AccessContext, staff: &str, role: pb::TeamRole) -> NewMember {
        let mut v = Violations::new();
        let new = NewMember::parse(
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
