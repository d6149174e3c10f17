//! R's arithmetic where it matters for agreement to the last bit.
//!
//! R's `mean()` of a double vector (`src/main/summary.c`) is not `sum / n`: it sums in
//! `long double`, divides by `n`, then, if that is finite, adds back the mean residual
//! `sum(x - s) / n`, again in `long double`, and rounds once to double:
//!
//! ```c
//! LDOUBLE s = 0.0;
//! for (i = 0; i < n; i++) s += x[i];
//! s /= n;
//! if (R_FINITE((double) s)) {
//!     LDOUBLE t = 0.0;
//!     for (i = 0; i < n; i++) t += (x[i] - s);
//!     s += t / n;
//! }
//! return (double) s;
//! ```
//!
//! A plain f64 `sum / n` differs in the last bits, and a point lying exactly on the mean (or a
//! limit) would then fall on the wrong side of it. On x86-64, where R is normally built,
//! `long double` is the x87 80-bit format (64-bit significand, round to nearest even), and we
//! emulate exactly that format in software ([`Ld`]) so that the mean is bit-for-bit R's.

/// An x87 80-bit extended value: `(-1)^neg × mant × 2^exp`, `mant` normalised (top bit set),
/// or zero when `mant == 0`. Its exponent range far exceeds what sums of doubles can reach
/// (|sum| < 2^1088 for fewer than 2^64 terms), so it never overflows here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ld {
    neg: bool,
    exp: i32,
    mant: u64,
}

/// Rounds `value × 2^exp` (with `sticky` standing for non-zero bits below `value`) to a 64-bit
/// significand, round to nearest, ties to even.
fn round_to_ld(neg: bool, value: u128, exp: i32, sticky: bool) -> Ld {
    if value == 0 {
        return Ld::ZERO;
    }
    let top = 127 - value.leading_zeros(); // index of the highest set bit
    if top <= 63 {
        // Fits: exact (sticky is never set here, as only cancellation shrinks a value).
        let shift = 63 - top;
        return Ld {
            neg,
            exp: exp - shift as i32,
            mant: (value << shift) as u64,
        };
    }
    let shift = top - 63; // 1..=64
    let mut mant = (value >> shift) as u64;
    let rem = value & ((1_u128 << shift) - 1);
    let half = 1_u128 << (shift - 1);
    let mut exp = exp + shift as i32;
    let round_up = rem > half || (rem == half && (sticky || mant & 1 == 1));
    if round_up {
        match mant.checked_add(1) {
            Some(m) => mant = m,
            None => {
                mant = 1 << 63;
                exp += 1;
            }
        }
    }
    Ld { neg, exp, mant }
}

/// `mant × 2^exp` plus a remainder below its last bit (`round`: the remainder's first bit,
/// `rest`: any later bit), rounded to nearest, ties to even.
#[inline]
fn round_nearest_even(neg: bool, mant: u64, exp: i32, round: bool, rest: bool) -> Ld {
    if round && (rest || mant & 1 == 1) {
        match mant.checked_add(1) {
            Some(mant) => Ld { neg, exp, mant },
            None => Ld {
                neg,
                exp: exp + 1,
                mant: 1 << 63,
            },
        }
    } else {
        Ld { neg, exp, mant }
    }
}

impl Ld {
    const ZERO: Self = Self {
        neg: false,
        exp: 0,
        mant: 0,
    };

    /// Exact conversion of a finite double.
    #[inline]
    fn from_f64(x: f64) -> Self {
        if x == 0.0 {
            return Self::ZERO;
        }
        let bits = x.to_bits();
        let neg = bits >> 63 == 1;
        let biased = ((bits >> 52) & 0x7ff) as i32;
        let frac = bits & ((1 << 52) - 1);
        let (m, e) = if biased == 0 {
            (frac, -1074)
        } else {
            (frac | (1 << 52), biased - 1075)
        };
        let lz = m.leading_zeros();
        Self {
            neg,
            exp: e - lz as i32,
            mant: m << lz,
        }
    }

