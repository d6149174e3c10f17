//! Metric definitions: `sites/{site}/metrics/{id}` (a site's, ward's or project's metric) or
//! trust-wide `trust/metrics/{id}`: what is measured, how often, how values combine, which
//! way is better, the target, and the inequality dimensions it is recorded by. Here: the
//! metric RPCs, the validated metric and its rules, and what a metric's children
//! (annotations, rebase points) share: their names, their list and their delete.

use chrono::{DateTime, Utc};
use qi_platform::changes;
use qi_platform::convert::{etag, required_text, timestamp};
use qi_platform::extract;
use qi_platform::names::ListParentScope as _;
use qi_platform::names::OwnerAccess as _;
use qi_platform::names::{self, ListParent, Owner};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, Violations, idempotency};
use qi_proto::metrics as pb;
use sqlx::PgConnection;

use crate::MetricsApi;
use crate::dimensions::{self, Dimension, Recording};
use crate::periods::Frequency;
use crate::spc::ImprovementDirection;

pub(crate) mod store;

use store::Lock;

/// The collection id in metric names.
pub(crate) const COLLECTION: &str = "metrics";

/// CreateMetric: the validated metric under a parent the caller may write (idempotent by
/// `request_id`).
pub(crate) async fn create(
    api: &MetricsApi,
    ctx: AccessContext,
    req: pb::CreateMetricRequest,
) -> Result<pb::CreateMetricResponse, Error> {
    let new = NewMetric::try_from(req.clone())?;
    new.owner.check_create(&ctx, &api.sites)?;
    let tx = qi_platform::db::begin(&api.pool).await?;
    idempotency::once(tx, &ctx, &new.request_id, &req, async |tx| {
        let metric = store::insert(tx, &new).await?;
        let made = metric.to_proto();
        let sites = metric.readers();
        let kind = changes::Kind::Created;
        crate::feed::record(tx, COLLECTION, &made.name, kind, sites, &made).await?;
        Ok(pb::CreateMetricResponse { metric: Some(made) })
    })
    .await
}

/// GetMetric.
pub(crate) async fn get(
    api: &MetricsApi,
    ctx: AccessContext,
    req: pb::GetMetricRequest,
) -> Result<pb::GetMetricResponse, Error> {
    let pb::GetMetricRequest { name } = req;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let metric = resolve(&mut conn, &ctx, "name", &name, false, Lock::None).await?;
    Ok(pb::GetMetricResponse {
        metric: Some(metric.to_proto()),
    })
}

/// ListMetrics: one page under `parent`, scoped to the caller's sites.
pub(crate) async fn list(
    api: &MetricsApi,
    ctx: AccessContext,
    req: pb::ListMetricsRequest,
) -> Result<pb::ListMetricsResponse, Error> {
    let pb::ListMetricsRequest {
        parent,
        page_size,
        page_token,
        filter,
        order_by,
    } = req;
    let mut v = Violations::new();
    let list_parent = v.check(ListParent::parse("parent", &parent).map(Some));
    let terms = v.check(extract::read_terms(&filter, None, true));
    let order = v.check(extract::order(&order_by));
    v.finish()?;
    let list_parent = list_parent.ok_or_else(|| Error::invalid("parent", "is required"))?;
    let params = extract::token_params(parent.clone(), &filter, &order_by);
    let page = Page::parse(page_size, &page_token, &params)?;
    let mut scope = list_parent.scope(&ctx)?;
    if let Some(site) = &terms.site {
        if scope.trust {
            return Err(Error::invalid(
                "filter",
                "`site = …`: trust-wide metrics are at no site (list `sites/-` instead)",
            ));
        }
        scope.sites = Some(extract::only_site(scope.sites, site));
    }
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let (metrics, next_page_token) =
        store::list(&mut conn, &scope, &terms.updated, order, &page).await?;
    Ok(pb::ListMetricsResponse {
        metrics,
        next_page_token,
    })
}

/// UpdateMetric: the masked settings, checked as a whole against the metric read `FOR UPDATE`.
pub(crate) async fn update(
    api: &MetricsApi,
    ctx: AccessContext,
    req: pb::UpdateMetricRequest,
) -> Result<pb::UpdateMetricResponse, Error> {
    let pb::UpdateMetricRequest {
        metric,
        update_mask,
    } = req;
    let metric = metric.ok_or_else(|| Error::invalid("metric", "is required"))?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let current = resolve(
        &mut tx,
        &ctx,
        "metric.name",
        &metric.name,
        true,
        Lock::Update,
    )
    .await?;
    let settings = updated_settings(&current, &metric, update_mask.as_ref())?;
    let updated = store::update(&mut tx, current.uid, &settings).await?;
    let metric = updated.to_proto();
    let sites = updated.readers();
    let kind = changes::Kind::Updated;
    crate::feed::record(&mut tx, COLLECTION, &metric.name, kind, sites, &metric).await?;
    tx.commit().await?;
    Ok(pb::UpdateMetricResponse {
        metric: Some(metric),
    })
}

