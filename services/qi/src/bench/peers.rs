//! The services' own SQL statements that the raw-SQL baselines run: the very constants the
//! services run, so a baseline never measures a statement the service no longer sends.

pub(super) use qi_projects::{PORTFOLIO_IDEAS_SQL, PORTFOLIO_PROJECTS_SQL};
pub(super) use qi_training::COHORT_READ_SQL;
