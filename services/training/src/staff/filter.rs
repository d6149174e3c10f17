//! ListStaff's `filter`: what a nightly extract asks (`update_time`, `site`). Every bad term
//! is named under `filter`, saying which term and why.

use chrono::{DateTime, Utc};
use qi_filter::Range;
use qi_platform::{Error, Violations, extract};

const FIELDS: &str = "update_time, site";

/// What a filter asks of the staff listed.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Terms {
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
        let result = match field.as_str() {
            "site" => extract::take_site(&mut t.site, &at, op, &value),
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
