//! Metric definitions: `sites/{site}/metrics/{id}` or trust-wide `trust/metrics/{id}`.

use qi_platform::convert::{etag, required_text, timestamp};
use qi_platform::names::{self, LIST_SCOPE_SQL, ListParent, Owner};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, Violations};
use qi_proto::metrics as pb;
use sqlx::PgConnection;

/// The collection id in metric names.
pub(crate) const COLLECTION: &str = "metrics";

/// A metric to create, validated.
#[derive(Debug)]
pub(crate) struct NewMetric {
    pub(crate) owner: Owner,
    pub(crate) id: String,
    pub(crate) display_name: String,
    pub(crate) unit: String,
    pub(crate) kind: &'static str,
    pub(crate) direction: &'static str,
    pub(crate) request_id: String,
}

impl TryFrom<pb::CreateMetricRequest> for NewMetric {
    type Error = Error;

    fn try_from(req: pb::CreateMetricRequest) -> Result<Self, Error> {
        let pb::CreateMetricRequest {
            parent,
            metric_id,
            metric,
            request_id,
        } = req;
        let mut v = Violations::new();
        let owner = v.check(names::parse_parent("parent", &parent).map(Some));
        let id = v.check(names::id_or_new("metric_id", &metric_id));
        v.check(qi_platform::idempotency::validate_request_id(&request_id));
        let Some(metric) = metric else {
            return Err(v.missing("metric"));
        };
        let pb::Metric {
            name: _,
            display_name,
            unit,
            kind,
            improvement_direction,
            create_time: _,
            update_time: _,
            etag: _,
        } = metric;
        let display_name = v.check(required_text("metric.display_name", &display_name, 200));
        let unit = unit.trim().to_owned();
        if unit.chars().count() > 40 {
            v.add("metric.unit", "is longer than 40 characters");
        }
        let kind = v.check(kind_column(kind));
        let direction = v.check(direction_column(improvement_direction));
        v.finish()?;
        let owner = owner.ok_or_else(|| Error::invalid("parent", "is required"))?;
        Ok(NewMetric {
            owner,
            id,
            display_name,
            unit,
            kind,
            direction,
            request_id,
        })
    }
}

fn kind_column(kind: i32) -> Result<&'static str, Error> {
    match pb::MetricKind::try_from(kind) {
        Ok(pb::MetricKind::Outcome) => Ok("outcome"),
        Ok(pb::MetricKind::Process) => Ok("process"),
        Ok(pb::MetricKind::Balancing) => Ok("balancing"),
        Ok(pb::MetricKind::Qms) => Ok("qms"),
        Ok(pb::MetricKind::Unspecified) | Err(_) => Err(Error::invalid(
            "metric.kind",
            "choose OUTCOME, PROCESS, BALANCING or QMS",
        )),
    }
}

fn direction_column(direction: i32) -> Result<&'static str, Error> {
    match pb::ImprovementDirection::try_from(direction) {
        Ok(pb::ImprovementDirection::Increase) => Ok("increase"),
        Ok(pb::ImprovementDirection::Decrease) => Ok("decrease"),
        Ok(pb::ImprovementDirection::Neither) => Ok("neither"),
        Ok(pb::ImprovementDirection::Unspecified) | Err(_) => Err(Error::invalid(
            "metric.improvement_direction",
            "choose INCREASE, DECREASE or NEITHER",
        )),
    }
}

#[derive(sqlx::FromRow)]
struct MetricRow {
    site: Option<String>,
    id: String,
    display_name: String,
    unit: String,
    kind: String,
    direction: String,
    create_time: chrono::DateTime<chrono::Utc>,
    update_time: chrono::DateTime<chrono::Utc>,
    revision: i64,
}

impl TryFrom<MetricRow> for pb::Metric {
    type Error = Error;
    fn try_from(r: MetricRow) -> Result<Self, Error> {
        let kind = match r.kind.as_str() {
            "outcome" => pb::MetricKind::Outcome,
            "process" => pb::MetricKind::Process,
            "balancing" => pb::MetricKind::Balancing,
            "qms" => pb::MetricKind::Qms,
            other => {
                return Err(Error::Internal(anyhow::anyhow!(
                    "stored metric kind {other}"
                )));
            }
        };
        let direction = match r.direction.as_str() {
            "increase" => pb::ImprovementDirection::Increase,
            "decrease" => pb::ImprovementDirection::Decrease,
            "neither" => pb::ImprovementDirection::Neither,
            other => return Err(Error::Internal(anyhow::anyhow!("stored direction {other}"))),
        };
        Ok(pb::Metric {
            name: Owner::from_column(r.site)?.child(COLLECTION, &r.id),
            display_name: r.display_name,
            unit: r.unit,
            kind: kind as i32,
            improvement_direction: direction as i32,
            create_time: Some(timestamp(r.create_time)),
            update_time: Some(timestamp(r.update_time)),
            etag: etag(r.revision),
        })
    }
}

const COLUMNS: &str =
    "site, id, display_name, unit, kind, direction, create_time, update_time, revision";

/// Inserts a metric; `AlreadyExists` if the name is taken.
pub(crate) async fn insert(conn: &mut PgConnection, m: &NewMetric) -> Result<pb::Metric, Error> {
    let row: Option<MetricRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO metric (site, id, display_name, unit, kind, direction)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT DO NOTHING RETURNING {COLUMNS}"
    )))
    .bind(m.owner.site_column())
    .bind(&m.id)
    .bind(&m.display_name)
    .bind(&m.unit)
    .bind(m.kind)
    .bind(m.direction)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => row.try_into(),
        None => Err(Error::AlreadyExists {
            name: m.owner.child(COLLECTION, &m.id),
        }),
    }
}

/// Reads one metric by owner and id.
pub(crate) async fn get(
    conn: &mut PgConnection,
    owner: &Owner,
    id: &str,
) -> Result<Option<pb::Metric>, Error> {
    let row: Option<MetricRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM metric WHERE site IS NOT DISTINCT FROM $1 AND id = $2"
    )))
    .bind(owner.site_column())
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(TryInto::try_into).transpose()
}

/// One page of metrics under `parent`, scoped to the caller's sites, ordered by name.
pub(crate) async fn list(
    conn: &mut PgConnection,
    ctx: &AccessContext,
    parent: &ListParent,
    page: &Page,
) -> Result<(Vec<pb::Metric>, String), Error> {
    let scope = parent.scope(ctx)?;
    let rows: Vec<MetricRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM metric
         WHERE {LIST_SCOPE_SQL}
           AND (coalesce(site, ''), id) > ($3, $4)
         ORDER BY coalesce(site, ''), id
         LIMIT $5"
    )))
    .bind(scope.trust)
    .bind(scope.sites)
    .bind(page.after_key(0).unwrap_or(""))
    .bind(page.after_key(1).unwrap_or(""))
    .bind(page.limit())
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| {
        vec![r.site.clone().unwrap_or_default(), r.id.clone()]
    });
    rows.into_iter()
        .map(TryInto::try_into)
        .collect::<Result<Vec<_>, _>>()
        .map(|m| (m, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_enum_values_are_refused_by_field() {
        let req = pb::CreateMetricRequest {
            parent: "trust".into(),
            metric_id: "los".into(),
            metric: Some(pb::Metric {
                display_name: "Length of stay".into(),
                kind: 99,
                improvement_direction: 0,
                ..Default::default()
            }),
            request_id: String::new(),
        };
        let Err(Error::InvalidArgument { violations }) = NewMetric::try_from(req) else {
            panic!("expected invalid argument")
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["metric.kind", "metric.improvement_direction"]);
    }
}
