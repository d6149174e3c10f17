//! A metric's series: its measurements added together per period (and, for breakdowns,
//! per stratum label) the metric's way, read by [`store`] in one grouped query.

use qi_platform::names::OwnerAccess as _;
use std::collections::BTreeMap;

use chrono::NaiveDate;
use qi_platform::convert::optional_date;
use qi_platform::names::{self, Owner};
use qi_platform::{AccessContext, Error, SiteScope, Violations};
use qi_proto::metrics as pb;

use crate::definitions::{Location, Metric, ValueType};
use crate::dimensions::{self, Dimension, Labels};

pub(crate) mod store;

/// The sums of a group of measurements, from which its value and weight follow.
#[derive(Debug, Clone, Copy, PartialEq, Default, sqlx::FromRow)]
pub(crate) struct Sums {
    /// How many measurements.
    pub(crate) n: i64,
    /// Σ value (COUNT and MEAN).
    pub(crate) sum_value: f64,
    /// Σ value × weight (MEAN).
    pub(crate) sum_weighted: f64,
    /// Σ weight (MEAN: the count, or 1).
    pub(crate) sum_weight: f64,
    /// Σ numerator (RATE).
    pub(crate) sum_num: f64,
    /// Σ denominator (RATE).
    pub(crate) sum_den: f64,
    /// The value itself when the group is one measurement (kept exact).
    pub(crate) single: Option<f64>,
}

impl Sums {
    /// Adds another group in.
    pub(crate) fn add(&mut self, o: &Sums) {
        self.single = match (self.n, o.n) {
            (0, _) => o.single,
            (_, 0) => self.single,
            _ => None,
        };
        self.n += o.n;
        self.sum_value += o.sum_value;
        self.sum_weighted += o.sum_weighted;
        self.sum_weight += o.sum_weight;
        self.sum_num += o.sum_num;
        self.sum_den += o.sum_den;
    }

    /// The group's value: a COUNT adds up, a MEAN is weighted by its counts, a RATE divides
    /// the summed numerators by the summed denominators, times `rate_per`. `None` for an
    /// empty group.
    pub(crate) fn value(&self, value_type: ValueType, rate_per: f64) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        match value_type {
            ValueType::Count => Some(self.sum_value),
            ValueType::Mean => match self.single {
                Some(v) if self.n == 1 => Some(v),
                _ => (self.sum_weight > 0.0).then(|| self.sum_weighted / self.sum_weight),
            },
            ValueType::Rate => (self.sum_den > 0.0).then(|| self.sum_num / self.sum_den * rate_per),
        }
    }

    /// The group's weight: the summed denominators of a RATE, the summed counts of a MEAN,
    /// the summed values of a COUNT.
    pub(crate) fn weight(&self, value_type: ValueType) -> f64 {
        match value_type {
            ValueType::Count => self.sum_value,
            ValueType::Mean => self.sum_weight,
            ValueType::Rate => self.sum_den,
        }
    }
}

/// Which measurements make up a series.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    /// Site code, or empty for every site.
    pub(crate) site: String,
    /// Ward id (with `site`), or empty for every ward.
    pub(crate) ward: String,
    /// Labels to keep, empty for "add together".
    pub(crate) labels: Labels,
    /// Periods starting on or after.
    pub(crate) from: Option<NaiveDate>,
    /// Periods starting before.
    pub(crate) before: Option<NaiveDate>,
    /// The caller's sites (`None`: trust-wide). A trust metric recorded by site or ward adds
    /// up only these sites' measurements for a one-site caller: a trust total beside the
    /// caller's own part would give away the rest by subtraction (see the README).
    pub(crate) sites: Option<Vec<String>>,
}

impl Filter {
    /// Every measurement the caller may see.
    pub(crate) fn scoped(sites: &SiteScope) -> Filter {
        Filter {
            sites: sites.sql_filter(),
            ..Filter::default()
        }
    }

