//! The plan: every record the demo creates, worked out from the data without calling
//! anything. Each record draws from its own keyed generator ([`crate::demo::rng`]), so the
//! plan is the same on every run whatever order the loader visits records in.

pub(crate) mod drivers;
pub(crate) mod journey;
pub(crate) mod metrics;
pub(crate) mod people;
pub(crate) mod portfolio;
pub(crate) mod programmes;
pub(crate) mod records;
pub(crate) mod training;
pub(crate) mod wards;
