//! Annotations (`{metric}/annotations/{id}`: notes drawn on a chart) and rebase points
//! (`{metric}/rebasePoints/{id}`: where the chart starts a new group).

use chrono::{DateTime, NaiveDate, Utc};
use qi_platform::convert::{date, required_date, required_text, timestamp};
use qi_platform::names::{self, Owner};
use qi_platform::paging::Page;
use qi_platform::{Error, Violations};
use qi_proto::metrics as pb;
use sqlx::PgConnection;

use crate::definitions::{self, Metric};

/// The collection id in annotation names.
pub(crate) const ANNOTATIONS: &str = "annotations";
/// The collection id in rebase point names.
pub(crate) const REBASE_POINTS: &str = "rebasePoints";

/// Parses `{metric}/{collection}/{id}` into the metric's owner and id and the child's id.
pub(crate) fn parse_child(
    field: &str,
    name: &str,
    collection: &str,
) -> Result<(Owner, String, String), Error> {
    let (owner, mut ids) =
        names::parse_nested(field, name, &[definitions::COLLECTION, collection])?;
    let child = ids.pop().unwrap_or_default();
    let metric = ids.pop().unwrap_or_default();
    names::validate_id(field, &metric)?;
    names::validate_id(field, &child)?;
    Ok((owner, metric, child))
}

/// A validated annotation.
#[derive(Debug)]
pub(crate) struct NewAnnotation {
    pub(crate) id: String,
    pub(crate) date: NaiveDate,
    pub(crate) text: String,
}

/// Reads CreateAnnotation's fields (the parent is resolved by the caller).
pub(crate) fn read_annotation(
    annotation_id: &str,
    annotation: Option<pb::Annotation>,
) -> Result<NewAnnotation, Error> {
    let mut v = Violations::new();
    let id = v.check(names::id_or_new("annotation_id", annotation_id));
    let Some(a) = annotation else {
        return Err(v.missing("annotation"));
    };
    let pb::Annotation {
        name: _,
        date,
        text,
        author: _,
        create_time: _,
    } = a;
    let date = v
        .check(required_date("annotation.date", date.as_ref()).map(Some))
        .unwrap_or_default();
    let text = v.check(required_text("annotation.text", &text, 200));
    v.finish()?;
    Ok(NewAnnotation { id, date, text })
}

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
pub(crate) async fn insert_annotation(
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
pub(crate) async fn list_annotations(
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
pub(crate) async fn annotations_between(
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

/// Deletes a metric's child row; whether one was deleted.
pub(crate) async fn delete(
    conn: &mut PgConnection,
    metric: &Metric,
    collection: &str,
    id: &str,
) -> Result<bool, Error> {
    let table = if collection == ANNOTATIONS {
        "annotation"
    } else {
        "rebase_point"
    };
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {table} WHERE metric_uid = $1 AND id = $2"
    )))
    .bind(metric.uid)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// A validated rebase point.
#[derive(Debug)]
pub(crate) struct NewRebasePoint {
    pub(crate) id: String,
    pub(crate) period: NaiveDate,
    pub(crate) reason: String,
}

/// Reads CreateRebasePoint's fields; the period must start one of the metric's periods.
pub(crate) fn read_rebase_point(
    metric: &Metric,
    rebase_point_id: &str,
    rebase_point: Option<pb::RebasePoint>,
) -> Result<NewRebasePoint, Error> {
    let mut v = Violations::new();
    let id = v.check(names::id_or_new("rebase_point_id", rebase_point_id));
    let Some(r) = rebase_point else {
        return Err(v.missing("rebase_point"));
    };
    let pb::RebasePoint {
        name: _,
        period,
        reason,
        create_time: _,
    } = r;
    let period = v.check(required_date("rebase_point.period", period.as_ref()).map(Some));
    if let Some(p) = period
        && let Err(e) = metric.frequency.check_start(p)
    {
        v.add("rebase_point.period", e);
    }
    let reason = v.check(required_text("rebase_point.reason", &reason, 500));
    v.finish()?;
    Ok(NewRebasePoint {
        id,
        period: period.unwrap_or_default(),
        reason,
    })
}

#[derive(sqlx::FromRow)]
struct RebaseRow {
    id: String,
    period: NaiveDate,
    reason: String,
    create_time: DateTime<Utc>,
}

impl RebaseRow {
    fn to_proto(&self, metric_name: &str) -> pb::RebasePoint {
        pb::RebasePoint {
            name: format!("{metric_name}/{REBASE_POINTS}/{}", self.id),
            period: Some(date(self.period)),
            reason: self.reason.clone(),
            create_time: Some(timestamp(self.create_time)),
        }
    }
}

/// Inserts a rebase point; `AlreadyExists` if the id is taken or another point has the
/// same period.
pub(crate) async fn insert_rebase_point(
    conn: &mut PgConnection,
    metric: &Metric,
    r: &NewRebasePoint,
) -> Result<pb::RebasePoint, Error> {
    let row: Option<RebaseRow> = sqlx::query_as(
        "INSERT INTO rebase_point (metric_uid, id, period, reason) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING RETURNING id, period, reason, create_time",
    )
    .bind(metric.uid)
    .bind(&r.id)
    .bind(r.period)
    .bind(&r.reason)
    .fetch_optional(&mut *conn)
    .await?;
    let name = metric.name();
    if let Some(row) = row {
        return Ok(row.to_proto(&name));
    }
    // Which key collided: the id, or another point at the same period.
    let other: Option<String> = sqlx::query_scalar(
        "SELECT id FROM rebase_point WHERE metric_uid = $1 AND period = $2 AND id <> $3",
    )
    .bind(metric.uid)
    .bind(r.period)
    .bind(&r.id)
    .fetch_optional(&mut *conn)
    .await?;
    Err(Error::AlreadyExists {
        name: format!(
            "{name}/{REBASE_POINTS}/{}",
            other.as_deref().unwrap_or(&r.id)
        ),
    })
}

/// One page of a metric's rebase points in period order.
pub(crate) async fn list_rebase_points(
    conn: &mut PgConnection,
    metric: &Metric,
    page: &Page,
) -> Result<(Vec<pb::RebasePoint>, String), Error> {
    let after = page
        .after_key(0)
        .map(str::parse::<NaiveDate>)
        .transpose()
        .map_err(|_| Error::invalid("page_token", "not a token this list returned"))?;
    let rows: Vec<RebaseRow> = sqlx::query_as(
        "SELECT id, period, reason, create_time FROM rebase_point
         WHERE metric_uid = $1 AND ($2::date IS NULL OR period > $2)
         ORDER BY period LIMIT $3",
    )
    .bind(metric.uid)
    .bind(after)
    .bind(page.limit())
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| vec![r.period.to_string()]);
    let name = metric.name();
    Ok((rows.iter().map(|r| r.to_proto(&name)).collect(), next))
}

