//! Conversions between the contracts' wire types and the types stored in PostgreSQL.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use qi_proto::google::r#type::Date;

use crate::error::Error;

/// A stored instant as a `google.protobuf.Timestamp`.
pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// A `google.protobuf.Timestamp` as an instant, if it is one between the years 1900 and 2999
/// (the years dates take, so the database stores every time that passes here).
pub fn instant(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    u32::try_from(t.nanos)
        .ok()
        .and_then(|n| DateTime::from_timestamp(t.seconds, n))
        .filter(|t| (1900..=2999).contains(&t.year()))
}

/// A stored date as a `google.type.Date`.
pub fn date(d: NaiveDate) -> Date {
    Date {
        year: d.year(),
        month: d.month() as i32,
        day: d.day() as i32,
    }
}

/// A full `google.type.Date` between 1900 and 2999 as a calendar date; `None` for anything
/// else (a partial date, a day that does not exist).
pub fn calendar_date(d: &Date) -> Option<NaiveDate> {
    let in_range = (1900..=2999).contains(&d.year);
    u32::try_from(d.month)
        .ok()
        .zip(u32::try_from(d.day).ok())
        .filter(|_| in_range)
        .and_then(|(m, day)| NaiveDate::from_ymd_opt(d.year, m, day))
}

/// A required full `google.type.Date` (year, month and day) as a calendar date.
pub fn required_date(field: &str, d: Option<&Date>) -> Result<NaiveDate, Error> {
    let d = d.ok_or_else(|| Error::invalid(field, "is required"))?;
    calendar_date(d).ok_or_else(|| {
        Error::invalid(
            field,
            format!(
                "{:04}-{:02}-{:02} is not a calendar date between 1900 and 2999",
                d.year, d.month, d.day
            ),
        )
    })
}

/// An etag from a stored revision number.
pub fn etag(revision: i64) -> String {
    format!("\"{revision}\"")
}

/// Checks a required text field: trimmed, not empty, at most `max` characters.
pub fn required_text(field: &str, value: &str, max: usize) -> Result<String, Error> {
    let v = value.trim();
    if v.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    if v.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(Error::invalid(field, "contains control characters"));
    }
    Ok(v.to_owned())
}

/// An optional date: unset (or all zero) means none.
pub fn optional_date(field: &str, d: Option<&Date>) -> Result<Option<NaiveDate>, Error> {
    match d {
        None => Ok(None),
        Some(d) if d.year == 0 && d.month == 0 && d.day == 0 => Ok(None),
        Some(d) => required_date(field, Some(d)).map(Some),
    }
}

/// Free text that may be empty and span lines: trimmed, at most `max` characters, no
/// control characters other than line breaks and tabs.
pub fn optional_text(field: &str, value: &str, max: usize) -> Result<String, Error> {
    let v = value.trim();
    if v.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    if v.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(Error::invalid(field, "contains control characters"));
    }
    Ok(v.to_owned())
}

/// Free text that is required and may span lines.
pub fn long_text(field: &str, value: &str, max: usize) -> Result<String, Error> {
    let v = optional_text(field, value, max)?;
    if v.is_empty() {
        Err(Error::invalid(field, "is required"))
    } else {
        Ok(v)
    }
}

/// Refuses a stale etag (`ABORTED`, naming `what` changed); an empty one skips the check.
pub fn check_etag(given: &str, revision: i64, what: &str) -> Result<(), Error> {
    if given.is_empty() || given == etag(revision) {
        Ok(())
    } else {
        Err(Error::Aborted {
            message: format!("etag: {what} changed since it was read; read it again"),
        })
    }
}

/// Checks an integer field lies in `range`.
pub fn int_in(field: &str, value: i32, range: std::ops::RangeInclusive<i32>) -> Result<i32, Error> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(Error::invalid(
            field,
            format!("{value} is outside {} to {}", range.start(), range.end()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_must_be_real_calendar_dates() {
        let ok = Date {
            year: 2027,
            month: 2,
            day: 28,
        };
        assert_eq!(
            required_date("d", Some(&ok)).unwrap().to_string(),
            "2027-02-28"
        );
        for (y, m, d) in [
            (2027, 2, 29),
            (2027, 13, 1),
            (0, 1, 1),
            (2027, -1, 1),
            (99999, 1, 1),
        ] {
            let bad = Date {
                year: y,
                month: m,
                day: d,
            };
            assert!(required_date("d", Some(&bad)).is_err(), "{y}-{m}-{d}");
        }
        assert!(required_date("d", None).is_err());
    }

    #[test]
    fn text_is_trimmed_bounded_and_printable() {
        assert_eq!(required_text("t", "  QSIR  ", 10).unwrap(), "QSIR");
        assert!(required_text("t", "   ", 10).is_err());
        assert!(required_text("t", &"x".repeat(11), 10).is_err());
        assert!(required_text("t", "a\u{0}b", 10).is_err());
    }
}
