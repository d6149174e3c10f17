//! What a nightly extract asks of a List (issue 37): `update_time` bounds in its `filter`,
//! and `order_by = "update_time"`, so an extract reads only what changed since the last,
//! oldest change first, and can resume from the last `update_time` it wrote. One reading for
//! every collection; each List takes its own other terms (`state`, `site`) from what is left.
//!
//! `update_time` is the time of the transaction that last wrote a row, so a row written by a
//! transaction that began before an extract and committed after it carries an older time
//! than the extract saw: a resuming extract starts a little before its last high-water mark
//! ([`RESUME_OVERLAP`]) and takes some rows twice, which a consumer keyed by name absorbs.

use std::str::FromStr;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use qi_filter::{Op, Range, Term};

use crate::error::{Error, Violations};
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

/// A change-order key of a resource under a parent of its own (an enrolment in its cohort):
/// the parent's key and the resource's, as [`Order::key`] takes one key.
pub fn pair_key(parent: impl std::fmt::Display, own: impl std::fmt::Display) -> String {
    format!("{parent}/{own}")
}

/// The [`pair_key`] the previous page ended at, parsed.
pub fn after_pair<A: FromStr, B: FromStr>(page: &Page) -> Result<Option<(A, B)>, Error> {
    let not_ours = || Error::invalid("page_token", "not a token this list returned");
    page.after_key(0)
        .map(|key| {
            let (parent, own) = key.split_once('/').ok_or_else(not_ours)?;
            Ok((
                parent.parse().map_err(|_| not_ours())?,
                own.parse().map_err(|_| not_ours())?,
            ))
        })
        .transpose()
}

/// A List's states, for its filter's `state` term.
#[derive(Debug, Clone, Copy)]
pub struct States {
    /// The enum's value prefix (`COHORT_STATE_`), which a term may leave out.
    pub prefix: &'static str,
    /// The stored forms (the table's check constraint): the value names, lower-cased.
    pub stored: &'static [&'static str],
}

/// What a List's filter asks when it reads only an extract's terms.
#[derive(Debug, Default, PartialEq)]
pub struct Terms {
    /// Last changed in this range.
    pub updated: Range<DateTime<Utc>>,
    /// In this state (stored form).
    pub state: Option<&'static str>,
    /// At this site.
    pub site: Option<String>,
}

