//! Relay cursor connections, built from async-graphql's own [`Connection`], [`Edge`] and
//! `PageInfo`: `edges` and `pageInfo` come from the library, `nodes` and a lazily counted
//! `totalCount` from this module's connection fields ([`EndpointPage`], [`RunPage`]).
//!
//! Arguments are read by the resolvers, not by `connection::query`: it reports a bad cursor
//! without an `extensions.code` and bounds `first` only below (see [`super::page_size`]).

use std::{marker::PhantomData, sync::Arc};

use async_graphql::{
    Object, ObjectType, OutputType, Result,
    connection::{
        Connection, CursorType, DefaultConnectionName, DefaultEdgeName, DisableNodesField, Edge, EmptyFields,
    },
};

use super::{catalogue::Endpoint, db, decode_cursor, encode_cursor, history::TestHistory};
use crate::{
    db::{
        entities::{endpoint, project, test_history},
        repo::{self, Page, catalogue::EndpointFilter, history::TestHistoryFilter},
    },
    graphql::{
        fast::{
            board::{BoardRun, board_runs},
            eager::EagerList,
            read_cache,
        },
        loaders::EndpointRow,
    },
};

pub const ENDPOINT_CURSOR: &str = "endpoint";
pub const RUN_CURSOR: &str = "test_history";

/// A list with cursors: which rows its cursors name.
pub trait ListKind: Send + Sync + 'static {
    /// The kind written in the cursor ([`encode_cursor`]).
    const CURSOR: &'static str;
}

pub struct Endpoints;

impl ListKind for Endpoints {
    const CURSOR: &'static str = ENDPOINT_CURSOR;
}

pub struct Runs;

impl ListKind for Runs {
    const CURSOR: &'static str = RUN_CURSOR;
}

/// A row's cursor. Not the library's `OpaqueCursor<i64>`: that encodes JSON (`42`), and the
/// cursors clients hold encode `kind:id` ([`encode_cursor`]).
pub struct RowCursor<K>(pub i64, PhantomData<K>);

impl<K> RowCursor<K> {
    pub fn new(id: i64) -> Self {
        Self(id, PhantomData)
    }
}

impl<K: ListKind> CursorType for RowCursor<K> {
    type Error = &'static str;

    fn decode_cursor(cursor: &str) -> Result<Self, Self::Error> {
        decode_cursor(K::CURSOR, cursor).map(Self::new).map_err(|_| "not a cursor from this list")
    }

    fn encode_cursor(&self) -> String {
        encode_cursor(K::CURSOR, self.0)
    }
}

/// The library's connection over `K`'s rows, its `nodes` field left to `Fields`.
type RowConnection<K, Node, Fields> = Connection<
    RowCursor<K>,
    Node,
    Fields,
    EmptyFields,
    DefaultConnectionName,
    DefaultEdgeName,
    DisableNodesField,
>;

/// A page of endpoints.
pub type EndpointConnection = RowConnection<Endpoints, Endpoint, EndpointPage>;

/// A page of runs. The edges share their runs with `nodes` (`Arc`): no run is copied for them.
pub type TestHistoryConnection = RowConnection<Runs, Arc<TestHistory>, RunPage>;

fn row_connection<K: ListKind, Node: OutputType, Fields: ObjectType>(
    has_previous_page: bool,
    has_next_page: bool,
    edges: Vec<(i64, Node)>,
    fields: Fields,
) -> RowConnection<K, Node, Fields> {
    let mut connection = Connection::with_additional_fields(has_previous_page, has_next_page, fields);
    connection.edges = edges.into_iter().map(|(id, node)| Edge::new(RowCursor::new(id), node)).collect();
    connection
}

/// A page of `filter`'s endpoints.
pub fn endpoint_connection(
    page: Page<endpoint::Model>,
    has_previous_page: bool,
    filter: EndpointFilter,
) -> EndpointConnection {
    let rows: Vec<Arc<EndpointRow>> = page.rows.into_iter().map(|row| Arc::new(row.into())).collect();
    let edges = rows.iter().map(|row| (row.id, Endpoint::from(row.clone()))).collect();
    row_connection(has_previous_page, page.has_next_page, edges, EndpointPage { rows, filter })
}

/// `nodes` and `totalCount` of a page of endpoints. `nodes` is not the library's: that
/// resolves each endpoint on its own, [`Endpoint::list`] loads the relations the selection
/// asks for once for the page and answers from memory.
pub struct EndpointPage {
    rows: Vec<Arc<EndpointRow>>,
    filter: EndpointFilter,
}

#[Object(name = "EndpointConnectionFields")]
impl EndpointPage {
    async fn nodes(&self, ctx: &async_graphql::Context<'_>) -> Result<EagerList<Endpoint>> {
        Endpoint::list(ctx, self.rows.clone()).await
    }
    /// Endpoints matching the filter, over all pages.
    async fn total_count(&self, ctx: &async_graphql::Context<'_>) -> Result<i64> {
        Ok(repo::catalogue::endpoints_count(db(ctx), &self.filter).await? as i64)
    }
}

/// How a run connection counts its whole list.
pub enum RunTotal {
    /// Counted with the page.
    Counted(u64),
    /// Counted when asked.
    Filter(TestHistoryFilter),
    /// A project's runs: from the read cache under its runs revision, or batched across
    /// projects through the loader.
    Project(project::Model),
}

/// A page of runs, `total` of them in the whole list.
pub fn run_connection(
    page: Page<test_history::Model>,
    has_previous_page: bool,
    total: RunTotal,
) -> TestHistoryConnection {
    let runs: Vec<Arc<TestHistory>> = page.rows.into_iter().map(|row| Arc::new(TestHistory(row))).collect();
    let edges = runs.iter().map(|run| (run.0.id, run.clone())).collect();
    row_connection(has_previous_page, page.has_next_page, edges, RunPage { runs, total })
}

/// `nodes` and `totalCount` of a page of runs. `nodes` is not the library's: that resolves
/// each run on its own, [`board_runs`] loads the relations the selection asks for once for
/// the page and answers from memory.
pub struct RunPage {
    runs: Vec<Arc<TestHistory>>,
    total: RunTotal,
}

#[Object(name = "TestHistoryConnectionFields")]
impl RunPage {
    async fn nodes(&self, ctx: &async_graphql::Context<'_>) -> Result<EagerList<BoardRun>> {
        board_runs(ctx, self.runs.iter().map(|run| run.0.clone()).collect()).await
    }
    /// Runs matching the filter, over all pages.
    async fn total_count(&self, ctx: &async_graphql::Context<'_>) -> Result<i64> {
        Ok(match &self.total {
            RunTotal::Counted(total) => *total as i64,
            RunTotal::Filter(filter) => repo::history::count(db(ctx), filter).await? as i64,
            RunTotal::Project(project) => read_cache::run_count(ctx, project).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

    use super::*;

    #[test]
    fn edge_cursors_are_base64_of_kind_and_id_and_name_one_list() {
        let cursor = RowCursor::<Runs>::new(42).encode_cursor();
        assert_eq!(URL_SAFE_NO_PAD.decode(&cursor).unwrap(), b"test_history:42");
        assert_eq!(RowCursor::<Runs>::decode_cursor(&cursor).unwrap().0, 42);
        assert!(RowCursor::<Endpoints>::decode_cursor(&cursor).is_err());
    }
}
