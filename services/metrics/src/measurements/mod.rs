//! Measurements: batch ingest, all or nothing, idempotent by key (metric, period, site,
//! ward, stratum labels), and the paged list.
//!
//! A batch is validated whole in memory first (every bad field named, nothing written),
//! then written set-based by [`store`], never a statement per row.

use std::collections::HashMap;
use std::hash::BuildHasher as _;

use chrono::NaiveDate;
use qi_platform::changes::{Kind, Many};
use qi_platform::convert::required_date;
use qi_platform::extract::{self, Order};
use qi_platform::names::{self, ListParentScope as _, Owner};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, SiteCode, Violations, idempotency};
use qi_proto::metrics as pb;

use crate::MetricsApi;
use crate::definitions::store::Lock;
use crate::definitions::{self, Location, Metric, Scope, ValueType};
use crate::dimensions;

pub(crate) mod store;

/// The most bad fields one refusal names (the status travels in a header).
const MAX_VIOLATIONS: usize = 20;

/// The collection id in measurement names.
const COLLECTION: &str = "measurements";

/// BatchCreateMeasurements: the whole batch validated against its metric (read `FOR SHARE`),
/// then written; idempotent by `request_id` through the batch's digest.
pub(crate) async fn batch_create(
    api: &MetricsApi,
    ctx: AccessContext,
    req: pb::BatchCreateMeasurementsRequest,
) -> Result<pb::BatchCreateMeasurementsResponse, Error> {
    idempotency::validate_request_id(&req.request_id)?;
    let pb::BatchCreateMeasurementsRequest {
        parent,
        measurements,
        request_id,
    } = req;
    let (owner, id) =
        names::parse_accessible(&ctx, "parent", &parent, definitions::COLLECTION, true)?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    // FOR SHARE: the recording rules cannot change under the batch.
    let metric = definitions::store::get(&mut tx, &owner, &id, Lock::Share)
        .await?
        .ok_or_else(|| Error::not_found(&parent))?;
    let latest = qi_platform::calendar::today();
    let columns = validate(&metric, &api.sites, latest, measurements)?;
    // Without a request id nothing is claimed, so the batch is not digested.
    let key = if request_id.is_empty() {
        BatchDigest::default()
    } else {
        let (first, second, length) = digest(&columns);
        BatchDigest {
            parent: parent.clone(),
            first,
            second,
            length,
        }
    };
    idempotency::once(tx, &ctx, &request_id, &key, async |tx| {
        let written = store::write(tx, &metric, columns).await?;
        record(tx, &metric, &written).await?;
        let outcome = written.outcome;
        let count = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
        Ok(pb::BatchCreateMeasurementsResponse {
            created_count: count(outcome.created),
            updated_count: count(outcome.updated),
            unchanged_count: count(outcome.unchanged),
        })
    })
    .await
}

/// Records what a batch of `metric` wrote, in its transaction: each measurement it created
/// or changed (none it left as it was), seen by the callers ListMeasurements shows it to;
/// and the metric, when these are its first measurements (its `has_measurements`).
///
/// The measurements are listed, not copied ([`Many`]): the feed renders each at delivery
/// (`crate::feed`), so a batch of 10,000 values writes 10 small outbox rows, not 10,000
/// copies. A created measurement has no earlier change to be ordered after, so its list
/// needs no look-up of each name's last change; a changed one's does.
async fn record(
    conn: &mut sqlx::PgConnection,
    metric: &Metric,
    written: &store::Written,
) -> Result<(), Error> {
    let (mut created, mut updated) = (Many::new(), Many::new());
    for c in &written.changed {
        let (list, kind) = if c.created {
            (&mut created, Kind::Created)
        } else {
            (&mut updated, Kind::Updated)
        };
        list.push(c.name.clone(), kind, readers(metric, &c.site));
    }
    created.record_under_lock(&mut *conn, COLLECTION).await?;
    updated.record(&mut *conn, COLLECTION).await?;
    if !metric.has_measurements && written.outcome.created > 0 {
        let now = Metric {
            has_measurements: true,
            ..metric.clone()
        }
        .to_proto();
        let (collection, sites) = (definitions::COLLECTION, metric.readers());
        crate::feed::record(conn, collection, &now.name, Kind::Updated, sites, &now).await?;
    }
    Ok(())
}

