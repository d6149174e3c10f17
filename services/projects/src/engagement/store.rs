//! The `engagement_activity` table, and the count of activities the project keeps in step.

use chrono::NaiveDate;
use qi_platform::Error;
use qi_platform::convert::{date, timestamp};
use qi_platform::paging::Page;
use qi_proto::projects as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use super::COLLECTION;
use crate::projects::ProjectRef;
use crate::stored::Column;

struct ActivityRow {
    id: Uuid,
    activity_date: NaiveDate,
    kind: String,
    participants: i32,
    summary: String,
    create_time: chrono::DateTime<chrono::Utc>,
}

fn to_proto(project: &str, r: ActivityRow) -> Result<pb::EngagementActivity, Error> {
    Ok(pb::EngagementActivity {
        name: format!("{project}/{COLLECTION}/{}", r.id),
        activity_date: Some(date(r.activity_date)),
        kind: pb::EngagementKind::from_column(&r.kind)? as i32,
        participants: r.participants,
        summary: r.summary,
        create_time: Some(timestamp(r.create_time)),
    })
}

/// `query_as!` into [`ActivityRow`] of `$head`, the activity's columns, then `$tail`: the
/// columns are written once, and every statement is still checked at build time.
macro_rules! activity_rows {
    ($head:literal, $tail:literal, $($arg:expr),* $(,)?) => {
        sqlx::query_as!(
            ActivityRow,
            $head + "id, activity_date, kind, participants, summary, create_time" + $tail,
            $($arg),*
        )
    };
}

/// Records an activity of a project and counts it on the project.
pub(super) async fn insert(
    conn: &mut PgConnection,
    project: &ProjectRef,
    day: NaiveDate,
    kind: pb::EngagementKind,
    participants: i32,
    summary: &str,
) -> Result<pb::EngagementActivity, Error> {
    let row = activity_rows!(
        "INSERT INTO engagement_activity (project_uid, id, activity_date, kind, participants, summary)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
        "",
        project.uid,
        Uuid::now_v7(),
        day,
        kind.column(),
        participants,
        summary,
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query!(
        "UPDATE project SET engagement_count = engagement_count + 1 WHERE uid = $1",
        project.uid,
    )
    .execute(&mut *conn)
    .await?;
    to_proto(&project.name(), row)
}

/// One page of a project's activities, latest first, after `(date, id)` when given.
pub(super) async fn list(
    conn: &mut PgConnection,
    project: &ProjectRef,
    after_date: Option<NaiveDate>,
    after_id: Option<Uuid>,
    page: &Page,
) -> Result<(Vec<pb::EngagementActivity>, String), Error> {
    let rows = activity_rows!(
        "SELECT ",
        " FROM engagement_activity
         WHERE project_uid = $1
           AND ($2::date IS NULL OR (activity_date, id) < ($2, $3))
         ORDER BY activity_date DESC, id DESC LIMIT $4",
        project.uid,
        after_date,
        after_id,
        page.limit(),
    )
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| {
        vec![r.activity_date.to_string(), r.id.to_string()]
    });
    let name = project.name();
    let activities = rows
        .into_iter()
        .map(|r| to_proto(&name, r))
        .collect::<Result<_, _>>()?;
    Ok((activities, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{day, everything, pages, project, stored, transaction};

    #[tokio::test]
    async fn an_activity_reads_back_and_is_counted_on_its_project_only() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let p = project(&mut conn, "BAS", "p1").await?;
        let other = project(&mut conn, "SOU", "p2").await?;
        assert_eq!(stored(&mut conn, &p).await?.engagement_activity_count, 0);
        let made = insert(
            &mut conn,
            &p,
            day("2026-02-03"),
            pb::EngagementKind::FocusGroup,
            12,
            "Carers on discharge",
        )
        .await?;
        assert!(
            made.name
                .starts_with("sites/BAS/projects/p1/engagementActivities/")
        );
        assert_eq!(made.activity_date, Some(date(day("2026-02-03"))));
        assert_eq!(made.kind, pb::EngagementKind::FocusGroup as i32);
        assert_eq!(
            (made.participants, made.summary.as_str()),
            (12, "Carers on discharge")
        );
        assert!(made.create_time.is_some());
        let second = insert(
            &mut conn,
            &p,
            day("2026-01-10"),
            pb::EngagementKind::PatientStory,
            1,
            "A story",
        )
        .await?;
        insert(
            &mut conn,
            &other,
            day("2026-03-01"),
            pb::EngagementKind::Survey,
            40,
            "S",
        )
        .await?;
        assert_eq!(stored(&mut conn, &p).await?.engagement_activity_count, 2);
        assert_eq!(
            stored(&mut conn, &other).await?.engagement_activity_count,
            1
        );
        let (mine, next) = list(&mut conn, &p, None, None, &everything()?).await?;
        assert_eq!(mine, [made, second]);
        assert!(next.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn activities_list_latest_first_page_by_page_ties_by_id() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let p = project(&mut conn, "BAS", "p1").await?;
        let other = project(&mut conn, "BAS", "p2").await?;
        // Three on one day (newest id first among them), around days before and after.
        let days = [
            "2026-01-05",
            "2026-02-01",
            "2026-02-01",
            "2026-03-09",
            "2026-02-01",
        ];
        for (i, d) in days.into_iter().enumerate() {
            let summary = format!("a{i}");
            insert(
                &mut conn,
                &p,
                day(d),
                pb::EngagementKind::Workshop,
                5,
                &summary,
            )
            .await?;
            insert(&mut conn, &other, day(d), pb::EngagementKind::Other, 5, "x").await?;
        }
        // The handler's reading of a page token: the date, then the id.
        let paged = pages(2, async |page| {
            let after_date = page.parsed_key(0)?;
            let after_id = page.parsed_key(1)?;
            list(&mut conn, &p, after_date, after_id, &page).await
        })
        .await?;
        let got: Vec<Vec<String>> = paged
            .into_iter()
            .map(|page| page.into_iter().map(|a| a.summary).collect())
            .collect();
        assert_eq!(got, vec![vec!["a3", "a4"], vec!["a2", "a1"], vec!["a0"]]);
        Ok(())
    }
}
