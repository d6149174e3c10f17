//! What a nightly extract asks of a List (issue 37): `update_time` bounds in its `filter`,
//! and `order_by = "update_time"`, so an extract reads only what changed since the last,
//! oldest change first, and can resume from the last `update_time` it wrote. One reading for
//! every collection; each List takes its own other terms (`state`, `site`) from what is left.
//!
//! `update_time` is the time of the transaction that last wrote a row, so a row written by a
//! transaction that began before an extract and committed after it carries an older time
//! than the extract saw: a resuming extract starts a little before its last high-water mark
//! ([`RESUME_OVERLAP`]) and takes some rows twice, which a consumer keyed by name absorbs.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use qi_filter::{Op, Range, Term};

use crate::error::Error;
use crate::paging::Page;

/// How far before the newest `update_time` it wrote an extract should resume: the longest
/// a write may take to commit (the bulk deadline's default, 30 minutes).
pub const RESUME_OVERLAP: Duration = Duration::minutes(30);

/// A List's ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// The List's own documented order.
    #[default]
    Default,
    /// Oldest change first (`order_by = "update_time"`), ties in the List's own order.
    UpdateTime,
}

impl Order {
    /// A row's keyset in a page token: the List's own `key`, and in change order its
    /// `update_time` too.
    pub fn key(self, key: String, update_time: DateTime<Utc>) -> Vec<String> {
        match self {
            Order::Default => vec![key],
            Order::UpdateTime => vec![
                key,
                update_time.to_rfc3339_opts(SecondsFormat::Micros, true),
            ],
        }
    }

    /// The `update_time` the previous page ended at, in change order.
    pub fn after_time(self, page: &Page) -> Result<Option<DateTime<Utc>>, Error> {
        match self {
            Order::Default => Ok(None),
            Order::UpdateTime => page.parsed_key(1),
        }
    }
}

/// Reads a filter's `site = CODE` term (`at` names it) into `site`; given once, `=` only.
pub fn take_site(site: &mut Option<String>, at: &str, op: Op, value: &str) -> Result<(), Error> {
    match op {
        Op::Eq if site.is_some() => Err(Error::invalid(
            "filter",
            format!("{at}: site = is given twice"),
        )),
        Op::Eq => {
            let code = qi_names::SiteCode::parse(value)
                .map_err(|e| Error::invalid("filter", format!("{at}: {e}")))?;
            *site = Some(code.to_string());
            Ok(())
        }
        Op::Ne | Op::Lt | Op::Gt | Op::Le | Op::Ge => {
            Err(Error::invalid("filter", format!("{at}: site takes =")))
        }
    }
}

/// The sites a List reads once its filter's `site = …` term narrows `scope` (`None`: every
/// site): that site if the scope holds it, else none (another site's rows are not there for
/// this caller, so a list of them is empty, not refused).
pub fn only_site(scope: Option<Vec<String>>, site: &str) -> Vec<String> {
    match scope {
        None => vec![site.to_owned()],
        Some(sites) => sites.into_iter().filter(|s| s == site).collect(),
    }
}

/// Reads `order_by`: empty, or `update_time` (optionally `asc`). Anything else is
/// `INVALID_ARGUMENT` naming the field.
pub fn order(order_by: &str) -> Result<Order, Error> {
    let words: Vec<&str> = order_by.split_whitespace().collect();
    match words.as_slice() {
        [] => Ok(Order::Default),
        ["update_time"] | ["update_time", "asc"] => Ok(Order::UpdateTime),
        _ => Err(Error::invalid(
            "order_by",
            format!("{order_by:?} is not supported: only \"update_time\" (oldest change first)"),
        )),
    }
}

/// Reads a List's `filter` into its terms, the `update_time` ones taken out as a range
/// ([`take_update_time`]); the rest are the List's to read.
pub fn read_filter(filter: &str) -> Result<(Vec<Term>, Range<DateTime<Utc>>), Error> {
    let mut terms =
        qi_filter::parse(filter).map_err(|e| Error::invalid("filter", e.to_string()))?;
    let updated = take_update_time(&mut terms)?;
    Ok((terms, updated))
}

/// The `update_time` terms of `terms`, taken out, as a range (from inclusive, before
/// exclusive); the rest stay for the List. A value is an RFC 3339 timestamp
/// (`2026-12-01T02:00:00Z`, quoted or bare). `=` and `!=` are refused: a change has no exact
/// time worth asking for.
pub fn take_update_time(terms: &mut Vec<Term>) -> Result<Range<DateTime<Utc>>, Error> {
    let mut range = Range::default();
    let mut rest = Vec::with_capacity(terms.len());
    for term in terms.drain(..) {
        if term.field != "update_time" {
            rest.push(term);
            continue;
        }
        let at = format!("`update_time {} …`", term.op);
        let time = DateTime::parse_from_rfc3339(&term.value)
            .map_err(|_| {
                Error::invalid(
                    "filter",
                    format!(
                        "{at}: {:?} is not an RFC 3339 time (e.g. \"2026-12-01T02:00:00Z\")",
                        term.value
                    ),
                )
            })?
            .with_timezone(&Utc);
        if matches!(term.op, Op::Eq | Op::Ne) {
            return Err(Error::invalid(
                "filter",
                format!("{at}: update_time takes < > <= >="),
            ));
        }
        // Times are kept to the microsecond: the next one is a microsecond on.
        range.narrow(term.op, time, time + Duration::microseconds(1));
    }
    *terms = rest;
    Ok(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn update_time_terms_become_a_range_and_the_rest_stay() {
        let mut terms = qi_filter::parse(
            r#"update_time > "2026-12-01T02:00:00Z" AND state = OPEN AND update_time <= 2026-12-02T02:00:00+01:00"#,
        )
        .unwrap();
        let range = take_update_time(&mut terms).unwrap();
        assert_eq!(
            range.from,
            Some(at("2026-12-01T02:00:00Z") + Duration::microseconds(1))
        );
        assert_eq!(
            range.before,
            Some(at("2026-12-02T01:00:00Z") + Duration::microseconds(1))
        );
        assert_eq!(terms.len(), 1);
        assert_eq!(terms[0].field, "state");
    }

    #[test]
    fn bad_times_and_operators_are_named() {
        for bad in [
            "update_time > yesterday",
            "update_time = 2026-12-01T02:00:00Z",
            "update_time > 2026-12-01",
        ] {
            let mut terms = qi_filter::parse(bad).unwrap();
            let e = take_update_time(&mut terms).unwrap_err();
            let status = tonic::Status::from(e);
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{bad}");
            assert!(
                status.message().contains("update_time"),
                "{bad}: {status:?}"
            );
        }
    }

    #[test]
    fn only_update_time_orders() {
        assert_eq!(order("").unwrap(), Order::Default);
        assert_eq!(order(" update_time ").unwrap(), Order::UpdateTime);
        assert_eq!(order("update_time asc").unwrap(), Order::UpdateTime);
        for bad in ["update_time desc", "create_time", "title"] {
            let status = tonic::Status::from(order(bad).unwrap_err());
            assert!(status.message().contains("order_by"), "{bad}: {status:?}");
        }
    }
}