/// The site whose callers read a measurement of `metric` recorded at `site` (a site code,
/// empty for none), as ListMeasurements shows it (`None`: every caller who reads the
/// metric): a measurement at a site, that site's alone, even of a trust-wide metric; one at
/// no site, the metric's readers (a site's metric holds that site's data only).
fn readers(metric: &Metric, site: &str) -> Option<String> {
    if site.is_empty() {
        metric.owner.site_column().map(str::to_owned)
    } else {
        Some(site.to_owned())
    }
}

/// ListMeasurements: one metric's, oldest period first; or, under a `…/metrics/-` parent,
/// every such metric's, oldest change first. A one-site caller gets only the measurements at
/// its sites and at none.
pub(crate) async fn list(
    api: &MetricsApi,
    ctx: AccessContext,
    req: pb::ListMeasurementsRequest,
) -> Result<pb::ListMeasurementsResponse, Error> {
    let pb::ListMeasurementsRequest {
        parent,
        page_size,
        page_token,
        start_date,
        end_date,
        filter,
        order_by,
    } = req;
    let mut v = Violations::new();
    let every = v.check(names::wildcard_parent(
        "parent",
        &parent,
        definitions::COLLECTION,
    ));
    let from = v.check(qi_platform::convert::optional_date(
        "start_date",
        start_date.as_ref(),
    ));
    let before = v.check(qi_platform::convert::optional_date(
        "end_date",
        end_date.as_ref(),
    ));
    let terms = v.check(extract::read_terms(&filter, None, false));
    let order = v.check(extract::order(&order_by));
    v.finish()?;
    let params = format!("{parent}|{from:?}|{before:?}");
    let params = extract::token_params(params, &filter, &order_by);
    let page = Page::parse(page_size, &page_token, &params)?;
    let wanted = store::Wanted {
        periods: qi_filter::Range { from, before },
        updated: terms.updated,
        // Every metric's measurements together have only change order.
        order: if every.is_some() {
            Order::UpdateTime
        } else {
            order
        },
    };
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let (measurements, next_page_token) = match every {
        Some(owner) => {
            let metrics = store::Metrics::Every(owner.scope(&ctx)?);
            store::list_every(&mut conn, metrics, &ctx.sites, &wanted, &page).await?
        }
        None => {
            let metric =
                definitions::resolve(&mut conn, &ctx, "parent", &parent, false, Lock::None).await?;
            store::list(&mut conn, &metric, &ctx.sites, &wanted, &page).await?
        }
    };
    Ok(pb::ListMeasurementsResponse {
        measurements,
        next_page_token,
    })
}

/// A validated batch, column by column (as `COPY` and `UNNEST` take it).
#[derive(Debug, Default)]
pub(crate) struct Columns {
    pub(crate) period: Vec<NaiveDate>,
    pub(crate) site: Vec<String>,
    pub(crate) ward: Vec<String>,
    pub(crate) labels: [Vec<String>; 4],
    pub(crate) value: Vec<Option<f64>>,
    pub(crate) count: Vec<Option<i64>>,
    pub(crate) numerator: Vec<Option<f64>>,
    pub(crate) denominator: Vec<Option<f64>>,
}

impl Columns {
    fn with_capacity(n: usize) -> Self {
        Columns {
            period: Vec::with_capacity(n),
            site: Vec::with_capacity(n),
            ward: Vec::with_capacity(n),
            labels: std::array::from_fn(|_| Vec::with_capacity(n)),
            value: Vec::with_capacity(n),
            count: Vec::with_capacity(n),
            numerator: Vec::with_capacity(n),
            denominator: Vec::with_capacity(n),
        }
    }

