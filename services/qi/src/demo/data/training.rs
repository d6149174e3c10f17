//! The QSIR courses the demo's cohorts run, and how many learners sit on them.

/// The five-week QSIR Practitioner course (trust-wide cohorts).
pub(crate) const PRACTITIONER: &str = "trust/courses/qsir-prac";
/// The one-day QSIR Fundamentals course (a site's cohorts).
pub(crate) const FUNDAMENTALS: &str = "trust/courses/qsir-fund";

/// The ESR competence each course is recorded against: (course, competence id, competence
/// name). Made up, in the shape of a trust's local competences (its VPD code, 372, then
/// `LOCAL`), so `qi hr export` on the demo shows them.
pub(crate) const COMPETENCES: [(&str, &str, &str); 2] = [
    (FUNDAMENTALS, "37210001", "372|LOCAL|QSIR Fundamentals|"),
    (PRACTITIONER, "37210002", "372|LOCAL|QSIR Practitioner|"),
];

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
