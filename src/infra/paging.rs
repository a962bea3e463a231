//! Keyset pages as the services see them: at most `first` rows after the row `after`.

/// A validated page request (see `graphql::pagination::page_request`).
#[derive(Copy, Clone, Debug)]
pub struct PageRequest {
    pub first: u64,
    /// Id of the last row of the previous page.
    pub after: Option<i64>,
}

/// One page of rows plus what a connection needs to say about the rest.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_next_page: bool,
    pub total_count: u64,
}

impl<T> Page<T> {
    /// Builds a page from `first + 1` fetched rows: the extra row only says a next page exists.
    pub fn from_overfetch(mut rows: Vec<T>, request: PageRequest, total_count: u64) -> Self {
        let has_next_page = rows.len() as u64 > request.first;
        rows.truncate(request.first as usize);
        Page {
            items: rows,
            has_next_page,
            total_count,
        }
    }
}
