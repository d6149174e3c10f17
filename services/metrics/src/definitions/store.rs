//! The `metric` table: metric rows and their mapping, reads (locked as asked), lists by
//! parent and for the dashboard, insert and update.

use chrono::{DateTime, Utc};
use qi_filter::Range;
use qi_platform::Error;
use qi_platform::extract::Order;
use qi_platform::names::OwnerAccess as _;
use qi_platform::names::{ListScope, Owner};
use qi_platform::paging::Page;
use qi_proto::metrics as pb;
use sqlx::PgConnection;

use super::ValueTypeCodes as _;
use super::{
    COLLECTION, DashboardScope, ImdEdition, Kind, Location, Metric, NewMetric, Scope, Settings,
    ValueType, direction_column, direction_from_column,
};
use crate::dimensions::{Dimension, Recording};
use crate::periods::Frequency;

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

/// `query_as!` into [`MetricRow`] of `$head`, the metric's columns, then `$tail`: the columns
/// are written once, and every statement is still checked at build time.
macro_rules! metric_rows {
    ($head:literal, $tail:literal $(+ $more:literal)*, $($arg:expr),+ $(,)?) => {
        sqlx::query_as!(
            MetricRow,
            $head
                + "uid, site, id, display_name, description, unit, kind, direction, target, \
                   frequency, value_type, rate_per, ward, project, location_breakdown, \
                   dimensions, imd_edition, age_bands, create_time, update_time, revision, \
                   EXISTS (SELECT 1 FROM measurement x WHERE x.metric_uid = metric.uid) \
                   AS \"has_measurements!\""
                + $tail $(+ $more)*,
            $($arg),+
        )
    };
}

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
    let row = metric_rows!(
        "INSERT INTO metric (site, id, display_name, unit, kind, direction, description, target,
                             frequency, value_type, rate_per, ward, project, location_breakdown,
                             dimensions, imd_edition, age_bands)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
         ON CONFLICT DO NOTHING RETURNING ",
        "",
        m.owner.site_column(),
        m.id,
        s.display_name,
        s.unit,
        s.kind.column(),
        direction_column(s.direction),
        s.description,
        s.target,
        m.frequency.column(),
        m.value_type.column(),
        s.rate_per,
        ward,
        project,
        s.location.column(),
        &dimension_codes(&s.recording),
        s.imd_edition.map(ImdEdition::column),
        &s.recording.age_bands,
    )
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
    // One statement per lock, each checked at build time.
    macro_rules! by_name {
        ($($lock:literal)?) => {
            metric_rows!(
                "SELECT ",
                " FROM metric WHERE coalesce(site, '') = coalesce($1, '') AND id = $2"
                    $(+ $lock)?,
                owner.site_column(),
                id,
            )
            .fetch_optional(&mut *conn)
            .await?
        };
    }
    let row = match lock {
        Lock::None => by_name!(),
        Lock::Share => by_name!(" FOR SHARE"),
        Lock::Update => by_name!(" FOR UPDATE"),
    };
    row.map(TryInto::try_into).transpose()
}

/// One page of the metrics in `scope`, ordered by name, or oldest change first (along
/// `metric_update_time`), changed in `updated`.
pub(crate) async fn list(
    conn: &mut PgConnection,
    scope: &ListScope,
    updated: &Range<DateTime<Utc>>,
    order: Order,
    page: &Page,
) -> Result<(Vec<pb::Metric>, String), Error> {
    // The scope is `qi_platform::names::LIST_SCOPE_SQL` written out: the macro takes literals.
    let rows = match order {
        Order::Default => {
            metric_rows!(
                "SELECT ",
                " FROM metric
             WHERE CASE WHEN $1 THEN site IS NULL
                        ELSE site IS NOT NULL AND ($2::text[] IS NULL OR site = ANY($2)) END
               AND (coalesce(site, ''), id) > ($3, $4)
               AND ($6::timestamptz IS NULL OR update_time >= $6)
               AND ($7::timestamptz IS NULL OR update_time < $7)
             ORDER BY coalesce(site, ''), id
             LIMIT $5",
                scope.trust,
                scope.sites.as_deref(),
                page.after_key(0).unwrap_or(""),
                page.after_key(1).unwrap_or(""),
                page.limit(),
                updated.from,
                updated.before,
            )
            .fetch_all(&mut *conn)
            .await?
        }
        Order::UpdateTime => {
            metric_rows!(
                "SELECT ",
                " FROM metric
             WHERE CASE WHEN $1 THEN site IS NULL
                        ELSE site IS NOT NULL AND ($2::text[] IS NULL OR site = ANY($2)) END
               AND ($3::timestamptz IS NULL OR (update_time, uid) > ($3, $4))
               AND ($6::timestamptz IS NULL OR update_time >= $6)
               AND ($7::timestamptz IS NULL OR update_time < $7)
             ORDER BY update_time, uid
             LIMIT $5",
                scope.trust,
                scope.sites.as_deref(),
                order.after_time(page)?,
                page.parsed_key::<i64>(0)?.unwrap_or(0),
                page.limit(),
                updated.from,
                updated.before,
            )
            .fetch_all(&mut *conn)
            .await?
        }
    };
    let (rows, next) = page.finish(rows, |r| match order {
        Order::Default => vec![r.site.clone().unwrap_or_default(), r.id.clone()],
        Order::UpdateTime => order.key(r.uid.to_string(), r.update_time),
    });
    rows.into_iter()
        .map(|r| Metric::try_from(r).map(|m| m.to_proto()))
        .collect::<Result<Vec<_>, _>>()
        .map(|m| (m, next))
}

