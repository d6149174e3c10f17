//! The `annotation` table: insert, the paged list, a chart's range, delete.

use chrono::{DateTime, NaiveDate, Utc};
use qi_platform::Error;
use qi_platform::convert::{date, timestamp};
use qi_platform::paging::Page;
use qi_proto::metrics as pb;
use sqlx::PgConnection;

use super::{ANNOTATIONS, NewAnnotation};
use crate::definitions::Metric;

struct AnnotationRow {
    id: String,
    date: NaiveDate,
    text: String,
    author: String,
    create_time: DateTime<Utc>,
    astronomical: bool,
}

impl AnnotationRow {
    fn to_proto(&self, metric_name: &str) -> pb::Annotation {
        pb::Annotation {
            name: format!("{metric_name}/{ANNOTATIONS}/{}", self.id),
            date: Some(date(self.date)),
            text: self.text.clone(),
            author: self.author.clone(),
            create_time: Some(timestamp(self.create_time)),
            astronomical: self.astronomical,
        }
    }
}

/// Inserts an annotation; `AlreadyExists` if the id is taken.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    metric: &Metric,
    a: &NewAnnotation,
    author: &str,
) -> Result<pb::Annotation, Error> {
    let row = sqlx::query_as!(
        AnnotationRow,
        "INSERT INTO annotation (metric_uid, id, date, text, author, astronomical)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT DO NOTHING RETURNING id, date, text, author, create_time, astronomical",
        metric.uid,
        a.id,
        a.date,
        a.text,
        author,
        a.astronomical,
    )
    .fetch_optional(&mut *conn)
    .await?;
    let name = metric.name();
    row.map(|r| r.to_proto(&name))
        .ok_or_else(|| Error::AlreadyExists {
            name: format!("{name}/{ANNOTATIONS}/{}", a.id),
        })
}

/// One page of a metric's annotations in date order.
pub(crate) async fn list(
    conn: &mut PgConnection,
    metric: &Metric,
    page: &Page,
) -> Result<(Vec<pb::Annotation>, String), Error> {
    let after = page.parsed_key::<NaiveDate>(0)?;
    let rows = sqlx::query_as!(
        AnnotationRow,
        "SELECT id, date, text, author, create_time, astronomical FROM annotation
         WHERE metric_uid = $1 AND ($2::date IS NULL OR (date, id) > ($2, $3))
         ORDER BY date, id LIMIT $4",
        metric.uid,
        after,
        page.after_key(1).unwrap_or(""),
        page.limit(),
    )
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| vec![r.date.to_string(), r.id.clone()]);
    let name = metric.name();
    Ok((rows.iter().map(|r| r.to_proto(&name)).collect(), next))
}

/// A metric's annotations dated in `[from, before)`, in date order (for charts).
pub(crate) async fn between(
    conn: &mut PgConnection,
    metric: &Metric,
    from: NaiveDate,
    before: NaiveDate,
) -> Result<Vec<pb::Annotation>, Error> {
    let rows = sqlx::query_as!(
        AnnotationRow,
        "SELECT id, date, text, author, create_time, astronomical FROM annotation
         WHERE metric_uid = $1 AND date >= $2 AND date < $3 ORDER BY date, id LIMIT 500",
        metric.uid,
        from,
        before,
    )
    .fetch_all(&mut *conn)
    .await?;
    let name = metric.name();
    Ok(rows.iter().map(|r| r.to_proto(&name)).collect())
}

