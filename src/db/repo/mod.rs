//! Plain async functions over a connection: what the API reads and writes.

pub mod api_tokens;
pub mod catalogue;
pub mod catalogue_rows;
pub mod endpoints_json;
pub mod history;
pub mod import;
pub mod plans;
pub mod project;
pub mod relations;
pub mod run_rows;
pub mod runs;
pub mod schedules;
pub mod secrets;
pub mod webhooks;

/// One page of rows, fetched with one extra row to know whether more follow.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub rows: Vec<T>,
    pub has_next_page: bool,
}

impl<T> Page<T> {
    /// Trims the probe row fetched beyond `first`.
    pub fn from_probe(mut rows: Vec<T>, first: u64) -> Self {
        let has_next_page = rows.len() as u64 > first;
        rows.truncate(first as usize);
        Self { rows, has_next_page }
    }
}
