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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{everything, pages, project, transaction, uid_of};

    #[tokio::test]
    async fn a_metric_is_one_measure_per_project_and_deletes_once() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let p = project(&mut conn, "BAS", "p1").await?;
        let other = project(&mut conn, "SOU", "p2").await?;
        let falls = "sites/BAS/metrics/falls";
        let made = insert(
            &mut conn,
            &p,
            falls,
            pb::MeasureKind::Outcome,
            "Per 1,000 bed days",
        )
        .await?
        .expect("inserted");
        assert!(made.name.starts_with("sites/BAS/projects/p1/measures/"));
        assert_eq!(made.metric, falls);
        assert_eq!(made.kind, pb::MeasureKind::Outcome as i32);
        assert_eq!(made.note, "Per 1,000 bed days");
        assert!(made.create_time.is_some());
        // The metric again, as any kind, is refused; another project may use it.
        assert_eq!(
            insert(&mut conn, &p, falls, pb::MeasureKind::Balancing, "").await?,
            None
        );
        let theirs = insert(&mut conn, &other, falls, pb::MeasureKind::Process, "")
            .await?
            .expect("inserted");
        assert_eq!(
            list(&mut conn, &p, 0, None, &everything()?).await?.0,
            std::slice::from_ref(&made)
        );
        // Another project's measure is not found through this one, and stays.
        assert!(!delete(&mut conn, &p, uid_of(&theirs.name)).await?);
        assert!(delete(&mut conn, &p, uid_of(&made.name)).await?);
        assert!(!delete(&mut conn, &p, uid_of(&made.name)).await?);
        assert!(
            list(&mut conn, &p, 0, None, &everything()?)
                .await?
                .0
                .is_empty()
        );
        assert_eq!(
            list(&mut conn, &other, 0, None, &everything()?).await?.0,
            [theirs]
        );
        // Once deleted, the metric may be measured again.
        assert!(
            insert(&mut conn, &p, falls, pb::MeasureKind::Outcome, "")
                .await?
                .is_some()
        );
        Ok(())
    }

    #[tokio::test]
    async fn measures_list_outcome_then_process_then_balancing_page_by_page() -> anyhow::Result<()>
    {
        let mut conn = transaction().await?;
        let p = project(&mut conn, "BAS", "p1").await?;
        let other = project(&mut conn, "BAS", "p2").await?;
        use pb::MeasureKind::{Balancing, Outcome, Process};
        let added = [
            ("m1", Balancing),
            ("m2", Process),
            ("m3", Outcome),
            ("m4", Balancing),
            ("m5", Outcome),
            ("m6", Process),
        ];
        for (metric, kind) in added {
            let metric = format!("sites/BAS/metrics/{metric}");
            insert(&mut conn, &p, &metric, kind, "").await?;
            insert(&mut conn, &other, &metric, Outcome, "").await?;
        }
        // The handler's reading of a page token: the kind's rank, then the id.
        let paged = pages(2, async |page| {
            let after_rank = page.after_key(0).map_or(0, |k| k.parse().expect("a rank"));
            let after_id = page.parsed_key(1)?;
            list(&mut conn, &p, after_rank, after_id, &page).await
        })
        .await?;
        let metrics: Vec<Vec<(String, i32)>> = paged
            .into_iter()
            .map(|page| {
                page.into_iter()
                    .inspect(|m| assert!(m.name.starts_with("sites/BAS/projects/p1/")))
                    .map(|m| (m.metric.replace("sites/BAS/metrics/", ""), m.kind))
                    .collect()
            })
            .collect();
        let m = |id: &str, kind: pb::MeasureKind| (id.to_owned(), kind as i32);
        assert_eq!(
            metrics,
            [
                vec![m("m3", Outcome), m("m5", Outcome)],
                vec![m("m2", Process), m("m6", Process)],
                vec![m("m1", Balancing), m("m4", Balancing)],
            ]
        );
        Ok(())
    }
}