/// Reads the `filter` of a List that takes only an extract's terms: `update_time`, `state`
/// when it has `states`, `site` when `site`. Any other term is `INVALID_ARGUMENT` naming it
/// and the fields there are.
pub fn read_terms(filter: &str, states: Option<States>, site: bool) -> Result<Terms, Error> {
    let (terms, updated) = read_filter(filter)?;
    let mut t = Terms {
        updated,
        ..Terms::default()
    };
    let mut fields = vec!["update_time"];
    fields.extend(states.map(|_| "state"));
    fields.extend(site.then_some("site"));
    let mut v = Violations::new();
    for Term { field, op, value } in terms {
        let at = format!("`{field} {op} …`");
        let result = match (field.as_str(), states) {
            ("state", Some(states)) => {
                take_state(&mut t.state, &at, op, &value, states.prefix, states.stored)
            }
            ("site", _) if site => take_site(&mut t.site, &at, op, &value),
            _ => Err(Error::invalid(
                "filter",
                format!(
                    "{at}: no field `{}` (fields: {})",
                    crate::names::clip(&field),
                    fields.join(", ")
                ),
            )),
        };
        v.check(result);
    }
    v.finish()?;
    Ok(t)
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

/// Reads a filter's `state = VALUE` term (`at` names it) into `state` as its stored form:
/// the enum's value name, with or without its `prefix` (`COHORT_STATE_`), lower-cased, one of
/// `stored` (the table's check constraint). Given once, `=` only.
pub fn take_state(
    state: &mut Option<&'static str>,
    at: &str,
    op: Op,
    value: &str,
    prefix: &str,
    stored: &[&'static str],
) -> Result<(), Error> {
    match op {
        Op::Eq if state.is_some() => Err(Error::invalid(
            "filter",
            format!("{at}: state = is given twice"),
        )),
        Op::Eq => {
            let name = value.strip_prefix(prefix).unwrap_or(value);
            let found = stored
                .iter()
                .find(|s| s.eq_ignore_ascii_case(name) && name == name.to_ascii_uppercase());
            match found {
                Some(s) => {
                    *state = Some(s);
                    Ok(())
                }
                None => Err(Error::invalid(
                    "filter",
                    format!(
                        "{at}: `{}` is not a state ({})",
                        crate::names::clip(value),
                        stored.join(", ").to_ascii_uppercase()
                    ),
                )),
            }
        }
        Op::Ne | Op::Lt | Op::Gt | Op::Le | Op::Ge => {
            Err(Error::invalid("filter", format!("{at}: state takes =")))
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

/// A List's page-token parameters (`base`: what the List binds its tokens to already) with
/// an extract's `filter` and `order_by`, only when either is set: a token issued before a List
/// took them still reads the same.
pub fn token_params(base: String, filter: &str, order_by: &str) -> String {
    if filter.is_empty() && order_by.is_empty() {
        base
    } else {
        format!("{base}|{filter}|{order_by}")
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
    fn a_state_is_its_value_name_with_or_without_the_prefix() {
        let stored = ["planned", "cancelled"];
        let mut state = None;
        take_state(
            &mut state,
            "s",
            Op::Eq,
            "COHORT_STATE_CANCELLED",
            "COHORT_STATE_",
            &stored,
        )
        .unwrap();
        assert_eq!(state, Some("cancelled"));
        let mut state = None;
        take_state(&mut state, "s", Op::Eq, "PLANNED", "COHORT_STATE_", &stored).unwrap();
        assert_eq!(state, Some("planned"));
        for (op, value) in [(Op::Eq, "planned"), (Op::Eq, "OPEN"), (Op::Ne, "PLANNED")] {
            let mut state = None;
            let e = take_state(&mut state, "s", op, value, "COHORT_STATE_", &stored);
            let status = tonic::Status::from(e.unwrap_err());
            assert!(status.message().contains("state"), "{value}: {status:?}");
            assert_eq!(state, None);
        }
        let e = take_state(&mut Some("planned"), "s", Op::Eq, "PLANNED", "X_", &stored);
        assert!(
            tonic::Status::from(e.unwrap_err())
                .message()
                .contains("twice")
        );
    }

    #[test]
    fn a_list_reads_only_the_terms_it_has() {
        const STATES: States = States {
            prefix: "ENROLMENT_STATE_",
            stored: &["enrolled", "withdrawn"],
        };
        let t = read_terms(
            "update_time >= 2026-12-01T00:00:00Z AND state = WITHDRAWN AND site = BAS",
            Some(STATES),
            true,
        )
        .unwrap();
        assert_eq!(t.updated.from, Some(at("2026-12-01T00:00:00Z")));
        assert_eq!(
            (t.state, t.site.as_deref()),
            (Some("withdrawn"), Some("BAS"))
        );
        let e = read_terms("state = WITHDRAWN AND site = BAS", None, false).unwrap_err();
        let status = tonic::Status::from(e);
        for said in ["`state = …`", "`site = …`", "fields: update_time)"] {
            assert!(status.message().contains(said), "{said}: {status:?}");
        }
    }

    #[test]
    fn a_pair_key_reads_back_and_a_forged_one_is_refused() {
        let key = pair_key("0190a1b2-0000-7000-8000-000000000001", 12);
        let token = Page::parse(1, "", "p")
            .unwrap()
            .finish(vec![(), ()], |()| {
                Order::UpdateTime.key(key.clone(), Utc::now())
            })
            .1;
        let page = Page::parse(1, &token, "p").unwrap();
        let (parent, own) = after_pair::<uuid::Uuid, i32>(&page).unwrap().unwrap();
        assert_eq!((parent.to_string(), own), (key[..36].to_owned(), 12));
        assert!(
            after_pair::<uuid::Uuid, String>(&Page::parse(1, "", "p").unwrap())
                .unwrap()
                .is_none()
        );
        let forged = Page::parse(1, "", "p")
            .unwrap()
            .finish(vec![(), ()], |()| vec!["no-slash".to_owned()])
            .1;
        let page = Page::parse(1, &forged, "p").unwrap();
        let e = after_pair::<uuid::Uuid, i32>(&page).unwrap_err();
        assert!(tonic::Status::from(e).message().contains("page_token"));
    }

    #[test]
    fn a_token_binds_the_extract_terms_only_when_given() {
        assert_eq!(token_params("sites/-".into(), "", ""), "sites/-");
        assert_eq!(
            token_params("sites/-".into(), "", "update_time"),
            "sites/-||update_time"
        );
        assert_ne!(
            token_params("sites/-".into(), "state = OPEN", ""),
            token_params("sites/-".into(), "", "state = OPEN")
        );
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
