//! ListIdeas' `filter`: what a nightly extract asks (`update_time`, `state`, `site`). Every
//! bad term is named under `filter`, saying which term and why.

use chrono::{DateTime, Utc};
use qi_filter::{Op, Range};
use qi_platform::{Error, Violations, extract};
use qi_proto::projects as pb;

use crate::stored::enum_value;

const FIELDS: &str = "update_time, state, site";

/// What a filter asks of the ideas listed.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Terms {
    pub(super) state: Option<&'static str>,
    pub(super) site: Option<String>,
    pub(super) updated: Range<DateTime<Utc>>,
}

/// Reads `filter`.
pub(super) fn parse(filter: &str) -> Result<Terms, Error> {
    let (terms, updated) = extract::read_filter(filter)?;
    let mut t = Terms {
        updated,
        ..Terms::default()
    };
    let mut v = Violations::new();
    for qi_filter::Term { field, op, value } in terms {
        let at = format!("`{field} {op} …`");
        let result = match (field.as_str(), op) {
            ("state", Op::Eq) if t.state.is_none() => {
                enum_value::<pb::IdeaState>(&at, "IDEA_STATE_", &value).map(|s| {
                    t.state = Some(s);
                })
            }
            ("site", _) => extract::take_site(&mut t.site, &at, op, &value),
            ("state", Op::Eq) => Err(Error::invalid(
                "filter",
                format!("{at}: state = is given twice"),
            )),
            ("state", _) => Err(Error::invalid("filter", format!("{at}: state takes ="))),
            _ => Err(Error::invalid(
                "filter",
                format!(
                    "{at}: no field `{}` (fields: {FIELDS})",
                    qi_platform::names::clip(&field)
                ),
            )),
        };
        v.check(result);
    }
    v.finish()?;
    Ok(t)
}
