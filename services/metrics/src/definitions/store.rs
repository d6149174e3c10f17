//! The `metric` table: metric rows and their mapping, reads (locked as asked), lists by
//! parent and for the dashboard, insert and update.

use chrono::{DateTime, Utc};
use qi_platform::Error;
use qi_platform::names::{LIST_SCOPE_SQL, ListScope, Owner};
use qi_platform::paging::Page;
use qi_proto::metrics as pb;
use sqlx::PgConnection;

use super::{
    COLLECTION, DashboardScope, ImdEdition, Kind, Location, Metric, NewMetric, Scope, Settings,
    ValueType, direction_column, direction_from_column,
};
use crate::dimensions::{Dimension, Recording};
use crate::periods::Frequency;

#[derive(sqlx::FromRow)]
struct MetricRow {
    uid: i64,
    site: Option<String>,
    id: String,
    display_name: String,
    description: String,
    unit: String,
    kind: String,
    direction: String,
    target: Option<f64>,
    frequency: String,
    value_type: String,
    rate_per: f64,
    ward: Option<String>,
    project: Option<String>,
    location_breakdown: String,
    dimensions: Vec<String>,
    imd_edition: Option<String>,
    age_bands: Vec<String>,
    create_time: DateTime<Utc>,
    update_time: DateTime<Utc>,
    revision: i64,
    has_measurements: bool,
}

impl TryFrom<MetricRow> for Metric {
    type Error = Error;
    fn try_from(r: MetricRow) -> Result<Self, Error> {
        let scope = match (r.ward, r.project) {
            (Some(w), _) => Scope::Ward(w),
            (None, Some(p)) => Scope::Project(p),
            (None, None) => Scope::Owner,
        };
        Ok(Metric {
            uid: r.uid,
            owner: Owner::from_column(r.site)?,
            id: r.id,
            frequency: Frequency::from_column(&r.frequency)?,
            value_type: ValueType::from_column(&r.value_type)?,
            scope,
            settings: Settings {
                display_name: r.display_name,
                description: r.description,
                unit: r.unit,
                kind: Kind::from_column(&r.kind)?,
                direction: direction_from_column(&r.direction)?,
                target: r.target,
                rate_per: r.rate_per,
                location: Location::from_column(&r.location_breakdown)?,
                recording: Recording {
                    dimensions: r
                        .dimensions
                        .iter()
                        .map(|d| Dimension::from_code(d))
                        .collect::<Result<_, _>>()?,
                    age_bands: r.age_bands,
                },
                imd_edition: r
                    .imd_edition
                    .as_deref()
                    .map(ImdEdition::from_column)
                    .transpose()?,
            },
            create_time: r.create_time,
            update_time: r.update_time,
            revision: r.revision,
            has_measurements: r.has_measurements,
        })
    }
}

const COLUMNS: &str = "uid, site, id, display_name, description, unit, kind, direction, target, \
     frequency, value_type, rate_per, ward, project, location_breakdown, dimensions, imd_edition, \
     age_bands, create_time, update_time, revision, \
     EXISTS (SELECT 1 FROM measurement x WHERE x.metric_uid = metric.uid) AS has_measurements";

fn dimension_codes(r: &Recording) -> Vec<String> {
    r.dimensions.iter().map(|d| d.code().to_owned()).collect()
}

/// Inserts a metric; `AlreadyExists` if the name is taken.
pub(crate) async fn insert(conn: &mut PgConnection, m: &NewMetric) -> Result<Metric, Error> {
    let s = &m.settings;
    let (ward, project) = match &m.scope {
        Scope::Owner => (None, None),
        Scope::Ward(w) => (Some(w.as_str()), None),
        Scope::Project(p) => (None, Some(p.as_str())),
    };
    let row: Option<MetricRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO metric (site, id, display_name, unit, kind, direction, description, target,
                             frequency, value_type, rate_per, ward, project, location_breakdown,
                             dimensions, imd_edition, age_bands)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
         ON CONFLICT DO NOTHING RETURNING {COLUMNS}"
    )))
    .bind(m.owner.site_column())
    .bind(&m.id)
    .bind(&s.display_name)
    .bind(&s.unit)
    .bind(s.kind.column())
    .bind(direction_column(s.direction))
    .bind(&s.description)
    .bind(s.target)
    .bind(m.frequency.column())
    .bind(m.value_type.column())
    .bind(s.rate_per)
    .bind(ward)
    .bind(project)
    .bind(s.location.column())
    .bind(dimension_codes(&s.recording))
    .bind(s.imd_edition.map(ImdEdition::column))
    .bind(&s.recording.age_bands)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => row.try_into(),
        None => Err(Error::AlreadyExists {
            name: m.owner.child(COLLECTION, &m.id),
        }),
    }
}