/// What kind of measure a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Kind {
    #[default]
    Outcome,
    Process,
    Balancing,
    Qms,
}

impl Kind {
    pub(crate) fn from_proto(field: &str, kind: i32) -> Result<Self, Error> {
        match pb::MetricKind::try_from(kind) {
            Ok(pb::MetricKind::Outcome) => Ok(Kind::Outcome),
            Ok(pb::MetricKind::Process) => Ok(Kind::Process),
            Ok(pb::MetricKind::Balancing) => Ok(Kind::Balancing),
            Ok(pb::MetricKind::Qms) => Ok(Kind::Qms),
            Ok(pb::MetricKind::Unspecified) | Err(_) => Err(Error::invalid(
                field,
                "choose OUTCOME, PROCESS, BALANCING or QMS",
            )),
        }
    }

    pub(crate) fn to_proto(self) -> pb::MetricKind {
        match self {
            Kind::Outcome => pb::MetricKind::Outcome,
            Kind::Process => pb::MetricKind::Process,
            Kind::Balancing => pb::MetricKind::Balancing,
            Kind::Qms => pb::MetricKind::Qms,
        }
    }

    pub(crate) fn column(self) -> &'static str {
        match self {
            Kind::Outcome => "outcome",
            Kind::Process => "process",
            Kind::Balancing => "balancing",
            Kind::Qms => "qms",
        }
    }

    fn from_column(s: &str) -> Result<Self, Error> {
        match s {
            "outcome" => Ok(Kind::Outcome),
            "process" => Ok(Kind::Process),
            "balancing" => Ok(Kind::Balancing),
            "qms" => Ok(Kind::Qms),
            other => Err(Error::Internal(anyhow::anyhow!(
                "stored metric kind {other}"
            ))),
        }
    }
}

/// Reads an improvement direction from the contract.
pub(crate) fn direction_from_proto(
    field: &str,
    direction: i32,
) -> Result<ImprovementDirection, Error> {
    match pb::ImprovementDirection::try_from(direction) {
        Ok(pb::ImprovementDirection::Increase) => Ok(ImprovementDirection::Increase),
        Ok(pb::ImprovementDirection::Decrease) => Ok(ImprovementDirection::Decrease),
        Ok(pb::ImprovementDirection::Neither) => Ok(ImprovementDirection::Neither),
        Ok(pb::ImprovementDirection::Unspecified) | Err(_) => Err(Error::invalid(
            field,
            "choose INCREASE, DECREASE or NEITHER",
        )),
    }
}

/// An improvement direction as the contract's enum.
pub(crate) fn direction_to_proto(d: ImprovementDirection) -> pb::ImprovementDirection {
    match d {
        ImprovementDirection::Increase => pb::ImprovementDirection::Increase,
        ImprovementDirection::Decrease => pb::ImprovementDirection::Decrease,
        ImprovementDirection::Neither => pb::ImprovementDirection::Neither,
    }
}

fn direction_column(d: ImprovementDirection) -> &'static str {
    match d {
        ImprovementDirection::Increase => "increase",
        ImprovementDirection::Decrease => "decrease",
        ImprovementDirection::Neither => "neither",
    }
}

fn direction_from_column(s: &str) -> Result<ImprovementDirection, Error> {
    match s {
        "increase" => Ok(ImprovementDirection::Increase),
        "decrease" => Ok(ImprovementDirection::Decrease),
        "neither" => Ok(ImprovementDirection::Neither),
        other => Err(Error::Internal(anyhow::anyhow!("stored direction {other}"))),
    }
}

/// How a metric's measurements are recorded and combined: the engine library's, so the
/// read model combines a period's rows exactly as this service does.
pub(crate) use qi_spc::series::ValueType;

/// A value type as the contract and the `metric` table spell it.
pub(crate) trait ValueTypeCodes: Sized {
    fn from_proto(field: &str, v: i32) -> Result<Self, Error>;
    fn to_proto(self) -> pb::MetricValueType;
    fn column(self) -> &'static str;
    fn from_column(s: &str) -> Result<Self, Error>;
}

