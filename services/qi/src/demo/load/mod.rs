//! The loader: takes the plan to the gateway, as any client would, creating what is missing
//! and finding what is there, so that a second run changes nothing.

pub(crate) mod client;
mod ideas;
mod journey;
pub(crate) mod metrics;
pub(crate) mod pace;
pub(crate) mod people;
mod programmes;
pub(crate) mod projects;
pub(crate) mod training;
mod wards;
