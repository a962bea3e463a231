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

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(id: i64) -> String {
        OpaqueCursor(id).encode_cursor()
    }

    fn refused(first: i32, after: Option<&str>) -> String {
        match page_request(first, after) {
            Err(AppError::BadUserInput(message)) => message,
            Err(other) => panic!("not BAD_USER_INPUT: {other:?}"),
            Ok(request) => panic!("accepted: {request:?}"),
        }
    }

    #[test]
    fn first_is_between_one_and_the_largest_page() {
        for first in [0, -1, i32::MIN, MAX_PAGE_SIZE + 1, i32::MAX] {
            assert!(refused(first, None).contains("first"), "{first}");
        }
        for first in [1, MAX_PAGE_SIZE] {
            let request = page_request(first, None).unwrap();
            assert_eq!((request.first, request.after), (first as u64, None));
        }
    }

    #[test]
    fn a_cursor_carries_the_row_id_through_opaque_text() {
        for id in [1, 42, i64::MAX, 0, -1, i64::MIN] {
            let text = cursor(id);
            assert_ne!(text, id.to_string(), "opaque");
            assert_eq!(page_request(10, Some(&text)).unwrap().after, Some(id));
        }
    }

    #[test]
    fn a_cursor_is_not_bounded_to_positive_ids() {
        // ids start at 1, so `after` 0 or below simply starts at the beginning
        assert_eq!(page_request(5, Some(&cursor(0))).unwrap().after, Some(0));
    }

    #[test]
    fn text_that_is_not_a_cursor_of_this_list_is_refused() {
        for text in ["", "42", "not base64!", "bm90IGpzb24", "\u{0}"] {
            assert!(refused(10, Some(text)).contains("after"), "{text:?}");
        }
    }

    #[test]
    fn a_bad_first_is_reported_before_a_bad_cursor() {
        assert!(refused(0, Some("garbage")).contains("first"));
    }
}