    /// Reads a `SeriesFilter` (fields `{field}.…`) for `metric`, checking the caller holds any
    /// site it names.
    pub(crate) fn parse(
        ctx: &AccessContext,
        field: &str,
        metric: &Metric,
        f: Option<pb::SeriesFilter>,
    ) -> Result<Filter, Error> {
        let pb::SeriesFilter {
            site,
            ward,
            stratum,
            start_date,
            end_date,
        } = f.unwrap_or_default();
        let mut v = Violations::new();
        let mut out = Filter {
            labels: dimensions::labels_of(stratum),
            ..Filter::scoped(&ctx.sites)
        };
        v.check(
            metric
                .settings
                .recording
                .check_filter(&format!("{field}.stratum"), &out.labels),
        );
        out.from = v.check(optional_date(
            &format!("{field}.start_date"),
            start_date.as_ref(),
        ));
        out.before = v.check(optional_date(
            &format!("{field}.end_date"),
            end_date.as_ref(),
        ));
        if let (Some(a), Some(b)) = (out.from, out.before)
            && b <= a
        {
            v.add(format!("{field}.end_date"), "must be after start_date");
        }
        let location = metric.settings.location;
        if !site.is_empty() {
            let at = format!("{field}.site");
            match names::parse_parent(&at, &site) {
                // Access before validity: naming a site the caller does not hold is refused
                // whatever the metric.
                Ok(Owner::Site(code)) => match Owner::Site(code.clone()).check_read(ctx) {
                    Err(denied) => v.check(Err::<(), _>(denied)),
                    Ok(()) if location == Location::None => {
                        v.add(at, "the metric is not recorded by site or ward");
                    }
                    Ok(()) => out.site = code.to_string(),
                },
                Ok(Owner::Trust) => v.add(at, "use `sites/{site}`"),
                Err(e) => {
                    v.check(Err::<(), _>(e));
                }
            }
        }
        if !ward.is_empty() {
            let at = format!("{field}.ward");
            match names::parse_name(&at, &ward, "wards") {
                Ok((Owner::Site(code), id)) => match Owner::Site(code.clone()).check_read(ctx) {
                    Err(denied) => v.check(Err::<(), _>(denied)),
                    Ok(()) if location != Location::Ward => {
                        v.add(at, "the metric is not recorded by ward");
                    }
                    Ok(()) if !out.site.is_empty() && out.site != code.as_str() => {
                        v.add(at, "is not a ward of the site filtered on");
                    }
                    Ok(()) => {
                        out.site = code.to_string();
                        out.ward = id;
                    }
                },
                Ok((Owner::Trust, _)) => v.add(at, "use `sites/{site}/wards/{ward}`"),
                Err(e) => {
                    v.check(Err::<(), _>(e));
                }
            }
        }
        v.finish()?;
        Ok(out)
    }
}
/// Per metric, per label (empty when not grouped by a dimension), per period: the sums.
pub(crate) type Grouped = BTreeMap<i64, BTreeMap<String, BTreeMap<NaiveDate, Sums>>>;

/// Whether each (label, period) of `m` kept by `filter` is at most one measurement: every
/// dimension it is recorded by is the one grouped by or fixed by the filter, and so is its
/// location. Such series are read row by row, with no aggregation to pay for.
fn one_row_per_group(m: &Metric, by: Option<Dimension>, filter: &Filter) -> bool {
    let dimensions = m
        .settings
        .recording
        .dimensions
        .iter()
        .all(|d| Some(*d) == by || !filter.labels[d.index()].is_empty());
    let location = match m.settings.location {
        Location::None => true,
        Location::Site => !filter.site.is_empty(),
        Location::Ward => !filter.ward.is_empty(),
    };
    dimensions && location
}

/// One metric's series: per period, its value (periods whose value is undefined left out).
pub(crate) fn values(
    metric: &Metric,
    periods: Option<&BTreeMap<NaiveDate, Sums>>,
) -> Vec<(NaiveDate, f64)> {
    periods
        .into_iter()
        .flatten()
        .filter_map(|(p, s)| {
            s.value(metric.value_type, metric.settings.rate_per)
                .map(|v| (*p, v))
        })
        .collect()
}

/// Adds several labels' period sums together.
pub(crate) fn merge<'a>(
    parts: impl IntoIterator<Item = &'a BTreeMap<NaiveDate, Sums>>,
) -> BTreeMap<NaiveDate, Sums> {
    let mut out: BTreeMap<NaiveDate, Sums> = BTreeMap::new();
    for part in parts {
        for (p, s) in part {
            out.entry(*p).or_default().add(s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(n: i64, v: f64, w: f64, num: f64, den: f64) -> Sums {
        Sums {
            n,
            sum_value: v,
            sum_weighted: v * w,
            sum_weight: w,
            sum_num: num,
            sum_den: den,
            single: (n == 1).then_some(v),
        }
    }

    #[test]
    fn values_combine_the_metric_way() {
        let mut a = sums(1, 10.0, 4.0, 3.0, 40.0);
        let b = sums(1, 20.0, 1.0, 1.0, 10.0);
        assert_eq!(a.value(ValueType::Mean, 1.0), Some(10.0));
        a.add(&b);
        assert_eq!(a.n, 2);
        assert_eq!(a.single, None);
        assert_eq!(a.value(ValueType::Count, 1.0), Some(30.0));
        assert_eq!(a.value(ValueType::Mean, 1.0), Some(12.0));
        assert_eq!(a.value(ValueType::Rate, 100.0), Some(8.0));
        assert_eq!(a.weight(ValueType::Rate), 50.0);
        assert_eq!(Sums::default().value(ValueType::Count, 1.0), None);
        let mut empty = Sums::default();
        empty.add(&b);
        assert_eq!(empty.single, Some(20.0));
    }
}
