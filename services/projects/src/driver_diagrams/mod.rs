//! Driver diagrams (`{project}/driverDiagram`, issue 32): a project's theory of change, its
//! aim, primary and secondary drivers and change ideas, each change idea linked to the
//! PDSA cycles that test it and each driver to the measures that track it. Every project
//! has one, empty at version 0; each EditDriverDiagram makes the next version, under the
//! project's row lock, and every version is kept whole, so history reads any version back.
//! The etag is the version. Read and changed as everything under a project is
//! ([`projects::find`]); drawn as SVG by [`render`].

mod diagram;
mod render;
mod store;

use qi_platform::changes::Kind;
use qi_platform::convert::{check_etag, etag, optional_text, timestamp};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, Violations, idempotency};
use qi_proto::projects as pb;
use sqlx::PgConnection;

use crate::ProjectsApi;
use crate::projects::{self, ProjectPath, ProjectRef};
use diagram::{Links, Node};
use store::Version;

/// The singleton's id after the project's name.
const SINGLETON: &str = "driverDiagram";

/// Parses `sites/{site|-}/projects/{project}/driverDiagram`.
fn parse_name(field: &str, value: &str) -> Result<ProjectPath, Error> {
    let project = value
        .strip_suffix(&format!("/{SINGLETON}"))
        .ok_or_else(|| {
            Error::invalid(
                field,
                format!(
                    "`{}` is not a name of the form `sites/{{site}}/projects/{{project}}/{SINGLETON}`",
                    qi_platform::names::clip(value)
                ),
            )
        })?;
    projects::parse_path(field, project, &[])
}

/// A requested version: 0 for the latest.
fn parse_version(version: i64) -> Result<Option<i64>, Error> {
    match version {
        0 => Ok(None),
        v if v > 0 => Ok(Some(v)),
        _ => Err(Error::invalid(
            "version",
            "is 1 or more, or 0 for the latest",
        )),
    }
}

/// The project's diagram at `version` (the latest when `None`; empty, version 0, when the
/// project has none): NOT_FOUND for a version that does not exist.
async fn read(
    conn: &mut PgConnection,
    project: &ProjectRef,
    version: Option<i64>,
) -> Result<Version, Error> {
    match (store::read(conn, project, version).await?, version) {
        (Some(v), _) => Ok(v),
        (None, None) => Ok(Version::empty()),
        (None, Some(v)) => Err(Error::not_found(format!(
            "{}/{SINGLETON} version {v}",
            project.name()
        ))),
    }
}

/// The diagram as the contract shows it, each change idea with its PDSA status from the
/// project's cycles, and links to measures since deleted left out.
async fn to_proto(
    conn: &mut PgConnection,
    project: &ProjectRef,
    v: Version,
) -> Result<pb::DriverDiagram, Error> {
    let cycles = store::cycle_decisions(conn, project).await?;
    let measures = store::measure_ids(conn, project).await?;
    let name = project.name();
    let nodes = v
        .nodes
        .into_iter()
        .map(|n| {
            let status = match n.kind {
                diagram::Kind::ChangeIdea => diagram::pdsa_status(&n.cycles, &cycles),
                diagram::Kind::Aim
                | diagram::Kind::PrimaryDriver
                | diagram::Kind::SecondaryDriver => pb::PdsaStatus::Unspecified,
            };
            pb::DriverNode {
                kind: n.kind.to_proto() as i32,
                pdsa_cycles: n
                    .cycles
                    .iter()
                    .map(|c| format!("{name}/pdsaCycles/{c}"))
                    .collect(),
                measures: n
                    .measures
                    .iter()
                    .filter(|m| measures.contains(*m))
                    .map(|m| format!("{name}/measures/{m}"))
                    .collect(),
                pdsa_status: status as i32,
                id: n.id,
                text: n.text,
                owner: n.owner,
                parents: n.parents,
            }
        })
        .collect();
    Ok(pb::DriverDiagram {
        name: format!("{name}/{SINGLETON}"),
        version: v.version,
        nodes,
        summary: v.summary,
        editor: v.editor,
        update_time: v.create_time.map(timestamp),
        etag: etag(v.version),
    })
}

/// Reads a project's driver diagram, at its latest version or the one asked for.
pub(crate) async fn get(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::GetDriverDiagramRequest,
) -> Result<pb::GetDriverDiagramResponse, Error> {
    let pb::GetDriverDiagramRequest { name, version } = req;
    let path = parse_name("name", &name)?;
    let version = parse_version(version)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let project = projects::find(&mut conn, &ctx, "name", &path, false).await?;
    let v = read(&mut conn, &project, version).await?;
    Ok(pb::GetDriverDiagramResponse {
        driver_diagram: Some(to_proto(&mut conn, &project, v).await?),
    })
}

