//! The trust's calendar: "today" is the date in Europe/London, for every date check and
//! every default date in every service, and "in the future" means after that date. (UTC's
//! date would tell a caller sending today's London date between 00:00 and 01:00 BST that it
//! is in the future.)
//!
//! UK clocks follow the Summer Time Order 2002: British Summer Time runs from 01:00 UTC on
//! the last Sunday of March to 01:00 UTC on the last Sunday of October. That rule is a few
//! lines, so it is written here rather than pulling in a whole time-zone database.

use chrono::{DateTime, Datelike, Days, NaiveDate, TimeZone, Utc, Weekday};

use crate::error::Error;

/// Today's date in the trust (Europe/London).
pub fn today() -> NaiveDate {
    london_date(Utc::now())
}

/// The Europe/London date at instant `at`.
pub fn london_date(at: DateTime<Utc>) -> NaiveDate {
    if summer_time(at) {
        (at + chrono::Duration::hours(1)).date_naive()
    } else {
        at.date_naive()
    }
}

/// Noon in Europe/London on day `d`: the instant a step dated only by its day is put at.
pub fn london_noon(d: NaiveDate) -> DateTime<Utc> {
    let noon = Utc.from_utc_datetime(&d.and_hms_opt(12, 0, 0).unwrap_or_default());
    // Clocks change at 01:00 UTC, so noon's offset is the offset all afternoon.
    if summer_time(noon) {
        noon - chrono::Duration::hours(1)
    } else {
        noon
    }
}

/// Whether British Summer Time is in force at `at`.
fn summer_time(at: DateTime<Utc>) -> bool {
    let year = at.year();
    (summer_time_change(year, 3)..summer_time_change(year, 10)).contains(&at)
}

/// 01:00 UTC on the last Sunday of `month` in `year`, when UK clocks change.
fn summer_time_change(year: i32, month: u32) -> DateTime<Utc> {
    // The 31st exists in March and October, the only months asked for.
    let last = NaiveDate::from_ymd_opt(year, month, 31).unwrap_or(NaiveDate::MIN);
    let back = last.weekday().days_since(Weekday::Sun);
    let sunday = last
        .checked_sub_days(Days::new(u64::from(back)))
        .unwrap_or(last);
    Utc.from_utc_datetime(&sunday.and_hms_opt(1, 0, 0).unwrap_or_default())
}

/// `d`, unless it lies after today's London date.
pub fn not_future(field: &str, d: NaiveDate) -> Result<NaiveDate, Error> {
    if d > today() {
        Err(Error::invalid(field, format!("{d} is in the future")))
    } else {
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn half_past_midnight_bst_is_already_the_london_day() {
        // 00:30 BST on 1 July 2026 is 23:30 UTC on 30 June.
        assert_eq!(london_date(utc("2026-06-30T23:30:00Z")), date("2026-07-01"));
        assert_eq!(london_date(utc("2026-06-30T22:59:59Z")), date("2026-06-30"));
        // In winter London is on UTC.
        assert_eq!(london_date(utc("2026-12-01T23:30:00Z")), date("2026-12-01"));
    }

    #[test]
    fn the_clocks_change_at_one_utc_on_the_last_sundays_of_march_and_october() {
        // 2026: 29 March and 25 October.
        assert_eq!(summer_time_change(2026, 3), utc("2026-03-29T01:00:00Z"));
        assert_eq!(summer_time_change(2026, 10), utc("2026-10-25T01:00:00Z"));
        // A year whose 31 March is itself a Sunday (2024).
        assert_eq!(summer_time_change(2024, 3), utc("2024-03-31T01:00:00Z"));
        assert_eq!(london_date(utc("2026-03-28T23:30:00Z")), date("2026-03-28"));
        assert_eq!(london_date(utc("2026-03-29T23:30:00Z")), date("2026-03-30"));
        assert_eq!(london_date(utc("2026-10-24T23:30:00Z")), date("2026-10-25"));
        assert_eq!(london_date(utc("2026-10-25T23:30:00Z")), date("2026-10-25"));
    }

    #[test]
    fn noon_in_london_is_eleven_utc_in_summer_and_twelve_in_winter() {
        assert_eq!(london_noon(date("2026-07-01")), utc("2026-07-01T11:00:00Z"));
        assert_eq!(london_noon(date("2026-12-01")), utc("2026-12-01T12:00:00Z"));
        // The days the clocks change: by noon they have.
        assert_eq!(london_noon(date("2026-03-29")), utc("2026-03-29T11:00:00Z"));
        assert_eq!(london_noon(date("2026-10-25")), utc("2026-10-25T12:00:00Z"));
        for d in ["2026-03-29", "2026-07-01", "2026-10-25", "2026-12-01"] {
            assert_eq!(london_date(london_noon(date(d))), date(d));
        }
    }

    #[test]
    fn the_future_starts_after_londons_today() {
        assert!(not_future("d", today()).is_ok());
        let tomorrow = today() + Days::new(1);
        assert!(not_future("d", tomorrow).is_err());
    }
}
