//! A project's measures (`{project}/measures/{measure}`): metrics of the metrics service,
//! held by their resource names, each used as an outcome, process or balancing measure.

use qi_platform::convert::{optional_text, timestamp};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, Violations, idempotency};
use qi_proto::projects as pb;
use uuid::Uuid;

use crate::ProjectsApi;
use crate::foreign;
use crate::projects;
use crate::stored::{Column, required_enum};

const COLLECTION: &str = "measures";

crate::stored::column_enum!(MeasureKind, "measure kind", {
    Outcome => "outcome",
    Process => "process",
    Balancing => "balancing",
});

#[derive(sqlx::FromRow)]
struct MeasureRow {
    id: Uuid,
    metric: String,
    kind: String,
    note: String,
    create_time: chrono::DateTime<chrono::Utc>,
}

fn to_proto(project: &str, r: MeasureRow) -> Result<pb::Measure, Error> {
    Ok(pb::Measure {
        name: format!("{project}/{COLLECTION}/{}", r.id),
        metric: r.metric,
        kind: pb::MeasureKind::from_column(&r.kind)? as i32,
        note: r.note,
        create_time: Some(timestamp(r.create_time)),
    })
}

const COLUMNS: &str = "id, metric, kind, note, create_time";

/// Outcome, then process, then balancing.
const KIND_ORDER: &str = "CASE kind WHEN 'outcome' THEN 1 WHEN 'process' THEN 2 ELSE 3 END";

pub(crate) async fn create(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::CreateMeasureRequest,
) -> Result<pb::CreateMeasureResponse, Error> {
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
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let project = projects::resolve(&mut tx, &ctx, "parent", &req.parent, true).await?;
    if let Some(saved) = idempotency::claim(&mut tx, &ctx, &req.request_id, &req).await? {
        return Ok(saved);
    }
    project.require_open()?;
    let row: Option<MeasureRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO measure (project_uid, id, metric, kind, note) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (project_uid, metric) DO NOTHING RETURNING {COLUMNS}"
    )))
    .bind(project.uid)
    .bind(Uuid::now_v7())
    .bind(&metric)
    .bind(kind.column())
    .bind(&note)
    .fetch_optional(&mut *tx)
    .await?;
    let row = row.ok_or_else(|| Error::AlreadyExists {
        name: format!("{metric} among the measures of {}", project.name()),
    })?;
    let resp = pb::CreateMeasureResponse {
        measure: Some(to_proto(&project.name(), row)?),
    };
    idempotency::record(&mut tx, &ctx, &req.request_id, &resp).await?;
    tx.commit().await?;
    Ok(resp)
}

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
    let after_id: Option<Uuid> = page
        .after_key(1)
        .map(str::parse)
        .transpose()
        .map_err(|_| Error::invalid("page_token", "not a token this list returned"))?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let project = projects::resolve(&mut conn, &ctx, "parent", &parent, false).await?;
    let rows: Vec<(i32, MeasureRow)> =
        sqlx::query_as::<_, RankedRow>(sqlx::AssertSqlSafe(format!(
            "SELECT * FROM (SELECT {COLUMNS}, {KIND_ORDER} AS rank FROM measure
                            WHERE project_uid = $1) m
             WHERE (rank, id) > ($2, coalesce($3, '00000000-0000-0000-0000-000000000000'::uuid))
             ORDER BY rank, id LIMIT $4"
        )))
        .bind(project.uid)
        .bind(after_rank)
        .bind(after_id)
        .bind(page.limit())
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|r| (r.rank, r.row))
        .collect();
    let (rows, next_page_token) =
        page.finish(rows, |(rank, r)| vec![rank.to_string(), r.id.to_string()]);
    let name = project.name();
    Ok(pb::ListMeasuresResponse {
        measures: rows
            .into_iter()
            .map(|(_, r)| to_proto(&name, r))
            .collect::<Result<_, _>>()?,
        next_page_token,
    })
}

pub(crate) async fn delete(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::DeleteMeasureRequest,
) -> Result<pb::DeleteMeasureResponse, Error> {
    let pb::DeleteMeasureRequest { name } = req;
    let path = projects::parse_path("name", &name, &[COLLECTION])?;
    let id: Uuid = path.children[0]
        .parse()
        .map_err(|_| Error::invalid("name", "a measure's id is a UUID"))?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let project = projects::find(&mut tx, &ctx, "name", &path, true).await?;
    project.require_open()?;
    let deleted = sqlx::query("DELETE FROM measure WHERE project_uid = $1 AND id = $2")
        .bind(project.uid)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(Error::not_found(&name));
    }
    tx.commit().await?;
    Ok(pb::DeleteMeasureResponse {})
}

#[derive(sqlx::FromRow)]
struct RankedRow {
    #[sqlx(flatten)]
    row: MeasureRow,
    rank: i32,
}
