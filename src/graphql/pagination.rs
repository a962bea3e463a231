//! Relay connections: `first`/`after` arguments in, `edges`/`pageInfo`/`totalCount` out.
//!
//! Cursors are opaque (base64 of the row id) and pages are ordered by id, so walking a
//! connection visits every row exactly once even while rows are added.

use async_graphql::SimpleObject;
use async_graphql::connection::{Connection, CursorType, Edge, OpaqueCursor};

use crate::error::AppError;
use crate::infra::paging::{Page, PageRequest};

/// Largest page a client may ask for.
pub const MAX_PAGE_SIZE: i32 = 100;

/// Extra fields of every connection.
#[derive(SimpleObject)]
pub struct ConnectionTotals {
    /// How many items the whole connection holds (all pages).
    pub total_count: u64,
}

pub type IdConnection<N> = Connection<OpaqueCursor<i64>, N, ConnectionTotals>;

/// Validates `first`/`after` into a [`PageRequest`]; a bad value is BAD_USER_INPUT.
pub fn page_request(first: i32, after: Option<&str>) -> Result<PageRequest, AppError> {
    if !(1..=MAX_PAGE_SIZE).contains(&first) {
        return Err(AppError::BadUserInput(format!(
            "first must be between 1 and {MAX_PAGE_SIZE}"
        )));
    }
    let after = after
        .map(|cursor| {
            OpaqueCursor::<i64>::decode_cursor(cursor)
                .map(|c| c.0)
                .map_err(|_| AppError::BadUserInput("after is not a cursor of this list".into()))
        })
        .transpose()?;
    Ok(PageRequest {
        first: first as u64,
        after,
    })
}

/// Turns a page of the service into a connection, mapping each item to its GraphQL node.
pub fn connection<T, N, F>(page: Page<T>, has_previous: bool, mut node: F) -> IdConnection<N>
where
    N: async_graphql::OutputType,
    F: FnMut(T) -> (i64, N),
{
    let mut connection = Connection::with_additional_fields(
        has_previous,
        page.has_next_page,
        ConnectionTotals {
            total_count: page.total_count,
        },
    );
    connection.edges.extend(page.items.into_iter().map(|item| {
        let (id, n) = node(item);
        Edge::new(OpaqueCursor(id), n)
    }));
    connection
}
