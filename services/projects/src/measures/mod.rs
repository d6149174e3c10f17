//! A project's measures (`{project}/measures/{measure}`): metrics of the metrics service,
//! held by their resource names, each used as an outcome, process or balancing measure.

mod store;

use qi_platform::changes::Kind;
use qi_platform::convert::optional_text;
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, Violations, idempotency};
use qi_proto::projects as pb;
use uuid::Uuid;

use crate::ProjectsApi;
use crate::foreign;
use crate::projects;
use crate::stored::required_enum;

const COLLECTION: &str = "measures";

crate::stored::column_enum!(MeasureKind, "measure kind", {
    Outcome => "outcome",
    Process => "process",
    Balancing => "balancing",
});

/// Adds a metric to the measures of an open project.
pub(crate) async fn create(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::CreateMeasureRequest,
) -> Result<pb::CreateMeasureResponse, Error> {
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let project = projects::resolve(&mut tx, &ctx, "parent", &req.parent, true).await?;
    let mut v = Violations::new();
    v.check(idempotency::validate_request_id(&req.request_id));
    let Some(measure) = req.measure.as_ref() else {
        return Err(v.missing("measure"));
    };
    let pb::Measure {
        name: _,
        metric,
        kind,
        note,
        create_time: _,
    } = measure;
    let metric = v.check(foreign::name("measure.metric", metric, "metrics"));
    let kind = v.check(required_enum::<pb::MeasureKind>("measure.kind", *kind));
    let note = v.check(optional_text("measure.note", note, 1000));
    v.finish()?;
    idempotency::once(tx, &ctx, &req.request_id, &req, async |tx| {
        project.require_open()?;
        let measure = store::insert(tx, &project, &metric, kind, &note)
            .await?
            .ok_or_else(|| Error::AlreadyExists {
                name: format!("{metric} among the measures of {}", project.name()),
            })?;
        let sites = crate::feed::project_sites(&project);
        let kind = Kind::Created;
        crate::feed::record(tx, COLLECTION, &measure.name, kind, sites, &measure).await?;
        Ok(pb::CreateMeasureResponse {
            measure: Some(measure),
        })
    })
    .await
}

/// Lists a project's measures: outcome, then process, then balancing.
pub(crate) async fn list(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::ListMeasuresRequest,
) -> Result<pb::ListMeasuresResponse, Error> {
    let pb::ListMeasuresRequest {
        parent,
        page_size,
        page_token,
    } = req;
    let page = Page::parse(page_size, &page_token, &parent)?;
    let after_rank: i32 = page.after_key(0).and_then(|k| k.parse().ok()).unwrap_or(0);
    let after_id: Option<Uuid> = page.parsed_key(1)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let project = projects::resolve(&mut conn, &ctx, "parent", &parent, false).await?;
    let (measures, next_page_token) =
        store::list(&mut conn, &project, after_rank, after_id, &page).await?;
    Ok(pb::ListMeasuresResponse {
        measures,
        next_page_token,
    })
}

/// Removes a measure from an open project.
pub(crate) async fn delete(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::DeleteMeasureRequest,
) -> Result<pb::DeleteMeasureResponse, Error> {
    let pb::DeleteMeasureRequest { name } = req;
    projects::delete_child(api, &ctx, &name, COLLECTION, store::delete).await?;
    Ok(pb::DeleteMeasureResponse {})
}
