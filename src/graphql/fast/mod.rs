//! Every GraphQL fast path, in one room, behind one switch.
//!
//! The API types (`super::types`) resolve every field the general way: async-graphql calls
//! each resolver, and relations come through the per-request loaders. The fast paths answer
//! the same fields sooner, and nothing outside this folder knows how:
//! - [`read_cache`]: a spec's catalogue under its revision, a run's scenarios and stages under
//!   its `updated_at`, a project's run count under its runs revision;
//! - [`eager`]: objects whose selected fields are in memory answer without a future per
//!   field, and the HTTP handler copies JSON text the database wrote into the body;
//! - [`endpoints_json`]: SQLite writes a spec's or tag's endpoint list as that JSON;
//! - [`catalogue`]: the endpoint and tag lists of a spec, from the two above;
//! - [`board`]: a page of runs with its scenarios, stages and endpoints loaded for the page;
//! - [`asked_for`]: subscribers that asked alike share one rendering of each event.
//!
//! A resolver asks this module once (`catalogue::endpoints`, `catalogue::tags`,
//! `board::board_runs`, …) and takes the general path when it answers `None`.
//! `GRAPHQL_FAST_PATHS=off` turns every one of them off ([`FastPaths`]): the answers must not
//! change, and `tests/api/fast_paths.rs` checks that they do not, for every field of the
//! schema it can reach.

pub mod asked_for;
pub mod board;
pub mod catalogue;
pub mod eager;
pub mod endpoints_json;
pub mod plain;
pub mod read_cache;

/// Whether the fast paths are on, for every request of a schema (schema data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FastPaths(pub bool);

/// Whether this request may take the fast paths. A schema built without the switch (a unit
/// test's) takes them.
pub fn on(ctx: &async_graphql::context::ContextBase<'_, impl Sync>) -> bool {
    ctx.data_opt::<FastPaths>().is_none_or(|fast| fast.0)
}
