//! Health-inequality gaps: the gap between a period's extreme strata, and whether a series
//! of gaps is widening. Shared by every component that reads a stored metric's gap (the
//! metrics service's breakdown and QMS dashboard, the read model's equity answers), so each
//! reads the same trend from the same rows.

use std::collections::BTreeMap;

use crate::{DataSufficiency, ImprovementDirection, PointType, SpcChart, SpcOptions};

/// An inequality dimension a metric may be recorded by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    /// IMD quintile, `1` most deprived to `5`, `U` not known.
    Imd,
    /// NHS Data Dictionary ethnic category, `Z` not stated, `99` not known.
    Ethnicity,
    /// The metric's age bands, `U` not known.
    Age,
    /// Person stated gender code, `X` not known.
    Sex,
}

impl Dimension {
    /// Whether `label` stands for "not known" (or "not stated"): such strata never take part
    /// in a gap.
    pub fn is_unknown(self, label: &str) -> bool {
        match self {
            Dimension::Imd | Dimension::Age => label == "U",
            Dimension::Ethnicity => label == "Z" || label == "99",
            Dimension::Sex => label == "X",
        }
    }

    /// Which strata its gap compares.
    pub fn extremes(self) -> Extremes {
        if self == Dimension::Imd {
            Extremes::ImdQuintiles
        } else {
            Extremes::HighestLowest
        }
    }
}

/// Which strata a gap compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extremes {
    /// IMD quintile `1` (most deprived) against quintile `5` (least deprived).
    ImdQuintiles,
    /// The known stratum with the highest value against the one with the lowest.
    HighestLowest,
}

/// The gap between two strata.
#[derive(Debug, Clone, PartialEq)]
pub struct Gap {
    /// The comparison stratum's label.
    pub comparison: String,
    /// The reference stratum's label.
    pub reference: String,
    /// comparison − reference.
    pub absolute: f64,
    /// comparison ÷ reference; `None` when the reference is 0.
    pub ratio: Option<f64>,
}

/// The gap between the extreme strata of `known` (label, value) pairs, unknown strata
/// already left out, in the dimension's label order (the first of equal values wins, so the
/// choice is stable). `Err` says why there is none.
pub fn gap(extremes: Extremes, known: &[(String, f64)]) -> Result<Gap, String> {
    let (comparison, reference) = match extremes {
        Extremes::ImdQuintiles => {
            let find = |q: &str| known.iter().find(|(l, _)| l == q).cloned();
            match (find("1"), find("5")) {
                (Some(c), Some(r)) => (c, r),
                (None, _) => return Err("IMD quintile 1 (most deprived) has no data".into()),
                (_, None) => return Err("IMD quintile 5 (least deprived) has no data".into()),
            }
        }
        Extremes::HighestLowest => {
            if known.len() < 2 {
                return Err("fewer than two known strata have data".into());
            }
            let mut hi = &known[0];
            let mut lo = &known[0];
            for s in known {
                if s.1 > hi.1 {
                    hi = s;
                }
                if s.1 < lo.1 {
                    lo = s;
                }
            }
            if std::ptr::eq(hi, lo) {
                lo = &known[1];
            }
            (hi.clone(), lo.clone())
        }
    };
    Ok(Gap {
        absolute: comparison.1 - reference.1,
        ratio: (reference.1 != 0.0).then(|| comparison.1 / reference.1),
        comparison: comparison.0,
        reference: reference.0,
    })
}

/// Each period's gap size (the absolute gap, unsigned) from its known strata's (label,
/// value) pairs, for the periods that have one, in period order: the series [`trend`]
/// reads.
pub fn sizes<P: Ord + Copy>(
    extremes: Extremes,
    per_period: &BTreeMap<P, Vec<(String, f64)>>,
) -> Vec<(P, f64)> {
    per_period
        .iter()
        .filter_map(|(p, known)| gap(extremes, known).ok().map(|g| (*p, g.absolute.abs())))
        .collect()
}