    /// How many measurements the batch holds.
    pub(crate) fn len(&self) -> usize {
        self.period.len()
    }

    /// Splits the batch by period: (the rows `keep` says yes to, the others).
    fn partition(self, keep: impl Fn(&NaiveDate) -> bool) -> (Columns, Columns) {
        let mut yes = Columns::default();
        let mut no = Columns::default();
        let Columns {
            period,
            site,
            ward,
            labels,
            value,
            count,
            numerator,
            denominator,
        } = self;
        let [l0, l1, l2, l3] = labels;
        let rows = period
            .into_iter()
            .zip(site)
            .zip(ward)
            .zip(l0.into_iter().zip(l1).zip(l2).zip(l3))
            .zip(value.into_iter().zip(count).zip(numerator).zip(denominator));
        for ((((p, s), w), (((a, b), c), d)), (((v, n), num), den)) in rows {
            let to = if keep(&p) { &mut yes } else { &mut no };
            to.period.push(p);
            to.site.push(s);
            to.ward.push(w);
            for (column, label) in to.labels.iter_mut().zip([a, b, c, d]) {
                column.push(label);
            }
            to.value.push(v);
            to.count.push(n);
            to.numerator.push(num);
            to.denominator.push(den);
        }
        (yes, no)
    }
}

/// Collects the bad fields of a batch, keeping the first [`MAX_VIOLATIONS`].
#[derive(Debug, Default)]
struct Problems {
    kept: Vec<(String, String)>,
    more: usize,
}

impl Problems {
    fn add(&mut self, field: String, description: String) {
        if self.kept.len() < MAX_VIOLATIONS {
            self.kept.push((field, description));
        } else {
            self.more += 1;
        }
    }

    fn finish(self) -> Result<(), Error> {
        if self.kept.is_empty() {
            return Ok(());
        }
        let mut v = qi_platform::Violations::new();
        for (f, d) in self.kept {
            v.add(f, d);
        }
        if self.more > 0 {
            v.add(
                "measurements",
                format!("{} more problems not listed; nothing was stored", self.more),
            );
        }
        v.finish()
    }
}

/// FNV-1a: a fast hasher for the short keys of a batch (the standard SipHash is built to
/// resist hostile keys, which a batch's own duplicates check does not need).
#[derive(Debug, Clone, Copy)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

type BuildFnv = std::hash::BuildHasherDefault<Fnv>;

/// What the idempotency table keeps of a batch: a digest of the validated measurements
/// rather than the whole request (up to 10,000 of them), enough to tell a replay from a
/// different request.
#[derive(Clone, PartialEq, prost::Message)]
struct BatchDigest {
    #[prost(string, tag = "1")]
    parent: String,
    #[prost(fixed64, tag = "2")]
    first: u64,
    #[prost(fixed64, tag = "3")]
    second: u64,
    #[prost(uint64, tag = "4")]
    length: u64,
}

/// A digest of a validated batch (two independent 64-bit hashes and the length), which the
/// idempotency record keeps instead of the whole request: enough to tell a replay from a
/// different request under the same request id.
fn digest(c: &Columns) -> (u64, u64, u64) {
    let mut a = Fnv::default();
    let mut b = Fnv(0x6c62_272e_07bb_0142);
    let mut word = |w: u64| {
        for (h, mul) in [
            (&mut a.0, 0x0100_0000_01b3_u64),
            (&mut b.0, 0x0000_0100_0000_0193),
        ] {
            *h = (*h ^ w).wrapping_mul(mul).rotate_left(29);
        }
    };
    let text = |word: &mut dyn FnMut(u64), s: &str| {
        word(s.len() as u64);
        for chunk in s.as_bytes().chunks(8) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            word(u64::from_le_bytes(buf));
        }
    };
    let float = |x: Option<f64>| x.map_or(u64::MAX - 1, f64::to_bits);
    for i in 0..c.len() {
        word(chrono::Datelike::num_days_from_ce(&c.period[i]) as u64);
        text(&mut word, &c.site[i]);
        text(&mut word, &c.ward[i]);
        for column in &c.labels {
            text(&mut word, &column[i]);
        }
        word(float(c.value[i]));
        word(c.count[i].map_or(u64::MAX - 1, |n| n as u64));
        word(float(c.numerator[i]));
        word(float(c.denominator[i]));
    }
    (a.0, b.0, c.len() as u64)
}