impl ValueTypeCodes for ValueType {
    fn from_proto(field: &str, v: i32) -> Result<Self, Error> {
        match pb::MetricValueType::try_from(v) {
            Ok(pb::MetricValueType::Count) => Ok(ValueType::Count),
            Ok(pb::MetricValueType::Mean) => Ok(ValueType::Mean),
            Ok(pb::MetricValueType::Rate) => Ok(ValueType::Rate),
            Ok(pb::MetricValueType::Unspecified) | Err(_) => {
                Err(Error::invalid(field, "choose COUNT, MEAN or RATE"))
            }
        }
    }

    fn to_proto(self) -> pb::MetricValueType {
        match self {
            ValueType::Count => pb::MetricValueType::Count,
            ValueType::Mean => pb::MetricValueType::Mean,
            ValueType::Rate => pb::MetricValueType::Rate,
        }
    }

    fn column(self) -> &'static str {
        match self {
            ValueType::Count => "count",
            ValueType::Mean => "mean",
            ValueType::Rate => "rate",
        }
    }

    fn from_column(s: &str) -> Result<Self, Error> {
        match s {
            "count" => Ok(ValueType::Count),
            "mean" => Ok(ValueType::Mean),
            "rate" => Ok(ValueType::Rate),
            other => Err(Error::Internal(anyhow::anyhow!(
                "stored value type {other}"
            ))),
        }
    }
}

/// What each measurement is located by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Location {
    #[default]
    None,
    Site,
    Ward,
}

impl Location {
    fn from_proto(field: &str, v: i32) -> Result<Self, Error> {
        match pb::LocationBreakdown::try_from(v) {
            Ok(pb::LocationBreakdown::Unspecified | pb::LocationBreakdown::None) => {
                Ok(Location::None)
            }
            Ok(pb::LocationBreakdown::Site) => Ok(Location::Site),
            Ok(pb::LocationBreakdown::Ward) => Ok(Location::Ward),
            Err(_) => Err(Error::invalid(field, "choose NONE, SITE or WARD")),
        }
    }

    fn to_proto(self) -> pb::LocationBreakdown {
        match self {
            Location::None => pb::LocationBreakdown::None,
            Location::Site => pb::LocationBreakdown::Site,
            Location::Ward => pb::LocationBreakdown::Ward,
        }
    }

    fn column(self) -> &'static str {
        match self {
            Location::None => "none",
            Location::Site => "site",
            Location::Ward => "ward",
        }
    }

    fn from_column(s: &str) -> Result<Self, Error> {
        match s {
            "none" => Ok(Location::None),
            "site" => Ok(Location::Site),
            "ward" => Ok(Location::Ward),
            other => Err(Error::Internal(anyhow::anyhow!("stored location {other}"))),
        }
    }
}

/// An edition of the Index of Multiple Deprivation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImdEdition {
    Imd2019,
    Imd2025,
}

impl ImdEdition {
    fn from_proto(v: i32) -> Result<Option<Self>, Error> {
        match pb::ImdEdition::try_from(v) {
            Ok(pb::ImdEdition::Unspecified) => Ok(None),
            Ok(pb::ImdEdition::Imd2019) => Ok(Some(ImdEdition::Imd2019)),
            Ok(pb::ImdEdition::Imd2025) => Ok(Some(ImdEdition::Imd2025)),
            Err(_) => Err(Error::invalid(
                "metric.imd_edition",
                "choose IMD2019 or IMD2025",
            )),
        }
    }

    fn to_proto(self) -> pb::ImdEdition {
        match self {
            ImdEdition::Imd2019 => pb::ImdEdition::Imd2019,
            ImdEdition::Imd2025 => pb::ImdEdition::Imd2025,
        }
    }

    fn column(self) -> &'static str {
        match self {
            ImdEdition::Imd2019 => "imd2019",
            ImdEdition::Imd2025 => "imd2025",
        }
    }

    fn from_column(s: &str) -> Result<Self, Error> {
        match s {
            "imd2019" => Ok(ImdEdition::Imd2019),
            "imd2025" => Ok(ImdEdition::Imd2025),
            other => Err(Error::Internal(anyhow::anyhow!(
                "stored IMD edition {other}"
            ))),
        }
    }
}

/// Where a metric applies, beyond its owner.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum Scope {
    /// The owner: the trust or a site.
    #[default]
    Owner,
    /// A ward of the owner site (the ward id).
    Ward(String),
    /// A project led by the owner site (its full name).
    Project(String),
}