    fn neg(self) -> Self {
        Self {
            neg: !self.neg,
            ..self
        }
    }

    fn magnitude_lt(self, other: Self) -> bool {
        (self.exp, self.mant) < (other.exp, other.mant)
    }

    /// `self + other`, rounded once.
    #[inline]
    ///
    /// `b`, the smaller magnitude, is aligned to `a`'s last bit as `bh` (the part on `a`'s
    /// grid), `bl` (the next 64 bits) and `sticky` (whether any bit below those is set).
    fn add(self, other: Self) -> Self {
        if other.mant == 0 {
            return self;
        }
        if self.mant == 0 {
            return other;
        }
        let (a, b) = if self.magnitude_lt(other) {
            (other, self)
        } else {
            (self, other)
        };
        let d = a.exp.abs_diff(b.exp);
        let (bh, bl, sticky) = if d < 64 {
            // `(b.mant << 1) << (63 - d)` is `b.mant << (64 - d)` without a shift by 64.
            (b.mant >> d, (b.mant << 1) << (63 - d), false)
        } else if d < 128 {
            let rest = (b.mant << 1) << (127 - d);
            (0, b.mant >> (d - 64), rest != 0)
        } else {
            (0, 0, true)
        };
        if a.neg == b.neg {
            let (sum, carry) = a.mant.overflowing_add(bh);
            if carry {
                let mant = (sum >> 1) | (1 << 63);
                let round = sum & 1 == 1;
                let rest = bl != 0 || sticky;
                round_nearest_even(a.neg, mant, a.exp + 1, round, rest)
            } else {
                let round = bl >> 63 == 1;
                let rest = bl << 1 != 0 || sticky;
                round_nearest_even(a.neg, sum, a.exp, round, rest)
            }
        } else {
            // (a.mant : 0) - (bh : bl) as a 128-bit difference; a sticky remainder means the
            // true difference lies just below it, so take one unit off and keep `sticky`.
            let (lo, borrow_bl) = 0_u64.overflowing_sub(bl);
            let (lo, borrow_sticky) = lo.overflowing_sub(u64::from(sticky));
            let hi = a.mant - bh - u64::from(borrow_bl) - u64::from(borrow_sticky);
            if hi == 0 {
                // Deep cancellation (d <= 1, so no sticky bits): the result is `lo`, exact.
                if lo == 0 {
                    return Self::ZERO;
                }
                let lz = lo.leading_zeros();
                return Self {
                    neg: a.neg,
                    exp: a.exp - 64 - lz as i32,
                    mant: lo << lz,
                };
            }
            let lz = hi.leading_zeros();
            let (mant, below) = if lz == 0 {
                (hi, lo)
            } else {
                ((hi << lz) | (lo >> (64 - lz)), lo << lz)
            };
            let round = below >> 63 == 1;
            let rest = below << 1 != 0 || sticky;
            round_nearest_even(a.neg, mant, a.exp - lz as i32, round, rest)
        }
    }

    /// `self / n`, rounded once (`n` converts to `long double` exactly).
    fn div_count(self, n: u64) -> Self {
        if self.mant == 0 || n == 0 {
            return self;
        }
        let num = u128::from(self.mant) << 64;
        let d = u128::from(n);
        round_to_ld(self.neg, num / d, self.exp - 64, num % d != 0)
    }

