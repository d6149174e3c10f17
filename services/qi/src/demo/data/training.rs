//! The QSIR courses the demo's cohorts run, and how many learners sit on them.

/// The five-week QSIR Practitioner course (trust-wide cohorts).
pub(crate) const PRACTITIONER: &str = "trust/courses/qsir-prac";
/// The one-day QSIR Fundamentals course (a site's cohorts).
pub(crate) const FUNDAMENTALS: &str = "trust/courses/qsir-fund";

/// Learners on each Practitioner cohort.
pub(crate) const PRACTITIONER_SEATS: usize = 22;
/// Of them, how many miss two sessions (and do not complete).
pub(crate) const PRACTITIONER_INCOMPLETE: usize = 2;
/// Learners on each Fundamentals day (one of them does not come).
pub(crate) const FUNDAMENTALS_SEATS: usize = 10;
/// Of them, how many are Practitioner learners of the site catching the one-day course too.
pub(crate) const FUNDAMENTALS_RETURNING: usize = 3;
/// Learners already enrolled on next year's first Practitioner cohort.
pub(crate) const NEXT_COHORT_SEATS: usize = 14;