/// What UpdateMetric may change: everything but the identity, frequency, value type and
/// scope.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Settings {
    pub(crate) display_name: String,
    pub(crate) description: String,
    pub(crate) unit: String,
    pub(crate) kind: Kind,
    pub(crate) direction: ImprovementDirection,
    pub(crate) target: Option<f64>,
    pub(crate) rate_per: f64,
    pub(crate) location: Location,
    pub(crate) recording: Recording,
    pub(crate) imd_edition: Option<ImdEdition>,
}

impl Settings {
    /// Whether the rules measurements are checked against differ (which may not change
    /// under stored measurements).
    fn recording_rules_differ(&self, other: &Settings) -> bool {
        self.location != other.location
            || self.recording != other.recording
            || self.imd_edition != other.imd_edition
    }
}

/// A stored metric.
#[derive(Debug, Clone)]
pub(crate) struct Metric {
    /// The internal key measurements refer to.
    pub(crate) uid: i64,
    pub(crate) owner: Owner,
    pub(crate) id: String,
    pub(crate) frequency: Frequency,
    pub(crate) value_type: ValueType,
    pub(crate) scope: Scope,
    pub(crate) settings: Settings,
    pub(crate) create_time: DateTime<Utc>,
    pub(crate) update_time: DateTime<Utc>,
    pub(crate) revision: i64,
    pub(crate) has_measurements: bool,
}

impl Metric {
    /// The metric's resource name.
    pub(crate) fn name(&self) -> String {
        self.owner.child(COLLECTION, &self.id)
    }

    /// The sites whose callers read the metric, and with it its annotations, its rebase
    /// points and its measurements recorded at no site of their own (a change's `sites`): a
    /// site's metric, that site's; a trust-wide one, every caller's (`None`).
    pub(crate) fn readers(&self) -> Option<Vec<String>> {
        self.owner.site_column().map(|s| vec![s.to_owned()])
    }

    /// The contract's scope.
    pub(crate) fn scope_proto(&self) -> pb::MetricScope {
        match (&self.owner, &self.scope) {
            (Owner::Trust, _) => pb::MetricScope::Trust,
            (Owner::Site(_), Scope::Owner) => pb::MetricScope::Site,
            (Owner::Site(_), Scope::Ward(_)) => pb::MetricScope::Ward,
            (Owner::Site(_), Scope::Project(_)) => pb::MetricScope::Project,
        }
    }

    /// The ward's resource name, for a ward's metric.
    pub(crate) fn ward_name(&self) -> Option<String> {
        match (&self.owner, &self.scope) {
            (Owner::Site(s), Scope::Ward(w)) => Some(format!("sites/{s}/wards/{w}")),
            (Owner::Site(_) | Owner::Trust, _) => None,
        }
    }

    /// The metric as the contract shows it.
    pub(crate) fn to_proto(&self) -> pb::Metric {
        let s = &self.settings;
        pb::Metric {
            name: self.name(),
            display_name: s.display_name.clone(),
            unit: s.unit.clone(),
            kind: s.kind.to_proto() as i32,
            improvement_direction: direction_to_proto(s.direction) as i32,
            create_time: Some(timestamp(self.create_time)),
            update_time: Some(timestamp(self.update_time)),
            etag: etag(self.revision),
            description: s.description.clone(),
            target: s.target,
            frequency: self.frequency.to_proto() as i32,
            value_type: self.value_type.to_proto() as i32,
            rate_per: if self.value_type == ValueType::Rate {
                s.rate_per
            } else {
                0.0
            },
            scope: self.scope_proto() as i32,
            ward: self.ward_name().unwrap_or_default(),
            project: match &self.scope {
                Scope::Project(p) => p.clone(),
                Scope::Owner | Scope::Ward(_) => String::new(),
            },
            location_breakdown: s.location.to_proto() as i32,
            dimensions: s
                .recording
                .dimensions
                .iter()
                .map(|d| d.to_proto() as i32)
                .collect(),
            imd_edition: s
                .imd_edition
                .map_or(pb::ImdEdition::Unspecified, ImdEdition::to_proto)
                as i32,
            age_bands: if s.recording.records(Dimension::Age) {
                if s.recording.age_bands.is_empty() {
                    dimensions::DEFAULT_AGE_BANDS.map(String::from).to_vec()
                } else {
                    s.recording.age_bands.clone()
                }
            } else {
                Vec::new()
            },
            has_measurements: self.has_measurements,
        }
    }
}