/// A finite number, or why not.
fn finite(x: f64) -> Result<f64, String> {
    if x.is_finite() {
        Ok(x)
    } else {
        Err(format!("is not a finite number ({x})"))
    }
}

/// Checks a whole batch against its metric: every measurement, all or nothing. `today`
/// bounds the periods (none may start in the future).
pub(crate) fn validate(
    metric: &Metric,
    sites: &[SiteCode],
    today: NaiveDate,
    measurements: Vec<pb::Measurement>,
) -> Result<Columns, Error> {
    if measurements.is_empty() {
        return Err(Error::invalid(
            "measurements",
            "is required: send at least one measurement",
        ));
    }
    // The most a batch holds is the contract's (`max_items`), counted before decoding.
    let mut out = Columns::with_capacity(measurements.len());
    let mut problems = Problems::default();
    let mut seen: HashMap<u64, Vec<(usize, usize)>, BuildFnv> =
        HashMap::with_capacity_and_hasher(measurements.len(), BuildFnv::default());
    let recording = &metric.settings.recording;
    for (i, m) in measurements.into_iter().enumerate() {
        let at = |f: &str| format!("measurements[{i}].{f}");
        let pb::Measurement {
            name: _,
            period,
            site,
            ward,
            stratum,
            value,
            numerator,
            denominator,
            count,
            create_time: _,
            update_time: _,
        } = m;
        let before = problems.kept.len() + problems.more;

        let period = match required_date(&at("period"), period.as_ref()) {
            Ok(p) => match metric.frequency.check_start(p) {
                Ok(()) if p > today => {
                    problems.add(at("period"), format!("{p} is in the future"));
                    None
                }
                Ok(()) => Some(p),
                Err(e) => {
                    problems.add(at("period"), e);
                    None
                }
            },
            Err(e) => {
                for (f, d) in violations(e) {
                    problems.add(f, d);
                }
                None
            }
        };

        let (site_key, ward_key) = match location(metric, sites, &site, &ward) {
            Ok(k) => k,
            Err((field, d)) => {
                problems.add(at(field), d);
                (String::new(), String::new())
            }
        };

        let labels = dimensions::labels_of(stratum);
        recording.check_measurement(
            || format!("measurements[{i}].stratum"),
            &labels,
            |f, d| problems.add(f, d),
        );

        let mut stored = (None, None, None, None);
        match metric.value_type {
            ValueType::Count | ValueType::Mean => {
                match value.map(finite) {
                    None => problems.add(at("value"), "is required".into()),
                    Some(Err(e)) => problems.add(at("value"), e),
                    Some(Ok(x)) if x < 0.0 && metric.value_type == ValueType::Count => {
                        problems.add(at("value"), "is a count: it cannot be below 0".into());
                    }
                    Some(Ok(x)) => stored.0 = Some(x),
                }
                for (f, given) in [("numerator", numerator), ("denominator", denominator)] {
                    if given.is_some() {
                        problems.add(at(f), "applies to RATE metrics only: send `value`".into());
                    }
                }
                if metric.value_type == ValueType::Mean {
                    if count < 0 {
                        problems.add(at("count"), "cannot be below 0".into());
                    }
                    stored.1 = (count > 0).then_some(count);
                } else if count != 0 {
                    problems.add(at("count"), "applies to MEAN metrics only".into());
                }
            }
            ValueType::Rate => {
                if value.is_some() {
                    problems.add(
                        at("value"),
                        "the metric is a RATE: send `numerator` and `denominator`".into(),
                    );
                }
                match numerator.map(finite) {
                    None => problems.add(at("numerator"), "is required".into()),
                    Some(Err(e)) => problems.add(at("numerator"), e),
                    Some(Ok(x)) if x < 0.0 => {
                        problems.add(at("numerator"), "cannot be below 0".into());
                    }
                    Some(Ok(x)) => stored.2 = Some(x),
                }
                match denominator.map(finite) {
                    None => problems.add(at("denominator"), "is required".into()),
                    Some(Err(e)) => problems.add(at("denominator"), e),
                    Some(Ok(x)) if x <= 0.0 => problems.add(
                        at("denominator"),
                        format!("must be above 0 (got {x}): a rate of nothing is undefined"),
                    ),
                    Some(Ok(x)) => stored.3 = Some(x),
                }
                if count != 0 {
                    problems.add(at("count"), "applies to MEAN metrics only".into());
                }
            }
        }

        if problems.kept.len() + problems.more > before {
            continue;
        }
        let Some(period) = period else { continue };
        // Duplicates within the batch, found without building a key string per row: a
        // hash of the key, confirmed field by field against the rows kept so far.
        let hash = seen
            .hasher()
            .hash_one((period, &site_key, &ward_key, &labels));
        let same = |row: usize| {
            out.period[row] == period
                && out.site[row] == site_key
                && out.ward[row] == ward_key
                && (0..4).all(|d| out.labels[d][row] == labels[d])
        };
        let candidates = seen.entry(hash).or_default();
        if let Some(&(_, first)) = candidates.iter().find(|(row, _)| same(*row)) {
            problems.add(
                format!("measurements[{i}]"),
                format!(
                    "has the same period, site, ward and stratum as measurements[{first}]: send each once"
                ),
            );
            continue;
        }
        candidates.push((out.len(), i));
        out.period.push(period);
        out.site.push(site_key);
        out.ward.push(ward_key);
        for (column, label) in out.labels.iter_mut().zip(labels) {
            column.push(label);
        }
        out.value.push(stored.0);
        out.count.push(stored.1);
        out.numerator.push(stored.2);
        out.denominator.push(stored.3);
    }
    problems.finish()?;
    Ok(out)
}

