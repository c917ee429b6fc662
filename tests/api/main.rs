//! The one integration-test binary: every capability, against the real server.

mod catalogue;
mod helpers;
mod history;
mod projects;
mod schema;
mod seed;
mod statements;
mod transport;