/// Reads and checks the updatable fields of a `Metric` message. Fields are named
/// `metric.{field}`.
fn read_settings(v: &mut Violations, m: &pb::Metric) -> Settings {
    let display_name = v.check(required_text("metric.display_name", &m.display_name, 200));
    let description = m.description.trim().to_owned();
    if description.chars().count() > 2_000 {
        v.add("metric.description", "is longer than 2,000 characters");
    }
    let unit = m.unit.trim().to_owned();
    if unit.chars().count() > 40 {
        v.add("metric.unit", "is longer than 40 characters");
    }
    if unit.chars().any(char::is_control) {
        v.add("metric.unit", "contains control characters");
    }
    let kind = v.check(Kind::from_proto("metric.kind", m.kind));
    let direction = v
        .check(
            direction_from_proto("metric.improvement_direction", m.improvement_direction).map(Some),
        )
        .unwrap_or_default();
    if let Some(t) = m.target
        && !t.is_finite()
    {
        v.add("metric.target", "is not a finite number");
    }
    if !m.rate_per.is_finite() || m.rate_per < 0.0 {
        v.add(
            "metric.rate_per",
            "must be a finite number above 0 (or 0 for 1)",
        );
    }
    let location = v.check(Location::from_proto(
        "metric.location_breakdown",
        m.location_breakdown,
    ));
    let mut dims = Vec::new();
    for (i, d) in m.dimensions.iter().enumerate() {
        match Dimension::from_proto(*d) {
            Some(d) if dims.contains(&d) => {
                v.add(format!("metric.dimensions[{i}]"), "is listed twice");
            }
            Some(d) => dims.push(d),
            None => v.add(
                format!("metric.dimensions[{i}]"),
                "choose IMD_QUINTILE, ETHNIC_CATEGORY, AGE_BAND or SEX",
            ),
        }
    }
    let age_bands = v.check(dimensions::validate_age_bands(
        "metric.age_bands",
        &m.age_bands,
    ));
    let imd_edition = v.check(ImdEdition::from_proto(m.imd_edition));
    Settings {
        display_name,
        description,
        unit,
        kind,
        direction,
        target: m.target,
        rate_per: m.rate_per,
        location,
        recording: Recording {
            dimensions: dims,
            age_bands,
        },
        imd_edition,
    }
}

/// Checks settings against the metric's identity; normalises `rate_per` and drops the
/// default age bands.
fn check_settings(
    v: &mut Violations,
    owner: &Owner,
    scope: &Scope,
    value_type: ValueType,
    s: &mut Settings,
) {
    match value_type {
        ValueType::Rate => {
            if s.rate_per == 0.0 {
                s.rate_per = 1.0;
            }
        }
        ValueType::Count | ValueType::Mean => {
            if s.rate_per != 0.0 && s.rate_per != 1.0 {
                v.add("metric.rate_per", "applies to RATE metrics only");
            }
            s.rate_per = 1.0;
        }
    }
    match (s.location, owner, scope) {
        (Location::None, _, _) => {}
        (Location::Site, Owner::Trust, _) => {}
        (Location::Site, Owner::Site(_), _) => v.add(
            "metric.location_breakdown",
            "SITE is for trust-wide metrics: a site's metric holds that site's data",
        ),
        (Location::Ward, _, Scope::Ward(_)) => v.add(
            "metric.location_breakdown",
            "a ward's metric holds that ward's data: use NONE",
        ),
        (Location::Ward, _, Scope::Owner | Scope::Project(_)) => {}
    }
    let imd = s.recording.records(Dimension::Imd);
    match (imd, s.imd_edition) {
        (true, None) => v.add(
            "metric.imd_edition",
            "is required with IMD_QUINTILE: say which IMD the quintiles come from",
        ),
        (false, Some(_)) => v.add("metric.imd_edition", "applies only with IMD_QUINTILE"),
        (true, Some(_)) | (false, None) => {}
    }
    if !s.recording.age_bands.is_empty() && !s.recording.records(Dimension::Age) {
        v.add("metric.age_bands", "apply only with AGE_BAND");
    }
    if s.recording.age_bands == dimensions::DEFAULT_AGE_BANDS.map(String::from) {
        s.recording.age_bands.clear();
    }
}

/// A metric to create, validated.
#[derive(Debug)]
pub(crate) struct NewMetric {
    pub(crate) owner: Owner,
    pub(crate) id: String,
    pub(crate) frequency: Frequency,
    pub(crate) value_type: ValueType,
    pub(crate) scope: Scope,
    pub(crate) settings: Settings,
    pub(crate) request_id: String,
}