    /// `(double) self`: round to nearest even at the double's precision (subnormals included).
    fn to_f64(self) -> f64 {
        if self.mant == 0 {
            return 0.0;
        }
        // Value = mant × 2^exp with mant in [2^63, 2^64): as a double, the exponent of its
        // leading bit is exp + 63.
        let lead = self.exp + 63;
        let sign = if self.neg { -1.0 } else { 1.0 };
        if lead > 1023 {
            return sign * f64::INFINITY;
        }
        // Bits kept: 53 for a normal result, fewer for a subnormal one (lowest bit 2^-1074).
        let keep = if lead >= -1022 {
            53
        } else {
            53 - (-1022 - lead)
        };
        if keep <= 0 {
            // Below half the smallest subnormal, or exactly half with nothing below: zero.
            let half_min = keep == 0 && self.mant > (1 << 63);
            return sign * if half_min { f64::from_bits(1) } else { 0.0 };
        }
        let drop = 64 - keep as u32; // 11..=63
        let mut kept = self.mant >> drop;
        let rem = self.mant & ((1_u64 << drop) - 1);
        let half = 1_u64 << (drop - 1);
        if rem > half || (rem == half && kept & 1 == 1) {
            kept += 1; // may carry into the next binade: still exact below
        }
        // kept × 2^(exp + drop), with kept < 2^54: exact in f64 arithmetic via powi of two.
        let scale_exp = self.exp + drop as i32;
        sign * ldexp(kept as f64, scale_exp)
    }
}

/// `x × 2^e`, exactly (when the result is representable), without overflowing intermediates.
fn ldexp(mut x: f64, mut e: i32) -> f64 {
    const TWO_POW_600: f64 = f64::from_bits((1023 + 600) << 52);
    const TWO_POW_M600: f64 = f64::from_bits((1023 - 600) << 52);
    while e > 600 {
        x *= TWO_POW_600;
        e -= 600;
    }
    while e < -600 {
        // Only reached for results far below 1; the split keeps every step exact as long as
        // the final result is (a subnormal result is rounded once, in the last step, and
        // `to_f64` has already rounded to the subnormal's precision, so that step is exact).
        x *= TWO_POW_M600;
        e += 600;
    }
    x * f64::from_bits(((e + 1023) as u64) << 52)
}

/// R's `mean(x)` for the values yielded (the caller drops NAs first, as `na.rm = TRUE`
/// does). NaN for no values, as R's `mean(numeric())`.
pub(super) fn r_mean<I>(xs: I) -> f64
where
    I: Iterator<Item = f64> + Clone,
{
    let mut n = 0_u64;
    let (mut pos_inf, mut neg_inf, mut nan) = (false, false, false);
    let mut s = Ld::ZERO;
    for x in xs.clone() {
        n += 1;
        if x.is_finite() {
            s = s.add(Ld::from_f64(x));
        } else if x.is_nan() {
            nan = true;
        } else if x > 0.0 {
            pos_inf = true;
        } else {
            neg_inf = true;
        }
    }
    // 0/0, NaN or Inf - Inf in the long-double sum: NaN.
    if n == 0 || nan || (pos_inf && neg_inf) {
        return f64::NAN;
    }
    // An infinite sum fails `R_FINITE` and is returned as it is.
    if pos_inf {
        return f64::INFINITY;
    }
    if neg_inf {
        return f64::NEG_INFINITY;
    }
    s = s.div_count(n);
    if !s.to_f64().is_finite() {
        return s.to_f64();
    }
    let mut t = Ld::ZERO;
    for x in xs {
        t = t.add(Ld::from_f64(x).add(s.neg()));
    }
    s = s.add(t.div_count(n));
    s.to_f64()
}

/// A threshold `t` that sorts every moving range as R's `mr < multiplier * mean(mr)` does:
/// `mr < t` exactly when R's test holds.
///
/// R's mean is needed bit for bit only for a moving range within rounding distance of the
/// threshold. A plain double mean of non-negative values is within `(n + 2) ε` of R's
/// (recursive summation error plus R's own final rounding), so when no moving range lies within
/// twice that band of the plain threshold, the plain threshold sorts them all the same way and
/// the extended-precision mean is skipped; otherwise it is computed.
pub(super) fn screening_threshold<I>(mrs: I, multiplier: f64) -> f64
where
    I: Iterator<Item = f64> + Clone,
{
    let (mut sum, mut n) = (0.0_f64, 0_u32);
    for mr in mrs.clone() {
        sum += mr;
        n = n.saturating_add(1);
    }
    let plain = multiplier * (sum / f64::from(n));
    if plain.is_finite() && n < u32::MAX {
        let band = plain * (f64::from(n) + 8.0) * 2.0 * f64::EPSILON;
        if mrs.clone().all(|mr| (mr - plain).abs() > band) {
            return plain;
        }
    }
    multiplier * r_mean(mrs)
}

