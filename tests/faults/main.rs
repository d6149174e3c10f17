//! Fault tests: the suite under a lost database, a stopped process and exhausted limits.
//!
//! A separate binary from `e2e` because these tests are slow and heavy (each runs the suite
//! on a PostgreSQL of its own, [`qi_e2e::TestSuite::start_on_own_cluster`], so stopping it
//! disturbs no other test) and keeping them apart keeps `e2e` quick to build and run.

mod audit;
mod bad_input;
mod common;
mod database;
mod deadline;
mod exhaustion;
mod feed;
mod oversized;
mod retries;
mod shutdown;