fn violations(e: Error) -> Vec<(String, String)> {
    if let Error::InvalidArgument { violations } = e {
        violations
            .into_iter()
            .map(|v| (v.field, v.description))
            .collect()
    } else {
        vec![("measurements".into(), e.to_string())]
    }
}

/// Reads a measurement's site and ward into the stored key `(site code, ward id)`, by the
/// metric's location breakdown. Errors name the field (`site` or `ward`).
fn location(
    metric: &Metric,
    sites: &[SiteCode],
    site: &str,
    ward: &str,
) -> Result<(String, String), (&'static str, String)> {
    let site_code = if site.is_empty() {
        None
    } else {
        let code = site
            .strip_prefix("sites/")
            .and_then(|c| SiteCode::parse(c).ok())
            .ok_or_else(|| {
                (
                    "site",
                    format!(
                        "`{}` is not a site: use `sites/{{site}}`",
                        names::clip(site)
                    ),
                )
            })?;
        if !sites.contains(&code) {
            return Err(("site", format!("{code} is not one of the trust's sites")));
        }
        Some(code)
    };
    let ward_ref = if ward.is_empty() {
        None
    } else {
        match names::parse_name("ward", ward, "wards") {
            Ok((Owner::Site(code), id)) => Some((code, id)),
            Ok((Owner::Trust, _)) | Err(_) => {
                return Err((
                    "ward",
                    format!(
                        "`{}` is not a ward: use `sites/{{site}}/wards/{{ward}}`",
                        names::clip(ward)
                    ),
                ));
            }
        }
    };
    let own_site = match &metric.owner {
        Owner::Site(s) => Some(s),
        Owner::Trust => None,
    };
    match metric.settings.location {
        Location::None => {
            if let Some(code) = &site_code
                && Some(code) != own_site
            {
                return Err((
                    "site",
                    match own_site {
                        Some(own) => format!("must be the metric's site, sites/{own}, or empty"),
                        None => "the metric is not recorded by site: leave it empty".into(),
                    },
                ));
            }
            if let Some((code, id)) = &ward_ref {
                let own_ward = match &metric.scope {
                    Scope::Ward(w) => Some(w),
                    Scope::Owner | Scope::Project(_) => None,
                };
                if Some(code) != own_site || Some(id) != own_ward {
                    return Err((
                        "ward",
                        match metric.ward_name() {
                            Some(own) => format!("must be the metric's ward, {own}, or empty"),
                            None => "the metric is not recorded by ward: leave it empty".into(),
                        },
                    ));
                }
            }
            Ok((String::new(), String::new()))
        }
        Location::Site => {
            if ward_ref.is_some() {
                return Err((
                    "ward",
                    "the metric is recorded by site, not ward: leave it empty".into(),
                ));
            }
            let code = site_code.ok_or((
                "site",
                "is required: the metric is recorded by site".to_owned(),
            ))?;
            Ok((code.to_string(), String::new()))
        }
        Location::Ward => {
            let (code, id) = ward_ref.ok_or((
                "ward",
                "is required: the metric is recorded by ward".to_owned(),
            ))?;
            if let Some(own) = own_site
                && own != &code
            {
                return Err((
                    "ward",
                    format!("must be a ward of the metric's site, {own}"),
                ));
            }
            if !sites.contains(&code) {
                return Err(("ward", format!("{code} is not one of the trust's sites")));
            }
            if let Some(s) = &site_code
                && s != &code
            {
                return Err(("site", format!("must be the ward's site, sites/{code}")));
            }
            Ok((code.to_string(), id))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definitions::{Kind, Settings};
    use crate::dimensions::{Dimension, Recording};
    use crate::periods::Frequency;
    use chrono::Utc;
    use qi_proto::google::r#type::Date;

    fn metric(value_type: ValueType, location: Location, owner: &str) -> Metric {
        Metric {
            uid: 1,
            owner: names::parse_parent("p", owner).unwrap(),
            id: "m".into(),
            frequency: Frequency::Week,
            value_type,
            scope: Scope::Owner,
            settings: Settings {
                display_name: "M".into(),
                kind: Kind::Qms,
                rate_per: 1.0,
                location,
                recording: Recording {
                    dimensions: vec![Dimension::Imd],
                    age_bands: Vec::new(),
                },
                ..Default::default()
            },
            create_time: Utc::now(),
            update_time: Utc::now(),
            revision: 1,
            has_measurements: false,
        }
    }

    fn sites() -> Vec<SiteCode> {
        ["BAS", "BRM", "SOU"]
            .map(|s| SiteCode::parse(s).unwrap())
            .to_vec()
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()
    }

    fn m(day: u32, imd: &str) -> pb::Measurement {
        pb::Measurement {
            period: Some(Date {
                year: 2026,
                month: 11,
                day: day as i32,
            }),
            stratum: Some(pb::Stratum {
                imd_quintile: imd.into(),
                ..Default::default()
            }),
            numerator: Some(3.0),
            denominator: Some(40.0),
            ..Default::default()
        }
    }

    fn fields(e: Error) -> Vec<String> {
        let Error::InvalidArgument { violations } = e else {
            panic!("expected invalid argument, got {e:?}")
        };
        violations.into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn a_good_batch_becomes_columns() {
        let metric = metric(ValueType::Rate, Location::None, "sites/BAS");
        let c = validate(
            &metric,
            &sites(),
            today(),
            vec![m(2, "1"), m(2, "U"), m(9, "1")],
        )
        .unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c.labels[0], ["1", "U", "1"]);
        assert!(c.site.iter().all(String::is_empty));
        assert_eq!(c.denominator, [Some(40.0); 3]);
    }

    #[test]
    fn every_bad_field_is_named_and_nothing_passes() {
        let metric = metric(ValueType::Rate, Location::None, "sites/BAS");
        let mut nan = m(2, "1");
        nan.numerator = Some(f64::NAN);
        let mut zero = m(2, "2");
        zero.denominator = Some(0.0);
        let mut tuesday = m(3, "1");
        tuesday.stratum = None;
        let mut other_site = m(9, "3");
        other_site.site = "sites/SOU".into();
        let mut valued = m(9, "4");
        valued.value = Some(1.0);
        let e = validate(
            &metric,
            &sites(),
            today(),
            vec![
                m(2, "5"),
                nan,
                zero,
                tuesday,
                other_site,
                valued,
                m(2, "5"),
                m(30, "1"),
            ],
        )
        .unwrap_err();
        assert_eq!(
            fields(e),
            [
                "measurements[1].numerator",
                "measurements[2].denominator",
                "measurements[3].period",
                "measurements[3].stratum.imd_quintile",
                "measurements[4].site",
                "measurements[5].value",
                "measurements[6]",
                "measurements[7].period",
            ]
        );
    }

    #[test]
    fn counts_and_means_take_values() {
        let mut metric = metric(ValueType::Count, Location::None, "trust");
        let mut bad = m(2, "1");
        bad.value = Some(-1.0);
        let mut inf = m(2, "2");
        inf.numerator = None;
        inf.denominator = None;
        inf.value = Some(f64::INFINITY);
        let e = validate(&metric, &sites(), today(), vec![bad, inf]).unwrap_err();
        assert_eq!(
            fields(e),
            [
                "measurements[0].value",
                "measurements[0].numerator",
                "measurements[0].denominator",
                "measurements[1].value"
            ]
        );
        metric.value_type = ValueType::Mean;
        let mut mean = m(2, "1");
        mean.numerator = None;
        mean.denominator = None;
        mean.value = Some(-2.5);
        mean.count = 12;
        let c = validate(&metric, &sites(), today(), vec![mean]).unwrap();
        assert_eq!((c.value[0], c.count[0]), (Some(-2.5), Some(12)));
    }

    #[test]
    fn locations_follow_the_metric_breakdown() {
        let by_site = metric(ValueType::Rate, Location::Site, "trust");
        let mut a = m(2, "1");
        a.site = "sites/BRM".into();
        let c = validate(&by_site, &sites(), today(), vec![a.clone()]).unwrap();
        assert_eq!(c.site, ["BRM"]);
        let e = validate(&by_site, &sites(), today(), vec![m(2, "1")]).unwrap_err();
        assert_eq!(fields(e), ["measurements[0].site"]);
        let by_ward = metric(ValueType::Rate, Location::Ward, "sites/BAS");
        let mut w = m(2, "1");
        w.ward = "sites/BAS/wards/cedar".into();
        let c = validate(&by_ward, &sites(), today(), vec![w.clone()]).unwrap();
        assert_eq!((c.site[0].as_str(), c.ward[0].as_str()), ("BAS", "cedar"));
        w.ward = "sites/SOU/wards/cedar".into();
        let e = validate(&by_ward, &sites(), today(), vec![w]).unwrap_err();
        assert_eq!(fields(e), ["measurements[0].ward"]);
    }

    #[test]
    fn empty_batches_are_refused_and_refusals_capped() {
        let metric = metric(ValueType::Rate, Location::None, "sites/BAS");
        assert!(validate(&metric, &sites(), today(), Vec::new()).is_err());
        let mut many: Vec<_> = (0..100).map(|_| m(2, "1")).collect();
        for x in &mut many {
            x.denominator = Some(0.0);
        }
        let f = fields(validate(&metric, &sites(), today(), many).unwrap_err());
        assert_eq!(f.len(), MAX_VIOLATIONS + 1);
        assert_eq!(f.last().map(String::as_str), Some("measurements"));
    }
}