/// R's `sign()`: 1, 0 or -1 (never NaN here: values are finite).
pub(super) fn sign(x: f64) -> i8 {
    if x > 0.0 {
        1
    } else if x < 0.0 {
        -1
    } else {
        0
    }
}

#[cfg(test)]
#[allow(
    clippy::excessive_precision,
    reason = "expected values are R's, printed to 17 significant digits"
)]
mod tests {
    use super::{Ld, r_mean, round_to_ld, screening_threshold, sign};

    /// The straightforward 128-bit form of `Ld::add` (both significands at bit 125, the
    /// smaller shifted right with a sticky bit), as an oracle for the fast one.
    fn add_reference(x: Ld, y: Ld) -> Ld {
        if y.mant == 0 {
            return x;
        }
        if x.mant == 0 {
            return y;
        }
        let (a, b) = if x.magnitude_lt(y) { (y, x) } else { (x, y) };
        let wide_a = u128::from(a.mant) << 62;
        let wide_b = u128::from(b.mant) << 62;
        let d = u32::try_from(a.exp - b.exp).unwrap_or(u32::MAX);
        let (aligned_b, sticky) = if d >= 126 {
            (0, true)
        } else {
            (wide_b >> d, wide_b & ((1_u128 << d) - 1) != 0)
        };
        if a.neg == b.neg {
            round_to_ld(a.neg, wide_a + aligned_b, a.exp - 62, sticky)
        } else {
            round_to_ld(
                a.neg,
                wide_a - aligned_b - u128::from(sticky),
                a.exp - 62,
                sticky,
            )
        }
    }

