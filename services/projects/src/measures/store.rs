//! The `measure` table: a project's measures, listed outcome first, then process, then
//! balancing.

use qi_platform::Error;
use qi_platform::convert::timestamp;
use qi_platform::paging::Page;
use qi_proto::projects as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use super::COLLECTION;
use crate::projects::ProjectRef;
use crate::stored::Column;

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

/// Adds a metric to a project's measures; `None` if it is among them already.
pub(super) async fn insert(
    conn: &mut PgConnection,
    project: &ProjectRef,
    metric: &str,
    kind: pb::MeasureKind,
    note: &str,
) -> Result<Option<pb::Measure>, Error> {
    let row = sqlx::query_as!(
        MeasureRow,
        "INSERT INTO measure (project_uid, id, metric, kind, note) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (project_uid, metric) DO NOTHING
         RETURNING id, metric, kind, note, create_time",
        project.uid,
        Uuid::now_v7(),
        metric,
        kind.column(),
        note,
    )
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| to_proto(&project.name(), r)).transpose()
}

/// One page of a project's measures, by kind (outcome, then process, then balancing) and
/// then id.
pub(super) async fn list(
    conn: &mut PgConnection,
    project: &ProjectRef,
    after_rank: i32,
    after_id: Option<Uuid>,
    page: &Page,
) -> Result<(Vec<pb::Measure>, String), Error> {
    let rows: Vec<(i32, MeasureRow)> = sqlx::query!(
        r#"SELECT id, metric, kind, note, create_time, rank AS "rank!"
           FROM (SELECT id, metric, kind, note, create_time,
                        CASE kind WHEN 'outcome' THEN 1 WHEN 'process' THEN 2 ELSE 3 END AS rank
                 FROM measure WHERE project_uid = $1) m
           WHERE (rank, id) > ($2, coalesce($3, '00000000-0000-0000-0000-000000000000'::uuid))
           ORDER BY rank, id LIMIT $4"#,
        project.uid,
        after_rank,
        after_id,
        page.limit(),
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| {
        let row = MeasureRow {
            id: r.id,
            metric: r.metric,
            kind: r.kind,
            note: r.note,
            create_time: r.create_time,
        };
        (r.rank, row)
    })
    .collect();
    let (rows, next) = page.finish(rows, |(rank, r)| vec![rank.to_string(), r.id.to_string()]);
    let name = project.name();
    let measures = rows
        .into_iter()
        .map(|(_, r)| to_proto(&name, r))
        .collect::<Result<_, _>>()?;
    Ok((measures, next))
}

/// Removes a measure from a project; `false` if there was no such measure.
pub(super) async fn delete(
    conn: &mut PgConnection,
    project: &ProjectRef,
    id: Uuid,
) -> Result<bool, Error> {
    let deleted = sqlx::query!(
        "DELETE FROM measure WHERE project_uid = $1 AND id = $2",
        project.uid,
        id,
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(deleted > 0)
}
