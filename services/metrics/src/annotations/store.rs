//! The `annotation` table: insert, the paged list, a chart's range, delete.

use chrono::{DateTime, NaiveDate, Utc};
use qi_platform::Error;
use qi_platform::convert::{date, timestamp};
use qi_platform::paging::Page;
use qi_proto::metrics as pb;
use sqlx::PgConnection;

use super::{ANNOTATIONS, NewAnnotation};
use crate::definitions::Metric;

#[derive(sqlx::FromRow)]
struct AnnotationRow {
    id: String,
    date: NaiveDate,
    text: String,
    author: String,
    create_time: DateTime<Utc>,
}

impl AnnotationRow {
    fn to_proto(&self, metric_name: &str) -> pb::Annotation {
        pb::Annotation {
            name: format!("{metric_name}/{ANNOTATIONS}/{}", self.id),
            date: Some(date(self.date)),
            text: self.text.clone(),
            author: self.author.clone(),
            create_time: Some(timestamp(self.create_time)),
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
    let row: Option<AnnotationRow> = sqlx::query_as(
        "INSERT INTO annotation (metric_uid, id, date, text, author) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT DO NOTHING RETURNING id, date, text, author, create_time",
    )
    .bind(metric.uid)
    .bind(&a.id)
    .bind(a.date)
    .bind(&a.text)
    .bind(author)
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
    let after = page
        .after_key(0)
        .map(str::parse::<NaiveDate>)
        .transpose()
        .map_err(|_| Error::invalid("page_token", "not a token this list returned"))?;
    let rows: Vec<AnnotationRow> = sqlx::query_as(
        "SELECT id, date, text, author, create_time FROM annotation
         WHERE metric_uid = $1 AND ($2::date IS NULL OR (date, id) > ($2, $3))
         ORDER BY date, id LIMIT $4",
    )
    .bind(metric.uid)
    .bind(after)
    .bind(page.after_key(1).unwrap_or(""))
    .bind(page.limit())
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
    let rows: Vec<AnnotationRow> = sqlx::query_as(
        "SELECT id, date, text, author, create_time FROM annotation
         WHERE metric_uid = $1 AND date >= $2 AND date < $3 ORDER BY date, id LIMIT 500",
    )
    .bind(metric.uid)
    .bind(from)
    .bind(before)
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
    let done = sqlx::query("DELETE FROM annotation WHERE metric_uid = $1 AND id = $2")
        .bind(metric.uid)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() > 0)
}