/// The metrics of these internal keys (those not stored are left out).
pub(crate) async fn by_uids(conn: &mut PgConnection, uids: &[i64]) -> Result<Vec<Metric>, Error> {
    let rows = metric_rows!("SELECT ", " FROM metric WHERE uid = ANY($1)", uids)
        .fetch_all(&mut *conn)
        .await?;
    rows.into_iter().map(Metric::try_from).collect()
}

/// One page of the metrics a dashboard shows, ordered by name (trust-wide first).
pub(crate) async fn list_for_dashboard(
    conn: &mut PgConnection,
    scope: &DashboardScope,
    page: &Page,
) -> Result<(Vec<Metric>, String), Error> {
    let rows = metric_rows!(
        "SELECT ",
        " FROM metric
         WHERE kind = ANY($1)
           AND ((site IS NULL AND $2) OR (site IS NOT NULL AND $3 AND ($4::text[] IS NULL OR site = ANY($4))))
           AND (coalesce(site, ''), id) > ($5, $6)
         ORDER BY coalesce(site, ''), id
         LIMIT $7",
        scope.kinds.as_slice() as &[&str],
        scope.trust,
        scope.sites.as_ref().is_none_or(|s| !s.is_empty()),
        scope.sites.as_deref(),
        page.after_key(0).unwrap_or(""),
        page.after_key(1).unwrap_or(""),
        page.limit(),
    )
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
    let row = metric_rows!(
        "UPDATE metric SET display_name = $2, description = $3, unit = $4, kind = $5,
                direction = $6, target = $7, rate_per = $8, location_breakdown = $9,
                dimensions = $10, imd_edition = $11, age_bands = $12
         WHERE uid = $1 RETURNING ",
        "",
        uid,
        s.display_name,
        s.description,
        s.unit,
        s.kind.column(),
        direction_column(s.direction),
        s.target,
        s.rate_per,
        s.location.column(),
        &dimension_codes(&s.recording),
        s.imd_edition.map(ImdEdition::column),
        &s.recording.age_bands,
    )
    .fetch_one(&mut *conn)
    .await?;
    row.try_into()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::spc::ImprovementDirection;
    use crate::testing::{metric, new_metric, pool, site, transaction};

    fn names(ms: &[pb::Metric]) -> Vec<&str> {
        ms.iter().map(|m| m.name.as_str()).collect()
    }

    fn everything() -> anyhow::Result<Page> {
        Ok(Page::parse(500, "", "p")?)
    }

    #[tokio::test]
    async fn an_insert_reads_back_whole_and_a_taken_name_is_refused() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let mut new = new_metric(site("BAS"), "falls", ValueType::Rate);
        new.scope = Scope::Ward("w1".into());
        new.settings = Settings {
            display_name: "Falls".into(),
            description: "Inpatient falls".into(),
            unit: "per 1,000 bed days".into(),
            kind: Kind::Qms,
            direction: ImprovementDirection::Decrease,
            target: Some(4.5),
            rate_per: 1000.0,
            location: Location::None,
            recording: Recording {
                dimensions: vec![Dimension::Sex, Dimension::Imd, Dimension::Age],
                age_bands: vec!["0-64".into(), "65+".into()],
            },
            imd_edition: Some(ImdEdition::Imd2025),
        };
        let made = insert(&mut conn, &new).await?;
        assert_eq!(made.settings, new.settings);
        assert_eq!((&made.scope, made.revision), (&new.scope, 1));
        assert!(!made.has_measurements);
        let got = get(&mut conn, &new.owner, "falls", Lock::None).await?;
        assert_eq!(got.map(|m| m.to_proto()), Some(made.to_proto()));
        match insert(&mut conn, &new).await {
            Err(Error::AlreadyExists { name }) => assert_eq!(name, "sites/BAS/metrics/falls"),
            other => panic!("expected AlreadyExists, got {:?}", other.map(|m| m.name())),
        }
        // The same id under another owner is another metric, the trust's included.
        metric(&mut conn, site("SOU"), "falls", ValueType::Rate).await?;
        metric(&mut conn, Owner::Trust, "falls", ValueType::Rate).await?;
        let again = insert(
            &mut conn,
            &new_metric(Owner::Trust, "falls", ValueType::Count),
        )
        .await;
        assert!(matches!(again, Err(Error::AlreadyExists { .. })));
        Ok(())
    }

    #[tokio::test]
    async fn a_read_finds_the_owners_metric_and_whether_it_has_measurements() -> anyhow::Result<()>
    {
        let mut conn = transaction().await?;
        let trust = metric(&mut conn, Owner::Trust, "los", ValueType::Mean).await?;
        let bas = metric(&mut conn, site("BAS"), "los", ValueType::Mean).await?;
        for lock in [Lock::None, Lock::Share, Lock::Update] {
            let got = get(&mut conn, &Owner::Trust, "los", lock).await?;
            assert_eq!(got.map(|m| m.uid), Some(trust.uid));
        }
        assert!(
            get(&mut conn, &site("SOU"), "los", Lock::None)
                .await?
                .is_none()
        );
        sqlx::query!(
            "INSERT INTO measurement (metric_uid, period, value) VALUES ($1, '2026-01-01', 1)",
            bas.uid
        )
        .execute(&mut *conn)
        .await?;
        let got = get(&mut conn, &site("BAS"), "los", Lock::None).await?;
        assert!(got.is_some_and(|m| m.has_measurements));
        let got = get(&mut conn, &Owner::Trust, "los", Lock::None).await?;
        assert!(got.is_some_and(|m| !m.has_measurements));
        Ok(())
    }

    #[tokio::test]
    async fn a_read_for_update_holds_off_readers_for_share_only() -> anyhow::Result<()> {
        let pool = pool().await?;
        let mut setup = qi_platform::db::begin(&pool).await?;
        metric(&mut setup, site("BAS"), "los", ValueType::Mean).await?;
        setup.commit().await?;
        let bas = site("BAS");
        let mut writer = qi_platform::db::begin(&pool).await?;
        get(&mut writer, &bas, "los", Lock::Update).await?;
        let mut reader = qi_platform::db::begin(&pool).await?;
        let plain = tokio::time::timeout(
            Duration::from_secs(30),
            get(&mut reader, &bas, "los", Lock::None),
        );
        assert!(plain.await??.is_some());
        reader.commit().await?;
        let mut ingest = qi_platform::db::begin(&pool).await?;
        let shared = tokio::time::timeout(
            Duration::from_millis(300),
            get(&mut ingest, &bas, "los", Lock::Share),
        );
        assert!(shared.await.is_err(), "FOR SHARE waits for FOR UPDATE");
        Ok(())
    }

    #[tokio::test]
    async fn an_update_writes_the_settings_and_counts_a_revision() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let m = metric(&mut conn, site("BAS"), "los", ValueType::Mean).await?;
        let other = metric(&mut conn, site("BAS"), "tat", ValueType::Mean).await?;
        let settings = Settings {
            display_name: "Length of stay".into(),
            unit: "days".into(),
            kind: Kind::Balancing,
            direction: ImprovementDirection::Neither,
            target: Some(3.0),
            recording: Recording {
                dimensions: vec![Dimension::Ethnicity],
                age_bands: Vec::new(),
            },
            ..m.settings.clone()
        };
        let updated = update(&mut conn, m.uid, &settings).await?;
        assert_eq!((updated.uid, updated.revision), (m.uid, 2));
        assert_eq!(updated.settings, settings);
        let untouched = get(&mut conn, &site("BAS"), "tat", Lock::None).await?;
        assert_eq!(
            untouched.map(|t| (t.revision, t.settings)),
            Some((1, other.settings))
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_list_keeps_to_its_scope_in_name_order_page_by_page() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        for (owner, id) in [
            (site("SOU"), "b"),
            (site("BAS"), "b"),
            (Owner::Trust, "t"),
            (site("BAS"), "a"),
            (site("BRM"), "a"),
        ] {
            metric(&mut conn, owner, id, ValueType::Count).await?;
        }
        let scope = |trust, sites: Option<&[&str]>| ListScope {
            trust,
            sites: sites.map(|s| s.iter().map(|c| c.to_string()).collect()),
        };
        let all = everything()?;
        let (trust, _) = list(
            &mut conn,
            &scope(true, None),
            &Range::default(),
            Order::Default,
            &all,
        )
        .await?;
        assert_eq!(names(&trust), ["trust/metrics/t"]);
        let (bas, _) = list(
            &mut conn,
            &scope(false, Some(&["BAS"])),
            &Range::default(),
            Order::Default,
            &all,
        )
        .await?;
        assert_eq!(names(&bas), ["sites/BAS/metrics/a", "sites/BAS/metrics/b"]);
        let (first, next) = list(
            &mut conn,
            &scope(false, None),
            &Range::default(),
            Order::Default,
            &Page::parse(3, "", "p")?,
        )
        .await?;
        let after = Page::parse(3, &next, "p")?;
        let (second, end) = list(
            &mut conn,
            &scope(false, None),
            &Range::default(),
            Order::Default,
            &after,
        )
        .await?;
        assert_eq!(
            names(&first),
            [
                "sites/BAS/metrics/a",
                "sites/BAS/metrics/b",
                "sites/BRM/metrics/a"
            ]
        );
        assert_eq!(names(&second), ["sites/SOU/metrics/b"]);
        assert!(end.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn a_dashboard_lists_its_kinds_trust_first_within_its_sites() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        for (owner, id, kind) in [
            (site("SOU"), "q", Kind::Qms),
            (site("BAS"), "q", Kind::Qms),
            (site("BAS"), "o", Kind::Outcome),
            (Owner::Trust, "q", Kind::Qms),
            (Owner::Trust, "p", Kind::Process),
        ] {
            let mut new = new_metric(owner, id, ValueType::Count);
            new.settings.kind = kind;
            insert(&mut conn, &new).await?;
        }
        let scope = |trust, sites: Option<Vec<String>>| DashboardScope {
            trust,
            sites,
            kinds: vec!["qms", "process"],
        };
        let dashboard = async |conn: &mut PgConnection, scope, page| -> anyhow::Result<_> {
            let (ms, next) = list_for_dashboard(conn, &scope, &page).await?;
            Ok((ms.iter().map(Metric::name).collect::<Vec<_>>(), next))
        };
        let (all, _) = dashboard(&mut conn, scope(true, None), everything()?).await?;
        assert_eq!(
            all,
            [
                "trust/metrics/p",
                "trust/metrics/q",
                "sites/BAS/metrics/q",
                "sites/SOU/metrics/q"
            ]
        );
        let bas = Some(vec!["BAS".to_owned()]);
        let (first, next) = dashboard(
            &mut conn,
            scope(true, bas.clone()),
            Page::parse(2, "", "p")?,
        )
        .await?;
        let (second, end) =
            dashboard(&mut conn, scope(true, bas), Page::parse(2, &next, "p")?).await?;
        assert_eq!(first, ["trust/metrics/p", "trust/metrics/q"]);
        assert_eq!(second, ["sites/BAS/metrics/q"]);
        assert!(end.is_empty());
        // No sites: the trust's metrics alone; no trust: the sites' alone.
        let (trust_only, _) =
            dashboard(&mut conn, scope(true, Some(Vec::new())), everything()?).await?;
        assert_eq!(trust_only, ["trust/metrics/p", "trust/metrics/q"]);
        let (sites_only, _) = dashboard(&mut conn, scope(false, None), everything()?).await?;
        assert_eq!(sites_only, ["sites/BAS/metrics/q", "sites/SOU/metrics/q"]);
        Ok(())
    }
}
