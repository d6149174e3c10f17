//! The demo trust's data: the names and numbers its story is told with, as constants the
//! plan draws from (the sites and wards are the reference trust's, in `crate::seed`).

pub(crate) mod drivers;
pub(crate) mod metrics;
pub(crate) mod people;
pub(crate) mod projects;
pub(crate) mod training;