/// Reads the scope fields of a new metric.
fn read_scope(v: &mut Violations, owner: Option<&Owner>, ward: &str, project: &str) -> Scope {
    if !ward.is_empty() && !project.is_empty() {
        v.add(
            "metric.project",
            "a metric is a ward's or a project's, not both: set one",
        );
        return Scope::Owner;
    }
    let same_site = |v: &mut Violations, field: &str, of: &Owner| match owner {
        Some(o @ Owner::Site(_)) if o == of => true,
        Some(Owner::Site(_)) => {
            v.add(
                field,
                "must be of the metric's own site (the site in `parent`)",
            );
            false
        }
        Some(Owner::Trust) => {
            v.add(
                field,
                "a trust-wide metric has no ward or project: create it under the site",
            );
            false
        }
        None => false,
    };
    if !ward.is_empty() {
        return match names::parse_name("metric.ward", ward, "wards") {
            Ok((of, id)) if same_site(v, "metric.ward", &of) => Scope::Ward(id),
            Ok(_) => Scope::Owner,
            Err(e) => {
                v.check(Err::<(), _>(e));
                Scope::Owner
            }
        };
    }
    if !project.is_empty() {
        return match names::parse_name("metric.project", project, "projects") {
            Ok((of, id)) if same_site(v, "metric.project", &of) => {
                Scope::Project(of.child("projects", &id))
            }
            Ok(_) => Scope::Owner,
            Err(e) => {
                v.check(Err::<(), _>(e));
                Scope::Owner
            }
        };
    }
    Scope::Owner
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
        // Every field is read here or below; the rest are output only.
        let pb::Metric {
            name: _,
            display_name: _,
            unit: _,
            kind: _,
            improvement_direction: _,
            create_time: _,
            update_time: _,
            etag: _,
            description: _,
            target: _,
            frequency,
            value_type,
            rate_per: _,
            scope: _,
            ward,
            project,
            location_breakdown: _,
            dimensions: _,
            imd_edition: _,
            age_bands: _,
            has_measurements: _,
        } = &metric;
        let mut settings = read_settings(&mut v, &metric);
        let frequency = v
            .check(Frequency::from_proto("metric.frequency", *frequency).map(Some))
            .unwrap_or(Frequency::Day);
        let value_type = v.check(ValueType::from_proto("metric.value_type", *value_type).map(Some));
        let scope = read_scope(&mut v, owner.as_ref(), ward, project);
        if let (Some(owner), Some(value_type)) = (&owner, value_type) {
            check_settings(&mut v, owner, &scope, value_type, &mut settings);
        }
        v.finish()?;
        let owner = owner.ok_or_else(|| Error::invalid("parent", "is required"))?;
        let value_type =
            value_type.ok_or_else(|| Error::invalid("metric.value_type", "is required"))?;
        Ok(NewMetric {
            owner,
            id,
            frequency,
            value_type,
            scope,
            settings,
            request_id,
        })
    }
}

/// Parses a metric name in `field`, checks the caller may read (or, with `write`, change)
/// it, and finds it (`NOT_FOUND` if absent).
pub(crate) async fn resolve(
    conn: &mut PgConnection,
    ctx: &AccessContext,
    field: &str,
    name: &str,
    write: bool,
    lock: Lock,
) -> Result<Metric, Error> {
    let (owner, id) = names::parse_accessible(ctx, field, name, COLLECTION, write)?;
    store::get(conn, &owner, &id, lock)
        .await?
        .ok_or_else(|| Error::not_found(name))
}

/// Parses `{metric}/{collection}/{id}` into the metric's owner and id and the child's id.
fn parse_child(
    field: &str,
    name: &str,
    collection: &str,
) -> Result<(Owner, String, String), Error> {
    let (owner, mut ids) = names::parse_nested(field, name, &[COLLECTION, collection])?;
    let child = ids.pop().unwrap_or_default();
    let metric = ids.pop().unwrap_or_default();
    names::validate_id(field, &metric)?;
    names::validate_id(field, &child)?;
    Ok((owner, metric, child))
}

