//! Annotations (`{metric}/annotations/{id}`): notes drawn on a metric's chart.

use chrono::NaiveDate;
use qi_platform::convert::{required_date, required_text};
use qi_platform::names;
use qi_platform::{Error, Violations};
use qi_proto::metrics as pb;

pub(crate) mod store;

/// The collection id in annotation names.
pub(crate) const ANNOTATIONS: &str = "annotations";

/// A validated annotation.
#[derive(Debug)]
pub(crate) struct NewAnnotation {
    pub(crate) id: String,
    pub(crate) date: NaiveDate,
    pub(crate) text: String,
}

/// Reads CreateAnnotation's fields (the parent is resolved by the caller).
pub(crate) fn read(
    annotation_id: &str,
    annotation: Option<pb::Annotation>,
) -> Result<NewAnnotation, Error> {
    let mut v = Violations::new();
    let id = v.check(names::id_or_new("annotation_id", annotation_id));
    let Some(a) = annotation else {
        return Err(v.missing("annotation"));
    };
    let pb::Annotation {
        name: _,
        date,
        text,
        author: _,
        create_time: _,
    } = a;
    let date = v
        .check(required_date("annotation.date", date.as_ref()).map(Some))
        .unwrap_or_default();
    let text = v.check(required_text("annotation.text", &text, 200));
    v.finish()?;
    Ok(NewAnnotation { id, date, text })
}
