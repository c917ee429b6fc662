//! Relay cursor connections, built from async-graphql's own [`Connection`], [`Edge`] and
//! `PageInfo`: `edges` and `pageInfo` come from the library, `nodes` and a lazily counted
//! `totalCount` from this module's connection fields ([`EndpointPage`], [`RunPage`]).
//!
//! Arguments are read by the resolvers, not by `connection::query`: it reports a bad cursor
//! without an `extensions.code` and bounds `first` only below (see [`super::page_size`]).

use std::{borrow::Cow, marker::PhantomData, sync::Arc};

use async_graphql::{
    ContextSelectionSet, Object, OutputType, Positioned, Result, ServerResult, Value,
    connection::{
        Connection, CursorType, DefaultConnectionName, DefaultEdgeName, DisableNodesField, Edge,
        EdgeNameType, EmptyFields,
    },
    parser::types::Field,
    registry::{MetaType, Registry},
};

use super::{
    board::{BoardRun, board_runs},
    catalogue::Endpoint,
    db, decode_cursor,
    eager::EagerList,
    encode_cursor,
    history::TestHistory,
};
use crate::{
    db::{
        entities::{endpoint, project, test_history},
        repo::{self, Page, catalogue::EndpointFilter, history::TestHistoryFilter},
    },
    graphql::loaders::EndpointRow,
};

pub const ENDPOINT_CURSOR: &str = "endpoint";
pub const RUN_CURSOR: &str = "test_history";

/// A list with cursors: which rows its cursors name, and how its edge type is described.
pub trait ListKind: Send + Sync + 'static {
    /// The kind written in the cursor ([`encode_cursor`]).
    const CURSOR: &'static str;
    const EDGE_DESCRIPTION: &'static str;
}

pub struct Endpoints;

impl ListKind for Endpoints {
    const CURSOR: &'static str = ENDPOINT_CURSOR;
    const EDGE_DESCRIPTION: &'static str = "An endpoint with its cursor.";
}

pub struct Runs;

impl ListKind for Runs {
    const CURSOR: &'static str = RUN_CURSOR;
    const EDGE_DESCRIPTION: &'static str = "A run with its cursor.";
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
type LibraryConnection<K, Node, Fields> = Connection<
    RowCursor<K>,
    Node,
    Fields,
    EmptyFields,
    DefaultConnectionName,
    DefaultEdgeName,
    DisableNodesField,
>;

/// A library connection, published as the schema always had it. Hand-written because the
/// library fixes its types' field order (`pageInfo` first, `hasPreviousPage` before
/// `hasNextPage`, `node` before `cursor`) and descriptions; see [`Listed::create_type_info`].
pub struct Listed<K: ListKind, Node: OutputType, Fields: async_graphql::ObjectType>(
    LibraryConnection<K, Node, Fields>,
);

/// A page of endpoints.
pub type EndpointConnection = Listed<Endpoints, Endpoint, EndpointPage>;

/// A page of runs. The edges share their runs with `nodes` (`Arc`): no run is copied for them.
pub type TestHistoryConnection = Listed<Runs, Arc<TestHistory>, RunPage>;

impl<K: ListKind, Node: OutputType, Fields: async_graphql::ObjectType> Listed<K, Node, Fields> {
    fn from_edges(
        has_previous_page: bool,
        has_next_page: bool,
        edges: Vec<(i64, Node)>,
        fields: Fields,
    ) -> Self {
        let mut connection = Connection::with_additional_fields(has_previous_page, has_next_page, fields);
        connection.edges = edges.into_iter().map(|(id, node)| Edge::new(RowCursor::new(id), node)).collect();
        Self(connection)
    }
}

/// How the schema published a type before the library built it.
struct Published<'a> {
    name: &'a str,
    description: Option<&'static str>,
    /// All its fields, in order.
    fields: &'static [&'static str],
    /// The fields the library documents; the schema did not.
    undocumented: &'static [&'static str],
}

impl Published<'_> {
    fn apply(&self, registry: &mut Registry) {
        let Some(MetaType::Object { description, fields, .. }) = registry.types.get_mut(self.name) else {
            return;
        };
        *description = self.description.map(str::to_owned);
        let position = |name: &str| self.fields.iter().position(|field| *field == name);
        fields.sort_by(|a, _, b, _| position(a).cmp(&position(b)));
        for name in self.undocumented {
            if let Some(field) = fields.get_mut(*name) {
                field.description = None;
            }
        }
    }
}

impl<K: ListKind, Node: OutputType, Fields: async_graphql::ObjectType> OutputType
    for Listed<K, Node, Fields>
{
    fn type_name() -> Cow<'static, str> {
        LibraryConnection::<K, Node, Fields>::type_name()
    }

    /// The library's types, then their field order and descriptions as published. Also runs
    /// on a type still being registered (a recursive reference); the outermost call, after the
    /// library has finished, decides.
    fn create_type_info(registry: &mut Registry) -> String {
        let qualified = LibraryConnection::<K, Node, Fields>::create_type_info(registry);
        let edge = DefaultEdgeName::type_name::<Node>();
        let published = [
            Published {
                name: &Self::type_name(),
                description: None,
                fields: &["edges", "nodes", "pageInfo", "totalCount"],
                undocumented: &["edges", "pageInfo"],
            },
            Published {
                name: &edge,
                description: Some(K::EDGE_DESCRIPTION),
                fields: &["cursor", "node"],
                undocumented: &["cursor", "node"],
            },
            Published {
                name: "PageInfo",
                description: Some("Where a page stands in its list."),
                fields: &["hasNextPage", "hasPreviousPage", "startCursor", "endCursor"],
                undocumented: &["hasNextPage", "hasPreviousPage", "startCursor", "endCursor"],
            },
        ];
        for published in published {
            published.apply(registry);
        }
        qualified
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> ServerResult<Value> {
        self.0.resolve(ctx, field).await
    }
}

impl EndpointConnection {
    pub fn new(page: Page<endpoint::Model>, has_previous_page: bool, filter: EndpointFilter) -> Self {
        let rows: Vec<Arc<EndpointRow>> = page.rows.into_iter().map(|row| Arc::new(row.into())).collect();
        let edges = rows.iter().map(|row| (row.id, Endpoint::from(row.clone()))).collect();
        Self::from_edges(has_previous_page, page.has_next_page, edges, EndpointPage { rows, filter })
    }
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

impl TestHistoryConnection {
    pub fn new(page: Page<test_history::Model>, has_previous_page: bool, total: RunTotal) -> Self {
        let runs: Vec<Arc<TestHistory>> =
            page.rows.into_iter().map(|row| Arc::new(TestHistory(row))).collect();
        let edges = runs.iter().map(|run| (run.0.id, run.clone())).collect();
        Self::from_edges(has_previous_page, page.has_next_page, edges, RunPage { runs, total })
    }
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
            RunTotal::Project(project) => crate::graphql::read_cache::run_count(ctx, project).await?,
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