/// One page of a metric's children under `parent` (a metric the caller may read), read by
/// `list`, its store's.
pub(crate) async fn list_children<T>(
    api: &MetricsApi,
    ctx: &AccessContext,
    parent: &str,
    page_size: i32,
    page_token: &str,
    list: impl AsyncFnOnce(&mut PgConnection, &Metric, &Page) -> Result<(Vec<T>, String), Error>,
) -> Result<(Vec<T>, String), Error> {
    let page = Page::parse(page_size, page_token, parent)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let metric = resolve(&mut conn, ctx, "parent", parent, false, Lock::None).await?;
    list(&mut conn, &metric, &page).await
}

/// Deletes a metric's child, `{metric}/{collection}/{id}` (an annotation or a rebase
/// point), with `delete`, its store's, recording the deletion (seen by the metric's
/// readers): `NOT_FOUND` when the metric or the child is missing, unless `allow_missing`.
pub(crate) async fn delete_child(
    api: &MetricsApi,
    ctx: &AccessContext,
    name: &str,
    collection: &'static str,
    allow_missing: bool,
    delete: impl AsyncFnOnce(&mut PgConnection, &Metric, &str) -> Result<bool, Error>,
) -> Result<(), Error> {
    let (owner, metric_id, id) = parse_child("name", name, collection)?;
    owner.check_write(ctx)?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let Some(metric) = store::get(&mut tx, &owner, &metric_id, Lock::None).await? else {
        return if allow_missing {
            Ok(())
        } else {
            Err(Error::not_found(name))
        };
    };
    let deleted = delete(&mut tx, &metric, &id).await?;
    if deleted {
        // By its canonical name, built from the stored metric's.
        let child = format!("{}/{collection}/{id}", metric.name());
        crate::feed::record_deleted(&mut tx, collection, &child, metric.readers()).await?;
    }
    tx.commit().await?;
    if deleted || allow_missing {
        Ok(())
    } else {
        Err(Error::not_found(name))
    }
}

/// Which metrics a dashboard covers.
#[derive(Debug, Clone)]
pub(crate) struct DashboardScope {
    /// Include the trust-wide metrics.
    pub(crate) trust: bool,
    /// Include site metrics of these sites (`None`: every site); `Some(empty)`: none.
    pub(crate) sites: Option<Vec<String>>,
    /// The kinds shown.
    pub(crate) kinds: Vec<&'static str>,
}

/// The fields UpdateMetric may change.
pub(crate) const UPDATABLE: &[&str] = &[
    "display_name",
    "description",
    "unit",
    "kind",
    "improvement_direction",
    "target",
    "rate_per",
    "location_breakdown",
    "dimensions",
    "imd_edition",
    "age_bands",
];

