//! The `driver_diagram_version` table: every version of a project's driver diagram, kept
//! whole; and what a diagram links to (the project's PDSA cycles and measures).

use std::collections::{HashMap, HashSet};

use qi_platform::Error;
use qi_platform::paging::Page;
use qi_proto::projects as pb;
use sqlx::PgConnection;
use sqlx::types::Json;

use super::diagram::Node;
use crate::projects::ProjectRef;
use crate::stored::Column;

/// One stored version.
pub(crate) struct Version {
    pub(crate) version: i64,
    pub(crate) nodes: Vec<Node>,
    pub(crate) summary: String,
    pub(crate) editor: String,
    pub(crate) create_time: Option<chrono::DateTime<chrono::Utc>>,
}

impl Version {
    /// The diagram of a project never edited.
    pub(crate) fn empty() -> Version {
        Version {
            version: 0,
            nodes: Vec::new(),
            summary: String::new(),
            editor: String::new(),
            create_time: None,
        }
    }
}

/// The project's diagram at `version`, or its latest when `version` is `None`; `None` when
/// there is no such version (the latest of a project never edited included).
pub(crate) async fn read(
    conn: &mut PgConnection,
    project: &ProjectRef,
    version: Option<i64>,
) -> Result<Option<Version>, Error> {
    let row = sqlx::query!(
        r#"SELECT version, nodes AS "nodes: Json<Vec<Node>>", summary, editor, create_time
           FROM driver_diagram_version
           WHERE project_uid = $1 AND ($2::bigint IS NULL OR version = $2)
           ORDER BY version DESC LIMIT 1"#,
        project.uid,
        version,
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| Version {
        version: r.version,
        nodes: r.nodes.0,
        summary: r.summary,
        editor: r.editor,
        create_time: Some(r.create_time),
    }))
}

/// Stores the diagram's next version (the caller holds the project's row lock, so
/// versions follow one another; the primary key refuses a second writer regardless).
pub(crate) async fn insert(
    conn: &mut PgConnection,
    project: &ProjectRef,
    version: i64,
    nodes: &[Node],
    summary: &str,
    editor: &str,
) -> Result<Version, Error> {
    let count = i32::try_from(nodes.len()).map_err(|e| Error::Internal(e.into()))?;
    let create_time = sqlx::query_scalar!(
        "INSERT INTO driver_diagram_version (project_uid, version, nodes, node_count, summary, editor)
         VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING create_time",
        project.uid,
        version,
        Json(nodes) as _,
        count,
        summary,
        editor,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(Version {
        version,
        nodes: nodes.to_vec(),
        summary: summary.to_owned(),
        editor: editor.to_owned(),
        create_time: Some(create_time),
    })
}

/// One page of the diagram's versions, newest first, before version `before`.
pub(crate) async fn list(
    conn: &mut PgConnection,
    project: &ProjectRef,
    before: Option<i64>,
    page: &Page,
) -> Result<(Vec<pb::DriverDiagramVersion>, String), Error> {
    let rows = sqlx::query!(
        "SELECT version, summary, editor, create_time, node_count
         FROM driver_diagram_version
         WHERE project_uid = $1 AND ($2::bigint IS NULL OR version < $2)
         ORDER BY version DESC LIMIT $3",
        project.uid,
        before,
        page.limit(),
    )
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| vec![r.version.to_string()]);
    let versions = rows
        .into_iter()
        .map(|r| pb::DriverDiagramVersion {
            version: r.version,
            summary: r.summary,
            editor: r.editor,
            create_time: Some(qi_platform::convert::timestamp(r.create_time)),
            node_count: r.node_count,
        })
        .collect();
    Ok((versions, next))
}