/// How a read locks the metric's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lock {
    /// No lock.
    None,
    /// `FOR SHARE`: the definition cannot change until the transaction ends (ingest).
    Share,
    /// `FOR UPDATE`: the caller will change it.
    Update,
}

/// Reads one metric by owner and id.
pub(crate) async fn get(
    conn: &mut PgConnection,
    owner: &Owner,
    id: &str,
    lock: Lock,
) -> Result<Option<Metric>, Error> {
    let lock = match lock {
        Lock::None => "",
        Lock::Share => "FOR SHARE",
        Lock::Update => "FOR UPDATE",
    };
    let row: Option<MetricRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM metric WHERE coalesce(site, '') = coalesce($1, '') AND id = $2 {lock}"
    )))
    .bind(owner.site_column())
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(TryInto::try_into).transpose()
}

/// One page of the metrics in `scope`, ordered by name.
pub(crate) async fn list(
    conn: &mut PgConnection,
    scope: &ListScope,
    page: &Page,
) -> Result<(Vec<pb::Metric>, String), Error> {
    let rows: Vec<MetricRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM metric
         WHERE {LIST_SCOPE_SQL}
           AND (coalesce(site, ''), id) > ($3, $4)
         ORDER BY coalesce(site, ''), id
         LIMIT $5"
    )))
    .bind(scope.trust)
    .bind(&scope.sites)
    .bind(page.after_key(0).unwrap_or(""))
    .bind(page.after_key(1).unwrap_or(""))
    .bind(page.limit())
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| {
        vec![r.site.clone().unwrap_or_default(), r.id.clone()]
    });
    rows.into_iter()
        .map(|r| Metric::try_from(r).map(|m| m.to_proto()))
        .collect::<Result<Vec<_>, _>>()
        .map(|m| (m, next))
}

/// One page of the metrics a dashboard shows, ordered by name (trust-wide first).
pub(crate) async fn list_for_dashboard(
    conn: &mut PgConnection,
    scope: &DashboardScope,
    page: &Page,
) -> Result<(Vec<Metric>, String), Error> {
    let rows: Vec<MetricRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM metric
         WHERE kind = ANY($1)
           AND ((site IS NULL AND $2) OR (site IS NOT NULL AND $3 AND ($4::text[] IS NULL OR site = ANY($4))))
           AND (coalesce(site, ''), id) > ($5, $6)
         ORDER BY coalesce(site, ''), id
         LIMIT $7"
    )))
    .bind(&scope.kinds)
    .bind(scope.trust)
    .bind(scope.sites.as_ref().is_none_or(|s| !s.is_empty()))
    .bind(&scope.sites)
    .bind(page.after_key(0).unwrap_or(""))
    .bind(page.after_key(1).unwrap_or(""))
    .bind(page.limit())
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| {
        vec![r.site.clone().unwrap_or_default(), r.id.clone()]
    });
    rows.into_iter()
        .map(Metric::try_from)
        .collect::<Result<Vec<_>, _>>()
        .map(|m| (m, next))
}

/// Writes UpdateMetric's settings to the metric `uid`.
pub(crate) async fn update(
    conn: &mut PgConnection,
    uid: i64,
    s: &Settings,
) -> Result<Metric, Error> {
    let row: MetricRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE metric SET display_name = $2, description = $3, unit = $4, kind = $5,
                direction = $6, target = $7, rate_per = $8, location_breakdown = $9,
                dimensions = $10, imd_edition = $11, age_bands = $12
         WHERE uid = $1 RETURNING {COLUMNS}"
    )))
    .bind(uid)
    .bind(&s.display_name)
    .bind(&s.description)
    .bind(&s.unit)
    .bind(s.kind.column())
    .bind(direction_column(s.direction))
    .bind(s.target)
    .bind(s.rate_per)
    .bind(s.location.column())
    .bind(dimension_codes(&s.recording))
    .bind(s.imd_edition.map(ImdEdition::column))
    .bind(&s.recording.age_bands)
    .fetch_one(&mut *conn)
    .await?;
    row.try_into()
}
