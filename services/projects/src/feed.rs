//! This service's change feed (`WatchChanges`, see [`qi_platform::changes`]): which
//! collections it carries, who sees a change to each, and how a stored change becomes the
//! contract's message. Every write records its change with [`record`] in its transaction.

use qi_platform::Error;
use qi_platform::changes::Kind;
use sqlx::PgConnection;

use crate::projects::ProjectRef;

qi_platform::change_feed!(crate::ProjectsApi, qi_proto::projects, {
    "sites" => Site,
    "wards" => Ward,
    "ideas" => Idea,
    "projects" => Project,
    "teamMembers" => TeamMember,
    "measures" => Measure,
    "pdsaCycles" => PdsaCycle,
    "progressScores" => ProgressScore,
    "engagementActivities" => EngagementActivity,
    "driverDiagram" => DriverDiagram,
    "programmes" => Programme,
    "waves" => Wave,
    "wardEnrolments" => WardEnrolment,
});

/// The sites whose callers read a project and everything under it: its lead and
/// participating sites.
pub(crate) fn project_sites(p: &ProjectRef) -> Option<Vec<String>> {
    Some(
        std::iter::once(p.lead_site.clone())
            .chain(p.participating_sites.iter().cloned())
            .collect(),
    )
}

pub(crate) use qi_platform::changes::{record_change as record, record_deleted};

/// Records that `project` itself changed under a write to something under it (a count or
/// the latest score it keeps, and so its etag): the project as it now is.
pub(crate) async fn record_project(
    conn: &mut PgConnection,
    project: &ProjectRef,
) -> Result<(), Error> {
    let now = crate::projects::store::read(conn, project.uid).await?;
    record(
        conn,
        crate::projects::COLLECTION,
        &now.name,
        Kind::Updated,
        project_sites(project),
        &now,
    )
    .await
}

#[cfg(test)]
mod tests {
    use pb::watch_changes_response::Resource;
    use qi_platform::AccessContext;
    use qi_proto::google::r#type::Date;
    use qi_proto::projects as pb;

    use super::*;
    use crate::ProjectsApi;

    use crate::testing::{caller, pool, site};

    /// One row of the outbox, as a write left it.
    #[derive(Debug, sqlx::FromRow)]
    struct Row {
        collection: String,
        name: String,
        kind: String,
        verb: String,
        sites: Option<Vec<String>>,
        kept: Vec<String>,
        payload: Option<Vec<u8>>,
    }

    async fn outbox(pool: &sqlx::PgPool) -> anyhow::Result<Vec<Row>> {
        Ok(sqlx::query_as(
            "SELECT collection, name, kind, verb, sites, kept, payload FROM changes
             ORDER BY pos, id",
        )
        .fetch_all(pool)
        .await?)
    }

    /// The project a change carries.
    fn project_of(row: &Row) -> pb::Project {
        let bytes = row.payload.as_deref().expect("a payload");
        let Resource::Project(p) = decode(&row.collection, bytes).expect("a stored resource")
        else {
            panic!("{} carries no project", row.name)
        };
        p
    }

    /// A change in a line: its collection, name, kind (and verb) and the sites that see it.
    fn line(row: &Row) -> String {
        let Row {
            collection,
            name,
            kind,
            verb,
            sites,
            ..
        } = row;
        let kind = if verb.is_empty() {
            kind.clone()
        } else {
            format!("{kind}:{verb}")
        };
        let sites = sites.as_ref().map_or("(everyone)".into(), |s| s.join(","));
        format!("{collection} {name} {kind} {sites}")
    }

