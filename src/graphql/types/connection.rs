//! Relay cursor connections: `edges`, `nodes`, `pageInfo` and a lazily counted `totalCount`.

use async_graphql::{Context, Object, Result, SimpleObject};

use super::{catalogue::Endpoint, db, encode_cursor, history::TestHistory};
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

/// Where a page stands in its list.
#[derive(SimpleObject)]
pub struct PageInfo {
    has_next_page: bool,
    has_previous_page: bool,
    start_cursor: Option<String>,
    end_cursor: Option<String>,
}

impl PageInfo {
    fn of<T>(page: &Page<T>, has_previous_page: bool, cursor: impl Fn(&T) -> String) -> Self {
        Self {
            has_next_page: page.has_next_page,
            has_previous_page,
            start_cursor: page.rows.first().map(&cursor),
            end_cursor: page.rows.last().map(&cursor),
        }
    }
}

pub const ENDPOINT_CURSOR: &str = "endpoint";
pub const RUN_CURSOR: &str = "test_history";

/// A page of endpoints.
pub struct EndpointConnection {
    page: Page<endpoint::Model>,
    has_previous_page: bool,
    filter: EndpointFilter,
}

impl EndpointConnection {
    pub fn new(page: Page<endpoint::Model>, has_previous_page: bool, filter: EndpointFilter) -> Self {
        Self { page, has_previous_page, filter }
    }
}

/// An endpoint with its cursor.
#[derive(SimpleObject)]
pub struct EndpointEdge {
    cursor: String,
    node: Endpoint,
}

#[Object]
impl EndpointConnection {
    async fn edges(&self) -> Vec<EndpointEdge> {
        self.page
            .rows
            .iter()
            .map(|row| EndpointEdge {
                cursor: encode_cursor(ENDPOINT_CURSOR, row.id),
                node: Endpoint::from(row.clone()),
            })
            .collect()
    }
    async fn nodes(&self, ctx: &Context<'_>) -> Result<EagerList<Endpoint>> {
        Endpoint::list(ctx, self.page.rows.iter().cloned().map(EndpointRow::from).collect()).await
    }
    async fn page_info(&self) -> PageInfo {
        PageInfo::of(&self.page, self.has_previous_page, |row| encode_cursor(ENDPOINT_CURSOR, row.id))
    }
    /// Endpoints matching the filter, over all pages.
    async fn total_count(&self, ctx: &Context<'_>) -> Result<i64> {
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

/// A page of runs.
pub struct TestHistoryConnection {
    page: Page<test_history::Model>,
    has_previous_page: bool,
    total: RunTotal,
}

impl TestHistoryConnection {
    pub fn new(page: Page<test_history::Model>, has_previous_page: bool, total: RunTotal) -> Self {
        Self { page, has_previous_page, total }
    }
}

/// A run with its cursor.
#[derive(SimpleObject)]
pub struct TestHistoryEdge {
    cursor: String,
    node: TestHistory,
}

#[Object]
impl TestHistoryConnection {
    async fn edges(&self) -> Vec<TestHistoryEdge> {
        self.page
            .rows
            .iter()
            .map(|row| TestHistoryEdge {
                cursor: encode_cursor(RUN_CURSOR, row.id),
                node: TestHistory(row.clone()),
            })
            .collect()
    }
    async fn nodes(&self, ctx: &Context<'_>) -> Result<EagerList<BoardRun>> {
        board_runs(ctx, self.page.rows.clone()).await
    }
    async fn page_info(&self) -> PageInfo {
        PageInfo::of(&self.page, self.has_previous_page, |row| encode_cursor(RUN_CURSOR, row.id))
    }
    /// Runs matching the filter, over all pages.
    async fn total_count(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(match &self.total {
            RunTotal::Counted(total) => *total as i64,
            RunTotal::Filter(filter) => repo::history::count(db(ctx), filter).await? as i64,
            RunTotal::Project(project) => read_cache::run_count(ctx, project).await?,
        })
    }
}