/// Lists a diagram's versions, newest first.
pub(crate) async fn list_versions(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::ListDriverDiagramVersionsRequest,
) -> Result<pb::ListDriverDiagramVersionsResponse, Error> {
    let pb::ListDriverDiagramVersionsRequest {
        parent,
        page_size,
        page_token,
    } = req;
    let path = parse_name("parent", &parent)?;
    let page = Page::parse(page_size, &page_token, &parent)?;
    let before: Option<i64> = page.parsed_key(0)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let project = projects::find(&mut conn, &ctx, "parent", &path, false).await?;
    let (versions, next_page_token) = store::list(&mut conn, &project, before, &page).await?;
    Ok(pb::ListDriverDiagramVersionsResponse {
        versions,
        next_page_token,
    })
}

/// Applies a request's edits to the latest version, all or none, as the next version.
pub(crate) async fn edit(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::EditDriverDiagramRequest,
) -> Result<pb::EditDriverDiagramResponse, Error> {
    let path = parse_name("name", &req.name)?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    // Who may change the project comes before anything about the request.
    let project = projects::find(&mut tx, &ctx, "name", &path, true).await?;
    let mut v = Violations::new();
    v.check(idempotency::validate_request_id(&req.request_id));
    let summary = v.check(optional_text("summary", &req.summary, 500));
    if req.edits.is_empty() {
        v.add("edits", "is required: at least one edit");
    }
    v.finish()?;
    idempotency::once(tx, &ctx, &req.request_id, &req, async |tx| {
        project.require_open()?;
        let current = read(tx, &project, None).await?;
        check_etag(&req.etag, current.version, "the driver diagram")?;
        let cycles = store::cycle_decisions(tx, &project).await?;
        let measures = store::measure_ids(tx, &project).await?;
        let name = project.name();
        let links = Links {
            project: &name,
            cycles: &cycles,
            measures: &measures,
        };
        let mut nodes: Vec<Node> = current.nodes;
        let done = diagram::apply(&ctx, &mut nodes, &req.edits, &links)?;
        let summary = if summary.is_empty() {
            summarise(&done)
        } else {
            summary
        };
        let stored = store::insert(
            tx,
            &project,
            current.version + 1,
            &nodes,
            &summary,
            &ctx.subject,
        )
        .await?;
        // Every project has one (empty at version 0), so an edit updates it.
        let diagram = to_proto(tx, &project, stored).await?;
        let sites = crate::feed::project_sites(&project);
        crate::feed::record(tx, SINGLETON, &diagram.name, Kind::Updated, sites, &diagram).await?;
        Ok(pb::EditDriverDiagramResponse {
            driver_diagram: Some(diagram),
        })
    })
    .await
}

/// The history's summary of an edit that gave none: what each edit did, within 500
/// characters.
fn summarise(done: &[String]) -> String {
    let mut s = String::new();
    for (i, d) in done.iter().enumerate() {
        let part = if i == 0 { d.clone() } else { format!("; {d}") };
        if s.chars().count() + part.chars().count() > 480 {
            s.push_str(&format!("; and {} more", done.len() - i));
            break;
        }
        s.push_str(&part);
    }
    s
}

/// Draws a diagram as SVG.
pub(crate) async fn render(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::RenderDriverDiagramRequest,
) -> Result<pb::RenderDriverDiagramResponse, Error> {
    let pb::RenderDriverDiagramRequest { name, version } = req;
    let path = parse_name("name", &name)?;
    let version = parse_version(version)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let project = projects::find(&mut conn, &ctx, "name", &path, false).await?;
    let v = read(&mut conn, &project, version).await?;
    let title = projects::store::read(&mut conn, project.uid).await?.title;
    let diagram = to_proto(&mut conn, &project, v).await?;
    Ok(pb::RenderDriverDiagramResponse {
        svg: render::svg(&title, &diagram),
        version: diagram.version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_projects_followed_by_the_singleton() {
        let p = parse_name("name", "sites/BAS/projects/p1/driverDiagram").unwrap();
        assert_eq!(p.project, "p1");
        assert!(parse_name("name", "sites/-/projects/p1/driverDiagram").is_ok());
        for bad in [
            "sites/BAS/projects/p1",
            "sites/BAS/projects/p1/driverDiagram/x",
            "sites/BAS/projects/P 1/driverDiagram",
            "projects/p1/driverDiagram",
        ] {
            let Err(Error::InvalidArgument { violations }) = parse_name("parent", bad) else {
                panic!("{bad} was accepted")
            };
            assert_eq!(violations[0].field, "parent");
        }
        assert!(parse_version(-1).is_err());
        assert_eq!(parse_version(0).unwrap(), None);
    }

    #[test]
    fn a_summary_says_what_the_edits_did_within_its_bound() {
        let done: Vec<String> = (0..100)
            .map(|i| format!("added change idea `c{i}`"))
            .collect();
        let s = summarise(&done);
        assert!(s.chars().count() <= 500, "{s}");
        assert!(s.starts_with("added change idea `c0`; added change idea `c1`"));
        assert!(s.ends_with("more"), "{s}");
        assert_eq!(summarise(&done[..1]), "added change idea `c0`");
    }
}
