//! A tiny deterministic generator (splitmix64) and the generated names it draws from. Each
//! record takes its own generator from a key (`Rng::of("idea", 17)`), so a record's data do
//! not depend on the order the seed visits records in: the demo is the same on every run.

/// splitmix64: small, fast, and good enough for synthetic data (not for secrets).
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// The generator of record `index` of kind `label`.
    pub(crate) fn of(label: &str, index: u64) -> Rng {
        // FNV-1a over the label, mixed with the index.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in label.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let mut r = Rng(h ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        r.next();
        r
    }

    /// The next 64 random bits.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A whole number in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A number in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Roughly normal noise with mean 0 and standard deviation `sd` (Irwin–Hall of 4).
    pub(crate) fn noise(&mut self, sd: f64) -> f64 {
        let s: f64 = (0..4).map(|_| self.unit()).sum();
        (s - 2.0) * sd * 3f64.sqrt()
    }

    /// One of `items` (not empty).
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// One of `items` by weight.
    pub(crate) fn weighted<'a, T>(&mut self, items: &'a [(T, u32)]) -> &'a T {
        let total: u64 = items.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut x = self.below(total);
        for (item, w) in items {
            if x < u64::from(*w) {
                return item;
            }
            x -= u64::from(*w);
        }
        &items[items.len() - 1].0
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// Forenames and surnames common in England, combined at random: the people are invented.
pub(crate) const FORENAMES: [&str; 48] = [
    "Aaliyah", "Adam", "Aisha", "Alfie", "Amara", "Amelia", "Arjun", "Ava", "Ben", "Chloe",
    "Daniel", "Deepa", "Eleanor", "Ella", "Emeka", "Ethan", "Fatima", "Freya", "George", "Grace",
    "Hannah", "Harry", "Imran", "Isla", "Jack", "Jade", "James", "Kemi", "Leo", "Lily", "Lucy",
    "Mia", "Mohammed", "Nadia", "Noah", "Olivia", "Oscar", "Priya", "Rhys", "Rosa", "Sam", "Sofia",
    "Tom", "Tunde", "Wei", "Yusuf", "Zara", "Zoe",
];

/// See [`FORENAMES`].
pub(crate) const SURNAMES: [&str; 48] = [
    "Adeyemi", "Ahmed", "Allen", "Baker", "Bennett", "Brown", "Campbell", "Chen", "Clarke",
    "Cooper", "Davies", "Edwards", "Evans", "Fletcher", "Green", "Hall", "Harris", "Hughes",
    "Hussain", "Jackson", "James", "Johnson", "Jones", "Khan", "King", "Kowalski", "Lewis",
    "Martin", "Mensah", "Miller", "Morgan", "Murphy", "Nowak", "Okafor", "Owen", "Patel",
    "Phillips", "Roberts", "Robinson", "Shah", "Singh", "Smith", "Taylor", "Thomas", "Turner",
    "Walker", "Wilson", "Wright",
];

/// A generated person's forename and surname.
pub(crate) fn person(rng: &mut Rng) -> (&'static str, &'static str) {
    (*rng.pick(&FORENAMES), *rng.pick(&SURNAMES))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_always_gives_the_same_numbers_and_keys_differ() {
        let a: Vec<u64> = (0..4).map(|_| Rng::of("idea", 7).next()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng::of("idea", 7).next(), Rng::of("idea", 8).next());
        assert_ne!(Rng::of("idea", 7).next(), Rng::of("staff", 7).next());
        let mut r = Rng::of("x", 1);
        for _ in 0..1000 {
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
            assert!(r.below(5) < 5);
        }
    }
}