    /// A small deterministic generator (SplitMix64).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        /// A finite double of any magnitude, sign and (often) a nearby exponent.
        fn double(&mut self) -> f64 {
            loop {
                let bits = self.next();
                let x = match bits % 4 {
                    0 => f64::from_bits(bits >> 2),
                    1 => -f64::from_bits(bits >> 2),
                    _ => ((bits >> 11) as f64 / (1_u64 << 53) as f64 - 0.5) * 1e3,
                };
                if x.is_finite() {
                    return x;
                }
            }
        }
        /// An extended value with a full 64-bit significand near `around`.
        fn ld_near(&mut self, around: Ld) -> Ld {
            let shift = (self.next() % 140) as i32 - 70;
            Ld {
                neg: self.next().is_multiple_of(2),
                exp: around.exp + shift,
                mant: self.next() | (1 << 63),
            }
        }
    }

    #[test]
    fn fast_add_agrees_with_the_128_bit_reference() {
        let mut rng = Rng(7);
        for _ in 0..200_000 {
            let a = Ld::from_f64(rng.double());
            let b = if rng.next().is_multiple_of(2) {
                Ld::from_f64(rng.double())
            } else {
                rng.ld_near(a)
            };
            let a = if a.mant == 0 { Ld::from_f64(1.0) } else { a };
            assert_eq!(a.add(b), add_reference(a, b), "{a:?} + {b:?}");
            assert_eq!(b.add(a), add_reference(a, b), "{b:?} + {a:?}");
            // x - x is exactly zero.
            assert_eq!(a.add(a.neg()), Ld::ZERO);
        }
    }

    #[test]
    fn doubles_round_trip_through_extended() {
        let mut rng = Rng(11);
        for _ in 0..100_000 {
            let x = rng.double();
            assert_eq!(
                Ld::from_f64(x).to_f64().to_bits(),
                (x + 0.0).to_bits(),
                "{x:e}"
            );
        }
        for x in [
            f64::MIN_POSITIVE,
            5e-324,
            -5e-324,
            f64::MAX,
            f64::MIN,
            1.0,
            -0.0,
        ] {
            assert_eq!(Ld::from_f64(x).to_f64(), x);
        }
    }

    #[test]
    fn extended_to_double_rounds_to_nearest_even() {
        // 1 + 2^-53 is a tie between 1 and 1 + 2^-52: to even, 1.
        let tie = Ld::from_f64(1.0).add(Ld::from_f64(2f64.powi(-53)));
        assert_eq!(tie.to_f64(), 1.0);
        // Just above the tie rounds up.
        let above = tie.add(Ld::from_f64(2f64.powi(-62)));
        assert_eq!(above.to_f64(), 1.0 + f64::EPSILON);
        // (1 + 2^-52) + 2^-53 is a tie with an odd last bit: up.
        let odd_tie = Ld::from_f64(1.0 + f64::EPSILON).add(Ld::from_f64(2f64.powi(-53)));
        assert_eq!(odd_tie.to_f64(), 1.0 + 2.0 * f64::EPSILON);
        // The extended sum keeps 64 bits: 1 + 2^-60 survives, 1 + 2^-64 does not.
        let kept = Ld::from_f64(1.0).add(Ld::from_f64(2f64.powi(-60)));
        assert_ne!(kept, Ld::from_f64(1.0));
        let lost = Ld::from_f64(1.0).add(Ld::from_f64(2f64.powi(-64)));
        assert_eq!(lost, Ld::from_f64(1.0));
        // Subnormal results: 3 × 2^-1075 rounds to 2 × 2^-1074 (tie, to even).
        let three_halves = Ld::from_f64(5e-324).add(Ld::from_f64(5e-324).div_count(2));
        assert_eq!(three_halves.to_f64(), 1e-323);
        assert_eq!(Ld::from_f64(5e-324).div_count(2).to_f64(), 0.0);
        assert_eq!(Ld::from_f64(5e-324).div_count(3).to_f64(), 0.0);
        let over = Ld::from_f64(f64::MAX).add(Ld::from_f64(f64::MAX));
        assert_eq!(over.to_f64(), f64::INFINITY);
        assert_eq!(over.div_count(2).to_f64(), f64::MAX);
    }

    #[test]
    fn mean_matches_r_bit_for_bit() {
        // R 4.2.2 on x86-64: mean(c(0.1, 0.2, 0.3)) prints 0.20000000000000001, i.e. 0.2,
        // where the plain double sum / 3 gives 0.20000000000000004.
        let tenths = [0.1, 0.2, 0.3];
        assert_eq!(r_mean(tenths.iter().copied()), 0.2);
        assert_ne!(tenths.iter().sum::<f64>() / 3.0, 0.2);

        // A group with heavy cancellation (mean about 1/400 of a typical value), from the
        // reference runs against R: R's 80-bit sums leave the mean one unit in the last place
        // away from both the correctly rounded mean and the plain double mean; we agree with R.
        let values = [
            -0.6769401484018193,
            0.3064928438089103,
            -0.2375060719237568,
            -2.019513324048616,
            1.6202103083638144,
            0.3243408755038677,
            -0.48520863879940346,
            -0.2683620379011247,
            2.131062509098383,
            -1.1711442462587174,
            -1.7712310893925385,
            1.1301528761205748,
            -0.06732032944725319,
            0.6042510495746327,
            0.8412738772309284,
            1.0094735823838588,
            0.8233393978222501,
            0.6453239575105437,
            -0.10325059952972933,
            0.4432502917800962,
            0.6192454640718125,
            -0.19565476816849142,
            -0.9455412163984388,
            -1.4019211017186173,
            -1.7702994884412098,
            0.11401888868605368,
            -0.4573220747502036,
            -0.05404212647918274,
            0.21372355085175002,
            -2.307498498104294,
            7.323059851598181,
            2.3512775941957234,
            1.9367731835828266,
            -1.0114061092261293,
            1.576194943509993,
            -1.5695527166352337,
            0.2904691957125552,
            1.1822639134791784,
            -0.27151908262798596,
            -0.5091122047416842,
            -0.056889465616030914,
            -2.584248013806835,
            -0.4663461955363694,
            -2.3928915076144626,
            -1.5342663783048809,
            0.08977831140965473,
            0.30842115336001436,
            -1.9349863845707533,
            0.28999211460426805,
        ];
        let r = -1.828_246_615_997_762_52e-3;
        assert_eq!(r_mean(values.iter().copied()).to_bits(), f64::to_bits(r));
        assert_ne!(
            (values.iter().sum::<f64>() / 49.0).to_bits(),
            f64::to_bits(r)
        );
    }

    #[test]
    fn mean_edge_cases_follow_r() {
        assert!(r_mean(std::iter::empty()).is_nan());
        assert_eq!(r_mean([5.0].into_iter()), 5.0);
        assert_eq!(r_mean([1.0, f64::INFINITY].into_iter()), f64::INFINITY);
        assert_eq!(
            r_mean([f64::NEG_INFINITY, 1.0].into_iter()),
            f64::NEG_INFINITY
        );
        assert!(r_mean([f64::INFINITY, f64::NEG_INFINITY].into_iter()).is_nan());
        assert!(r_mean([1.0, f64::NAN].into_iter()).is_nan());
        // The extended format does not overflow where doubles would: R gives 1e308.
        assert_eq!(r_mean([1e308, 1e308, 1e308].into_iter()), 1e308);
        assert_eq!(r_mean([f64::MAX, f64::MAX].into_iter()), f64::MAX);
        assert_eq!(r_mean([5e-324, 5e-324].into_iter()), 5e-324);
        assert_eq!(r_mean([-2.0, 2.0].into_iter()), 0.0);
    }

    #[test]
    fn screening_threshold_sorts_as_r_mean_does() {
        let mut rng = Rng(3);
        for _ in 0..3000 {
            let n = 1 + rng.next() % 50;
            let mut mrs: Vec<f64> = (0..n).map(|_| (rng.next() % 1000) as f64 / 10.0).collect();
            if rng.next().is_multiple_of(3) {
                // A moving range right at (one rounding from) the plain threshold.
                let plain = 3.267 * (mrs.iter().sum::<f64>() / mrs.len() as f64);
                mrs.push(plain);
                mrs.push(plain * (1.0 + f64::EPSILON));
            }
            let exact = 3.267 * r_mean(mrs.iter().copied());
            let fast = screening_threshold(mrs.iter().copied(), 3.267);
            for &m in &mrs {
                assert_eq!(m < fast, m < exact, "{m} in {mrs:?}");
            }
        }
        // All zero (equal values): R's threshold is 0 and every moving range is dropped.
        assert_eq!(screening_threshold([0.0, 0.0].into_iter(), 3.267), 0.0);
        assert!(screening_threshold(std::iter::empty(), 3.267).is_nan());
        // An infinite moving range makes R's mean infinite: only the infinite one is dropped.
        let t = screening_threshold([1.0, f64::INFINITY].into_iter(), 3.267);
        assert!(1.0 < t);
        assert!(f64::INFINITY >= t);
    }

    #[test]
    fn sign_is_r_sign() {
        assert_eq!(sign(3.0), 1);
        assert_eq!(sign(-0.5), -1);
        assert_eq!(sign(0.0), 0);
        assert_eq!(sign(-0.0), 0);
    }
}
