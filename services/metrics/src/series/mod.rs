//! A metric's series: its measurements added together per period (and, for breakdowns,
//! per stratum label) the metric's way, read by [`store`] in one grouped query.

use qi_platform::names::OwnerAccess as _;
use std::collections::BTreeMap;

use chrono::NaiveDate;
use qi_platform::convert::optional_date;
use qi_platform::names::{self, Owner};
use qi_platform::{AccessContext, Error, SiteScope, Violations};
use qi_proto::metrics as pb;

use crate::definitions::{Location, Metric};
use crate::dimensions::{self, Dimension, Labels};

pub(crate) mod store;

/// The sums of a group of measurements, from which its value and weight follow (the engine
/// library's, shared with the read model).
pub(crate) use qi_spc::series::Sums;

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
