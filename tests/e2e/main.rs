//! End-to-end tests through the gateway, as a client calls the suite. One binary, one
//! module per area, to keep link time down.

mod access;
mod changes;
mod cors;
mod demo;
mod direct;
mod discovery;
mod extract;
mod gateway;
mod health;
mod housekeeping;
mod http;
mod insights;
mod journey;
mod matrix;
mod metrics;
mod people;
mod projects;
mod training;
