//! A metric's series before the chart: each period's measurements added together the
//! metric's way ([`Sums`] and [`ValueType`]), and where its rebase points fall
//! ([`rebase_positions`]). Shared by every component that charts a stored metric (the
//! metrics service, the read model), so both read the same value for the same rows.

/// How a metric's measurements are recorded and combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// Counts that add up.
    Count,
    /// Averages, combined weighted by their counts.
    Mean,
    /// Numerator over denominator, times `rate_per`.
    Rate,
}

/// The sums of a group of measurements, from which its value and weight follow.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sums {
    /// How many measurements.
    pub n: i64,
    /// Σ value (COUNT and MEAN).
    pub sum_value: f64,
    /// Σ value × weight (MEAN).
    pub sum_weighted: f64,
    /// Σ weight (MEAN: the count, or 1).
    pub sum_weight: f64,
    /// Σ numerator (RATE).
    pub sum_num: f64,
    /// Σ denominator (RATE).
    pub sum_den: f64,
    /// The value itself when the group is one measurement (kept exact).
    pub single: Option<f64>,
}

impl Sums {
    /// One measurement's sums: its value (weighted by `count`, 1 without), numerator and
    /// denominator.
    pub fn of(
        value: Option<f64>,
        count: Option<i64>,
        numerator: Option<f64>,
        denominator: Option<f64>,
    ) -> Sums {
        let weight = count.map_or(1.0, |c| c as f64);
        Sums {
            n: 1,
            sum_value: value.unwrap_or(0.0),
            sum_weighted: value.map_or(0.0, |v| v * weight),
            sum_weight: if value.is_some() { weight } else { 0.0 },
            sum_num: numerator.unwrap_or(0.0),
            sum_den: denominator.unwrap_or(0.0),
            single: value,
        }
    }

    /// Adds another group in.
    pub fn add(&mut self, o: &Sums) {
        self.single = match (self.n, o.n) {
            (0, _) => o.single,
            (_, 0) => self.single,
            _ => None,
        };
        self.n += o.n;
        self.sum_value += o.sum_value;
        self.sum_weighted += o.sum_weighted;
        self.sum_weight += o.sum_weight;
        self.sum_num += o.sum_num;
        self.sum_den += o.sum_den;
    }

    /// The group's value: a COUNT adds up, a MEAN is weighted by its counts, a RATE divides
    /// the summed numerators by the summed denominators, times `rate_per`. `None` for an
    /// empty group.
    pub fn value(&self, value_type: ValueType, rate_per: f64) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        match value_type {
            ValueType::Count => Some(self.sum_value),
            ValueType::Mean => match self.single {
                Some(v) if self.n == 1 => Some(v),
                _ => (self.sum_weight > 0.0).then(|| self.sum_weighted / self.sum_weight),
            },
            ValueType::Rate => (self.sum_den > 0.0).then(|| self.sum_num / self.sum_den * rate_per),
        }
    }

    /// The group's weight: the summed denominators of a RATE, the summed counts of a MEAN,
    /// the summed values of a COUNT.
    pub fn weight(&self, value_type: ValueType) -> f64 {
        match value_type {
            ValueType::Count => self.sum_value,
            ValueType::Mean => self.sum_weight,
            ValueType::Rate => self.sum_den,
        }
    }
}

/// Where rebase points dated `points` start new groups in a series of `periods` (in
/// order): each at the first period on or after it, and only inside the series (a point
/// on or before the first period, or after the last, starts nothing). With each position,
/// the index in `points` of the point applied; a position is given once.
pub fn rebase_positions<D: Ord>(periods: &[D], points: &[D]) -> Vec<(usize, usize)> {
    let (Some(first), Some(last)) = (periods.first(), periods.last()) else {
        return Vec::new();
    };
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (i, at) in points.iter().enumerate() {
        if at <= first || at > last {
            continue;
        }
        let position = periods.partition_point(|d| d < at);
        if !out.iter().any(|(p, _)| *p == position) {
            out.push((position, i));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(n: i64, v: f64, w: f64, num: f64, den: f64) -> Sums {
        Sums {
            n,
            sum_value: v,
            sum_weighted: v * w,
            sum_weight: w,
            sum_num: num,
            sum_den: den,
            single: (n == 1).then_some(v),
        }
    }

    #[test]
    fn values_combine_the_metric_way() {
        let mut a = sums(1, 10.0, 4.0, 3.0, 40.0);
        let b = sums(1, 20.0, 1.0, 1.0, 10.0);
        assert_eq!(a.value(ValueType::Mean, 1.0), Some(10.0));
        a.add(&b);
        assert_eq!(a.n, 2);
        assert_eq!(a.single, None);
        assert_eq!(a.value(ValueType::Count, 1.0), Some(30.0));
        assert_eq!(a.value(ValueType::Mean, 1.0), Some(12.0));
        assert_eq!(a.value(ValueType::Rate, 100.0), Some(8.0));
        assert_eq!(a.weight(ValueType::Rate), 50.0);
        assert_eq!(Sums::default().value(ValueType::Count, 1.0), None);
        let mut empty = Sums::default();
        empty.add(&b);
        assert_eq!(empty.single, Some(20.0));
        assert_eq!(
            Sums::of(Some(10.0), Some(4), Some(3.0), Some(40.0)),
            sums(1, 10.0, 4.0, 3.0, 40.0)
        );
    }

    #[test]
    fn a_rebase_point_starts_a_group_at_the_first_period_on_or_after_it_inside_the_series() {
        let periods = [10, 20, 30, 40];
        // Before or on the first period, after the last: nothing. Between periods: the next.
        assert_eq!(rebase_positions(&periods, &[5, 10, 41]), []);
        assert_eq!(rebase_positions(&periods, &[25, 30, 40]), [(2, 0), (3, 2)]);
        assert_eq!(rebase_positions::<i32>(&[], &[25]), []);
    }
}
