//! A metric's frequency and the dates that start its periods: any day (daily), a Monday
//! (weekly, ISO weeks), the 1st (monthly), 1 January, 1 April, 1 July or 1 October
//! (quarterly).

use chrono::{Datelike, Days, Months, NaiveDate};
use qi_platform::Error;
use qi_proto::metrics as pb;

/// How often a metric is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Frequency {
    Day,
    Week,
    Month,
    Quarter,
}

impl Frequency {
    /// Reads the contract's enum, naming `field` when it is not set.
    pub(crate) fn from_proto(field: &str, value: i32) -> Result<Self, Error> {
        match pb::MetricFrequency::try_from(value) {
            Ok(pb::MetricFrequency::Day) => Ok(Frequency::Day),
            Ok(pb::MetricFrequency::Week) => Ok(Frequency::Week),
            Ok(pb::MetricFrequency::Month) => Ok(Frequency::Month),
            Ok(pb::MetricFrequency::Quarter) => Ok(Frequency::Quarter),
            Ok(pb::MetricFrequency::Unspecified) | Err(_) => {
                Err(Error::invalid(field, "choose DAY, WEEK, MONTH or QUARTER"))
            }
        }
    }

    /// The contract's enum.
    pub(crate) fn to_proto(self) -> pb::MetricFrequency {
        match self {
            Frequency::Day => pb::MetricFrequency::Day,
            Frequency::Week => pb::MetricFrequency::Week,
            Frequency::Month => pb::MetricFrequency::Month,
            Frequency::Quarter => pb::MetricFrequency::Quarter,
        }
    }

    /// The stored form.
    pub(crate) fn column(self) -> &'static str {
        match self {
            Frequency::Day => "day",
            Frequency::Week => "week",
            Frequency::Month => "month",
            Frequency::Quarter => "quarter",
        }
    }

    /// Reads the stored form.
    pub(crate) fn from_column(s: &str) -> Result<Self, Error> {
        match s {
            "day" => Ok(Frequency::Day),
            "week" => Ok(Frequency::Week),
            "month" => Ok(Frequency::Month),
            "quarter" => Ok(Frequency::Quarter),
            other => Err(Error::Internal(anyhow::anyhow!("stored frequency {other}"))),
        }
    }

    /// The start of the period holding `date`.
    pub(crate) fn period_start(self, date: NaiveDate) -> NaiveDate {
        match self {
            Frequency::Day => date,
            Frequency::Week => date - Days::new(u64::from(date.weekday().num_days_from_monday())),
            Frequency::Month => date.with_day(1).unwrap_or(date),
            Frequency::Quarter => {
                let month = (date.month0() / 3) * 3 + 1;
                NaiveDate::from_ymd_opt(date.year(), month, 1).unwrap_or(date)
            }
        }
    }

    /// The start of the period after the one starting at `start`.
    pub(crate) fn next(self, start: NaiveDate) -> NaiveDate {
        let next = match self {
            Frequency::Day => start.checked_add_days(Days::new(1)),
            Frequency::Week => start.checked_add_days(Days::new(7)),
            Frequency::Month => start.checked_add_months(Months::new(1)),
            Frequency::Quarter => start.checked_add_months(Months::new(3)),
        };
        next.unwrap_or(NaiveDate::MAX)
    }

    /// Checks that `date` starts a period; the error says which date would.
    pub(crate) fn check_start(self, date: NaiveDate) -> Result<(), String> {
        let start = self.period_start(date);
        if start == date {
            return Ok(());
        }
        let rule = match self {
            Frequency::Day => "",
            Frequency::Week => "weekly metrics take the Monday that starts the week",
            Frequency::Month => "monthly metrics take the 1st of the month",
            Frequency::Quarter => {
                "quarterly metrics take the first day of the quarter (1 January, 1 April, 1 July or 1 October)"
            }
        };
        Err(format!(
            "{date} does not start a period: {rule}, here {start}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn periods_start_on_the_documented_days() {
        // 2026-11-02 is a Monday.
        assert!(Frequency::Week.check_start(d(2026, 11, 2)).is_ok());
        let err = Frequency::Week.check_start(d(2026, 11, 4)).unwrap_err();
        assert!(err.contains("2026-11-02"), "{err}");
        assert!(Frequency::Month.check_start(d(2026, 11, 1)).is_ok());
        assert!(Frequency::Month.check_start(d(2026, 11, 2)).is_err());
        for m in [1, 4, 7, 10] {
            assert!(Frequency::Quarter.check_start(d(2026, m, 1)).is_ok());
        }
        let err = Frequency::Quarter.check_start(d(2026, 5, 1)).unwrap_err();
        assert!(err.contains("2026-04-01"), "{err}");
        assert!(Frequency::Day.check_start(d(2026, 2, 28)).is_ok());
    }

    #[test]
    fn the_next_period_follows_the_frequency() {
        assert_eq!(Frequency::Day.next(d(2026, 12, 31)), d(2027, 1, 1));
        assert_eq!(Frequency::Week.next(d(2026, 12, 28)), d(2027, 1, 4));
        assert_eq!(Frequency::Month.next(d(2027, 1, 1)), d(2027, 2, 1));
        assert_eq!(Frequency::Quarter.next(d(2026, 10, 1)), d(2027, 1, 1));
        assert_eq!(
            Frequency::Quarter.period_start(d(2026, 12, 31)),
            d(2026, 10, 1)
        );
        assert_eq!(Frequency::Week.period_start(d(2026, 11, 8)), d(2026, 11, 2));
    }
}
