//! The one integration-test binary: every capability, against the real server.

mod analysis;
mod catalogue;
mod degraded;
mod helpers;
mod history;
mod import;
mod kubernetes;
mod launch;
mod projects;
mod schema;
mod statements;
mod subscriptions;
mod target;
mod transport;