/// Deletes one of a metric's annotations; whether one was deleted.
pub(crate) async fn delete(
    conn: &mut PgConnection,
    metric: &Metric,
    id: &str,
) -> Result<bool, Error> {
    let done = sqlx::query!(
        "DELETE FROM annotation WHERE metric_uid = $1 AND id = $2",
        metric.uid,
        id,
    )
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definitions::ValueType;
    use crate::testing::{day, metric, site, transaction};

    fn note(id: &str, date: &str) -> NewAnnotation {
        NewAnnotation {
            id: id.to_owned(),
            date: day(date),
            text: format!("note {id}"),
            astronomical: id == "a",
        }
    }

    fn ids(notes: &[pb::Annotation]) -> Vec<&str> {
        notes
            .iter()
            .map(|a| a.name.rsplit('/').next().unwrap_or_default())
            .collect()
    }

    #[tokio::test]
    async fn an_insert_reads_back_and_a_taken_id_is_refused_per_metric() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let los = metric(&mut conn, site("BAS"), "los", ValueType::Mean).await?;
        let tat = metric(&mut conn, site("BAS"), "tat", ValueType::Mean).await?;
        let made = insert(&mut conn, &los, &note("a", "2026-01-05"), "me").await?;
        assert_eq!(made.name, "sites/BAS/metrics/los/annotations/a");
        assert_eq!((made.text.as_str(), made.author.as_str()), ("note a", "me"));
        assert!(made.astronomical, "the flag reads back");
        match insert(&mut conn, &los, &note("a", "2026-02-01"), "you").await {
            Err(Error::AlreadyExists { name }) => assert_eq!(name, made.name),
            other => panic!("expected AlreadyExists, got {other:?}"),
        }
        // The same id on another metric is another annotation.
        insert(&mut conn, &tat, &note("a", "2026-03-01"), "you").await?;
        let (listed, next) = list(&mut conn, &los, &Page::parse(10, "", "p")?).await?;
        assert_eq!(listed, vec![made]);
        assert!(next.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn pages_follow_date_then_id_and_resume_after_the_last() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let m = metric(&mut conn, site("BAS"), "los", ValueType::Mean).await?;
        for (id, date) in [
            ("c", "2026-01-01"),
            ("b", "2026-02-01"),
            ("a", "2026-02-01"),
        ] {
            insert(&mut conn, &m, &note(id, date), "me").await?;
        }
        insert(&mut conn, &m, &note("d", "2026-03-01"), "me").await?;
        let (first, next) = list(&mut conn, &m, &Page::parse(2, "", "p")?).await?;
        assert_eq!(ids(&first), ["c", "a"]);
        let (second, end) = list(&mut conn, &m, &Page::parse(2, &next, "p")?).await?;
        assert_eq!(ids(&second), ["b", "d"]);
        assert!(end.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn a_chart_range_includes_its_start_and_excludes_its_end() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let m = metric(&mut conn, site("BAS"), "los", ValueType::Mean).await?;
        let other = metric(&mut conn, site("SOU"), "los", ValueType::Mean).await?;
        for (id, date) in [("before", "2025-12-31"), ("start", "2026-01-01")] {
            insert(&mut conn, &m, &note(id, date), "me").await?;
        }
        insert(&mut conn, &m, &note("end", "2026-04-01"), "me").await?;
        insert(&mut conn, &other, &note("elsewhere", "2026-02-01"), "me").await?;
        let got = between(&mut conn, &m, day("2026-01-01"), day("2026-04-01")).await?;
        assert_eq!(ids(&got), ["start"]);
        Ok(())
    }

    #[tokio::test]
    async fn delete_removes_only_the_named_metrics_annotation() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let bas = metric(&mut conn, site("BAS"), "los", ValueType::Mean).await?;
        let sou = metric(&mut conn, site("SOU"), "los", ValueType::Mean).await?;
        insert(&mut conn, &bas, &note("a", "2026-01-01"), "me").await?;
        insert(&mut conn, &sou, &note("a", "2026-01-01"), "me").await?;
        assert!(delete(&mut conn, &bas, "a").await?);
        assert!(!delete(&mut conn, &bas, "a").await?);
        let all = Page::parse(10, "", "p")?;
        assert!(list(&mut conn, &bas, &all).await?.0.is_empty());
        assert_eq!(ids(&list(&mut conn, &sou, &all).await?.0), ["a"]);
        Ok(())
    }
}