/// Every rebase point of these metrics, by metric, in period order (for charts).
pub(crate) async fn rebase_points_of(
    conn: &mut PgConnection,
    metrics: &[&Metric],
) -> Result<std::collections::HashMap<i64, Vec<pb::RebasePoint>>, Error> {
    let uids: Vec<i64> = metrics.iter().map(|m| m.uid).collect();
    let rows: Vec<(i64, String, NaiveDate, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT metric_uid, id, period, reason, create_time FROM rebase_point
         WHERE metric_uid = ANY($1) ORDER BY metric_uid, period",
    )
    .bind(&uids)
    .fetch_all(&mut *conn)
    .await?;
    let mut out: std::collections::HashMap<i64, Vec<pb::RebasePoint>> =
        std::collections::HashMap::new();
    for (uid, id, period, reason, create_time) in rows {
        let Some(m) = metrics.iter().find(|m| m.uid == uid) else {
            continue;
        };
        out.entry(uid).or_default().push(
            RebaseRow {
                id,
                period,
                reason,
                create_time,
            }
            .to_proto(&m.name()),
        );
    }
    Ok(out)
}

/// The positions where stored rebase points start new groups of a series dated by
/// `periods` (ascending): each point at the first period on or after it; points at or
/// before the first period, or after the last, start none. Returns the positions and the
/// points applied.
pub(crate) fn positions(
    periods: &[NaiveDate],
    points: &[pb::RebasePoint],
) -> (Vec<usize>, Vec<pb::RebasePoint>) {
    let (Some(first), Some(last)) = (periods.first(), periods.last()) else {
        return (Vec::new(), Vec::new());
    };
    let mut out = Vec::new();
    let mut applied = Vec::new();
    for p in points {
        let Some(at) = p.period.as_ref().and_then(|d| {
            NaiveDate::from_ymd_opt(
                d.year,
                u32::try_from(d.month).ok()?,
                u32::try_from(d.day).ok()?,
            )
        }) else {
            continue;
        };
        if at <= *first || at > *last {
            continue;
        }
        let position = periods.partition_point(|d| *d < at);
        if !out.contains(&position) {
            out.push(position);
        }
        applied.push(p.clone());
    }
    (out, applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn point(day: NaiveDate) -> pb::RebasePoint {
        pb::RebasePoint {
            period: Some(date(day)),
            ..Default::default()
        }
    }

    #[test]
    fn rebase_points_start_groups_inside_the_series_only() {
        let periods = [d(2026, 1, 1), d(2026, 2, 1), d(2026, 4, 1), d(2026, 5, 1)];
        let (pos, applied) = positions(
            &periods,
            &[
                point(d(2025, 12, 1)),
                point(d(2026, 1, 1)),
                point(d(2026, 3, 1)),
                point(d(2026, 5, 1)),
                point(d(2026, 6, 1)),
            ],
        );
        assert_eq!(pos, [2, 3]);
        assert_eq!(applied.len(), 2);
        assert_eq!(
            positions(&[], &[point(d(2026, 1, 1))]).0,
            Vec::<usize>::new()
        );
    }

    #[test]
    fn child_names_carry_the_metric() {
        let (owner, metric, id) = parse_child(
            "name",
            "sites/BAS/metrics/los/annotations/pdsa-2",
            ANNOTATIONS,
        )
        .unwrap();
        assert_eq!(owner.parent_name(), "sites/BAS");
        assert_eq!((metric.as_str(), id.as_str()), ("los", "pdsa-2"));
        assert!(parse_child("name", "sites/BAS/metrics/los/rebasePoints/x", ANNOTATIONS).is_err());
        assert!(parse_child("name", "sites/BAS/metrics/LOS/annotations/x", ANNOTATIONS).is_err());
    }
}