/// The project's PDSA cycles, by number, with their decisions.
pub(crate) async fn cycle_decisions(
    conn: &mut PgConnection,
    project: &ProjectRef,
) -> Result<HashMap<i32, Option<pb::PdsaDecision>>, Error> {
    let rows = sqlx::query!(
        "SELECT number, decision FROM pdsa_cycle WHERE project_uid = $1",
        project.uid,
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            let decision = r
                .decision
                .as_deref()
                .map(pb::PdsaDecision::from_column)
                .transpose()?;
            Ok((r.number, decision))
        })
        .collect()
}

/// The ids of the project's measures.
pub(crate) async fn measure_ids(
    conn: &mut PgConnection,
    project: &ProjectRef,
) -> Result<HashSet<String>, Error> {
    let ids = sqlx::query_scalar!("SELECT id FROM measure WHERE project_uid = $1", project.uid,)
        .fetch_all(&mut *conn)
        .await?;
    Ok(ids.into_iter().map(|id| id.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver_diagrams::diagram::Kind;
    use crate::testing::{everything, pages, project, transaction};

    fn nodes(n: usize) -> Vec<Node> {
        (0..n)
            .map(|i| Node {
                id: format!("n{i}"),
                kind: if i == 0 {
                    Kind::Aim
                } else {
                    Kind::PrimaryDriver
                },
                text: format!("Node {i} <&>"),
                owner: if i == 1 {
                    "staff/12345678".into()
                } else {
                    String::new()
                },
                parents: if i == 0 { vec![] } else { vec!["n0".into()] },
                cycles: vec![],
                measures: vec![],
            })
            .collect()
    }

    #[tokio::test]
    async fn versions_read_back_whole_latest_or_by_number_and_only_the_projects()
    -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let p = project(&mut conn, "BAS", "p1").await?;
        let other = project(&mut conn, "BAS", "p2").await?;
        assert!(read(&mut conn, &p, None).await?.is_none());
        for v in 1..=3 {
            insert(
                &mut conn,
                &p,
                v,
                &nodes(v as usize + 1),
                &format!("edit {v}"),
                "me",
            )
            .await?;
        }
        insert(&mut conn, &other, 1, &nodes(1), "theirs", "them").await?;
        let latest = read(&mut conn, &p, None).await?.expect("a version");
        assert_eq!(latest.version, 3);
        assert_eq!(latest.nodes, nodes(4));
        assert_eq!(
            (latest.summary.as_str(), latest.editor.as_str()),
            ("edit 3", "me")
        );
        let first = read(&mut conn, &p, Some(1)).await?.expect("version 1");
        assert_eq!(first.nodes, nodes(2));
        assert!(read(&mut conn, &p, Some(4)).await?.is_none());
        assert_eq!(
            read(&mut conn, &other, None).await?.map(|v| v.version),
            Some(1)
        );
        // A version is written once.
        assert!(
            insert(&mut conn, &p, 3, &nodes(1), "again", "me")
                .await
                .is_err()
        );
        Ok(())
    }

    #[tokio::test]
    async fn history_lists_newest_first_page_by_page() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let p = project(&mut conn, "BAS", "p1").await?;
        for v in 1..=5 {
            insert(
                &mut conn,
                &p,
                v,
                &nodes(v as usize),
                &format!("edit {v}"),
                "me",
            )
            .await?;
        }
        let paged = pages(2, async |page| {
            let before = page.after_key(0).map(|k| k.parse().expect("a version"));
            list(&mut conn, &p, before, &page).await
        })
        .await?;
        let got: Vec<Vec<(i64, i32)>> = paged
            .into_iter()
            .map(|page| {
                page.into_iter()
                    .map(|v| (v.version, v.node_count))
                    .collect()
            })
            .collect();
        assert_eq!(
            got,
            [vec![(5, 5), (4, 4)], vec![(3, 3), (2, 2)], vec![(1, 1)]]
        );
        assert_eq!(
            list(&mut conn, &p, None, &everything()?).await?.0[0].summary,
            "edit 5"
        );
        Ok(())
    }
}