/// The settings UpdateMetric leaves `current` (read `FOR UPDATE`) with: the masked fields
/// of `given` laid over the stored ones and checked as a whole.
fn updated_settings(
    current: &Metric,
    given: &pb::Metric,
    mask: Option<&prost_types::FieldMask>,
) -> Result<Settings, Error> {
    if !given.etag.is_empty() && given.etag != etag(current.revision) {
        return Err(Error::Aborted {
            message: "metric.etag: the metric changed since it was read; read it again".into(),
        });
    }
    let paths = qi_platform::update_mask::paths(mask, UPDATABLE, |p| match p {
        "display_name" => !given.display_name.is_empty(),
        "description" => !given.description.is_empty(),
        "unit" => !given.unit.is_empty(),
        "kind" => given.kind != 0,
        "improvement_direction" => given.improvement_direction != 0,
        "target" => given.target.is_some(),
        "rate_per" => given.rate_per != 0.0,
        "location_breakdown" => given.location_breakdown != 0,
        "dimensions" => !given.dimensions.is_empty(),
        "imd_edition" => given.imd_edition != 0,
        "age_bands" => !given.age_bands.is_empty(),
        _ => false,
    })?;
    // Start from the stored metric as a message, overlay the masked fields, and check the
    // result as a whole (so a change is judged with the fields it depends on).
    let mut merged = current.to_proto();
    if current.value_type != ValueType::Rate {
        merged.rate_per = 0.0;
    }
    for p in &paths {
        match *p {
            "display_name" => merged.display_name.clone_from(&given.display_name),
            "description" => merged.description.clone_from(&given.description),
            "unit" => merged.unit.clone_from(&given.unit),
            "kind" => merged.kind = given.kind,
            "improvement_direction" => merged.improvement_direction = given.improvement_direction,
            "target" => merged.target = given.target,
            "rate_per" => merged.rate_per = given.rate_per,
            "location_breakdown" => merged.location_breakdown = given.location_breakdown,
            "dimensions" => merged.dimensions.clone_from(&given.dimensions),
            "imd_edition" => merged.imd_edition = given.imd_edition,
            _ => merged.age_bands.clone_from(&given.age_bands),
        }
    }
    let mut v = Violations::new();
    let mut settings = read_settings(&mut v, &merged);
    check_settings(
        &mut v,
        &current.owner,
        &current.scope,
        current.value_type,
        &mut settings,
    );
    v.finish()?;
    if current.has_measurements && settings.recording_rules_differ(&current.settings) {
        return Err(Error::FailedPrecondition {
            reason: "METRIC_HAS_MEASUREMENTS",
            message: format!(
                "{}: location_breakdown, dimensions, imd_edition and age_bands cannot change once measurements are recorded; define a new metric",
                current.name()
            ),
        });
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::ANNOTATIONS;

    fn request() -> pb::CreateMetricRequest {
        pb::CreateMetricRequest {
            parent: "sites/BAS".into(),
            metric_id: "dna-rate".into(),
            metric: Some(pb::Metric {
                display_name: "Did not attend rate".into(),
                unit: "%".into(),
                kind: pb::MetricKind::Qms as i32,
                improvement_direction: pb::ImprovementDirection::Decrease as i32,
                frequency: pb::MetricFrequency::Month as i32,
                value_type: pb::MetricValueType::Rate as i32,
                rate_per: 100.0,
                dimensions: vec![
                    pb::InequalityDimension::ImdQuintile as i32,
                    pb::InequalityDimension::Sex as i32,
                ],
                imd_edition: pb::ImdEdition::Imd2019 as i32,
                ..Default::default()
            }),
            request_id: String::new(),
        }
    }

    fn fields(e: Error) -> Vec<String> {
        let Error::InvalidArgument { violations } = e else {
            panic!("expected invalid argument, got {e:?}")
        };
        violations.into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn a_valid_metric_is_read_whole() {
        let m = NewMetric::try_from(request()).unwrap();
        assert_eq!(m.frequency, Frequency::Month);
        assert_eq!(m.value_type, ValueType::Rate);
        assert_eq!(m.settings.rate_per, 100.0);
        assert_eq!(
            m.settings.recording.dimensions,
            [Dimension::Imd, Dimension::Sex]
        );
        assert_eq!(m.scope, Scope::Owner);
    }

    #[test]
    fn unknown_enum_values_are_refused_by_field() {
        let mut req = request();
        if let Some(m) = req.metric.as_mut() {
            m.kind = 99;
            m.improvement_direction = 0;
            m.frequency = 0;
            m.value_type = 7;
            m.dimensions = vec![1, 1, 9];
        }
        let e = NewMetric::try_from(req).unwrap_err();
        assert_eq!(
            fields(e),
            [
                "metric.kind",
                "metric.improvement_direction",
                "metric.dimensions[1]",
                "metric.dimensions[2]",
                "metric.frequency",
                "metric.value_type"
            ]
        );
    }

    #[test]
    fn scope_fields_must_be_of_the_metric_site() {
        let mut req = request();
        if let Some(m) = req.metric.as_mut() {
            m.ward = "sites/SOU/wards/cedar".into();
        }
        assert_eq!(
            fields(NewMetric::try_from(req).unwrap_err()),
            ["metric.ward"]
        );
        let mut req = request();
        if let Some(m) = req.metric.as_mut() {
            m.project = "sites/BAS/projects/frailty".into();
        }
        let m = NewMetric::try_from(req).unwrap();
        assert_eq!(m.scope, Scope::Project("sites/BAS/projects/frailty".into()));
        let mut req = request();
        req.parent = "trust".into();
        if let Some(m) = req.metric.as_mut() {
            m.project = "sites/BAS/projects/frailty".into();
        }
        assert_eq!(
            fields(NewMetric::try_from(req).unwrap_err()),
            ["metric.project"]
        );
    }

    #[test]
    fn recording_rules_are_checked_together() {
        let mut req = request();
        if let Some(m) = req.metric.as_mut() {
            m.imd_edition = 0;
            m.location_breakdown = pb::LocationBreakdown::Site as i32;
            m.value_type = pb::MetricValueType::Count as i32;
            m.target = Some(f64::NAN);
            m.age_bands = vec!["0-64".into(), "65+".into()];
        }
        assert_eq!(
            fields(NewMetric::try_from(req).unwrap_err()),
            [
                "metric.target",
                "metric.rate_per",
                "metric.location_breakdown",
                "metric.imd_edition",
                "metric.age_bands"
            ]
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