    #[tokio::test]
    async fn each_write_of_a_project_records_its_change_and_a_failed_one_nothing()
    -> anyhow::Result<()> {
        let pool = pool().await?;
        let api = ProjectsApi::new(pool.clone(), &[site("BAS"), site("BRM"), site("SOU")]);
        let ctx = AccessContext {
            roles: vec!["improvement_team".into()],
            ..caller(None)
        };
        let created = crate::projects::create(
            &api,
            ctx.clone(),
            pb::CreateProjectRequest {
                parent: "sites/BAS".into(),
                project_id: "falls".into(),
                project: Some(pb::Project {
                    title: "Fewer falls".into(),
                    participating_sites: vec!["sites/SOU".into(), "sites/BRM".into()],
                    problem_statement: "Patients fall at night".into(),
                    aim: Some(pb::Aim {
                        statement: "Halve falls by March".into(),
                        measure: "Falls per 1,000 bed days".into(),
                        baseline: Some(8.0),
                        target: Some(4.0),
                        unit: "falls".into(),
                        target_date: Some(Date {
                            year: 2030,
                            month: 3,
                            day: 31,
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        )
        .await?
        .project
        .expect("a project");
        let name = created.name.clone();
        assert_eq!(name, "sites/BAS/projects/falls");
        let update = |p: &pb::Project, changed: pb::Project, path: &str| pb::UpdateProjectRequest {
            project: Some(pb::Project {
                name: name.clone(),
                etag: p.etag.clone(),
                ..changed
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec![path.into()],
            }),
        };
        let retitled = || pb::Project {
            title: "Fewer falls at night".into(),
            ..Default::default()
        };
        let updated =
            crate::projects::update(&api, ctx.clone(), update(&created, retitled(), "title"))
                .await?
                .project
                .expect("a project");
        let started = crate::projects::start(
            &api,
            ctx.clone(),
            pb::StartProjectRequest {
                name: name.clone(),
                start_date: None,
                etag: updated.etag.clone(),
            },
        )
        .await?
        .project
        .expect("a project");
        let without_sou = pb::Project {
            participating_sites: vec!["sites/BRM".into()],
            ..Default::default()
        };
        let dropped = crate::projects::update(
            &api,
            ctx.clone(),
            update(&started, without_sou, "participating_sites"),
        )
        .await?
        .project
        .expect("a project");

        let rows = outbox(&pool).await?;
        let seen: Vec<_> = rows.iter().map(line).collect();
        assert_eq!(
            seen,
            [
                "projects sites/BAS/projects/falls created BAS,SOU,BRM",
                "projects sites/BAS/projects/falls updated BAS,SOU,BRM",
                "projects sites/BAS/projects/falls state_changed:start BAS,SOU,BRM",
                // Seen from its sites after the change; SOU, which it left, sees it go.
                "projects sites/BAS/projects/falls updated BAS,BRM",
                "projects sites/BAS/projects/falls hidden SOU",
            ]
        );
        // Each carries the project as the call returned it.
        for (row, returned) in rows.iter().zip([&created, &updated, &started, &dropped]) {
            assert_eq!(&project_of(row), returned);
        }
        assert_eq!(rows[4].kept, ["BAS", "BRM"]);
        assert_eq!(rows[4].payload, None);

        // A write that fails (here: on a stale etag, or an empty title) rolls its change
        // back with it.
        let blank = || pb::Project {
            title: " ".into(),
            ..Default::default()
        };
        for req in [
            update(&created, retitled(), "title"),
            update(&dropped, blank(), "title"),
        ] {
            assert!(
                crate::projects::update(&api, ctx.clone(), req)
                    .await
                    .is_err()
            );
        }
        assert_eq!(outbox(&pool).await?.len(), 5);

        // A child's write records the child, and the project when it changes with it (here:
        // its count of patient partners); a delete, the child's canonical name.
        let partner = crate::team::create(
            &api,
            ctx.clone(),
            pb::CreateTeamMemberRequest {
                parent: name.clone(),
                team_member: Some(pb::TeamMember {
                    display_name: "Pat Smith".into(),
                    role: pb::TeamRole::PatientPartner as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        )
        .await?
        .team_member
        .expect("a member");
        // Named with its uuid in capitals: recorded by its canonical name all the same.
        let (team, uid) = partner.name.rsplit_once('/').expect("a member's name");
        let shouted = format!("{team}/{}", uid.to_uppercase());
        crate::team::delete(
            &api,
            ctx.clone(),
            pb::DeleteTeamMemberRequest { name: shouted },
        )
        .await?;
        let rows = outbox(&pool).await?;
        let seen: Vec<_> = rows[5..].iter().map(line).collect();
        let member = &partner.name;
        assert_eq!(
            seen,
            [
                format!("teamMembers {member} created BAS,BRM"),
                format!("projects {name} updated BAS,BRM"),
                format!("projects {name} updated BAS,BRM"),
                format!("teamMembers {member} deleted BAS,BRM"),
            ]
        );
        assert_eq!(project_of(&rows[6]).patient_partner_count, 1);
        assert_eq!(project_of(&rows[7]).patient_partner_count, 0);
        assert_eq!(rows[8].payload, None);
        Ok(())
    }
}