/// What a series of gaps is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapTrend {
    /// Too few gaps to chart (fewer than two, or no usable moving range).
    NotEnoughData,
    /// No special cause at the last gap.
    NoSignal,
    /// Special-cause concern at the last gap: it is widening.
    Widening,
    /// Special-cause improvement at the last gap: it is narrowing.
    Narrowing,
}

/// Reads a series of gap sizes in period order: its XmR chart with direction DECREASE (a
/// smaller gap is better) is WIDENING when its last point is a special-cause concern (above
/// the upper limit, a run above the mean, a rising trend, two of three near the upper
/// limit), NARROWING when it is an improvement. The chart is returned beside the trend
/// when one could be drawn.
pub fn trend(gaps: &[f64]) -> (GapTrend, Option<SpcChart>) {
    let options = SpcOptions {
        improvement_direction: ImprovementDirection::Decrease,
        ..SpcOptions::default()
    };
    let Ok(chart) = crate::compute(gaps, &options) else {
        return (GapTrend::NotEnoughData, None);
    };
    let trend = match chart.points.last().map(|p| p.point_type) {
        _ if chart.sufficiency == DataSufficiency::NotEnoughData => GapTrend::NotEnoughData,
        Some(PointType::ConcernHigh | PointType::ConcernLow) => GapTrend::Widening,
        Some(PointType::ImprovementHigh | PointType::ImprovementLow) => GapTrend::Narrowing,
        Some(PointType::CommonCause | PointType::NeutralHigh | PointType::NeutralLow) | None => {
            GapTrend::NoSignal
        }
    };
    (trend, Some(chart))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
        pairs.iter().map(|(l, v)| ((*l).to_owned(), *v)).collect()
    }

    #[test]
    fn gaps_compare_the_extreme_strata() {
        let g = gap(
            Extremes::ImdQuintiles,
            &known(&[("1", 30.0), ("3", 50.0), ("5", 20.0)]),
        )
        .unwrap();
        assert_eq!((g.comparison.as_str(), g.reference.as_str()), ("1", "5"));
        assert_eq!(g.absolute, 10.0);
        assert_eq!(g.ratio, Some(1.5));
        assert!(gap(Extremes::ImdQuintiles, &known(&[("1", 30.0)])).is_err());
        let g = gap(
            Extremes::HighestLowest,
            &known(&[("A", 4.0), ("B", 9.0), ("C", 1.0)]),
        )
        .unwrap();
        assert_eq!((g.comparison.as_str(), g.reference.as_str()), ("B", "C"));
        let tie = gap(Extremes::HighestLowest, &known(&[("1", 4.0), ("2", 4.0)])).unwrap();
        assert_eq!(
            (tie.comparison.as_str(), tie.reference.as_str()),
            ("1", "2")
        );
        assert_eq!(tie.ratio, Some(1.0));
        assert!(gap(Extremes::HighestLowest, &known(&[("1", 4.0)])).is_err());
    }

    #[test]
    fn a_gap_that_keeps_rising_is_widening_and_one_that_falls_narrowing() {
        let flat = [5.0, 5.5, 4.8, 5.2, 5.1, 4.9, 5.3, 5.0, 4.7, 5.2, 5.1, 4.9];
        let rising: Vec<f64> = flat
            .iter()
            .chain(&[8.0, 8.5, 9.0, 9.5, 10.0, 10.5, 11.0])
            .copied()
            .collect();
        assert_eq!(trend(&rising).0, GapTrend::Widening);
        let falling: Vec<f64> = flat
            .iter()
            .chain(&[2.0, 1.8, 1.6, 1.4, 1.2, 1.0, 0.8])
            .copied()
            .collect();
        assert_eq!(trend(&falling).0, GapTrend::Narrowing);
        assert_eq!(trend(&flat).0, GapTrend::NoSignal);
        assert_eq!(trend(&[3.0]).0, GapTrend::NotEnoughData);
        assert!(trend(&[]).1.is_none());
    }
}
