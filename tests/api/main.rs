//! The one integration-test binary: every capability, against the real server.

mod access;
mod analysis;
mod catalogue;
mod degraded;
mod exact_totals;
mod faults;
mod helpers;
mod history;
mod hostile;
mod https_import;
mod import;
mod influx_hygiene;
mod kubernetes;
mod launch;
mod layers;
mod limits;
mod projects;
mod races;
mod read_cache;
mod schema;
mod script_safety;
mod statements;
mod subscriptions;
mod target;
mod targets;
mod transport;
