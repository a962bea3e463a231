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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(first: u64) -> PageRequest {
        PageRequest { first, after: None }
    }

    #[test]
    fn the_extra_row_says_there_is_a_next_page_and_is_not_shown() {
        let page = Page::from_overfetch(vec![1, 2, 3, 4], request(3), 10);
        assert_eq!(page.items, vec![1, 2, 3]);
        assert!(page.has_next_page);
        assert_eq!(page.total_count, 10);
    }

    #[test]
    fn a_full_last_page_has_no_next_page() {
        let page = Page::from_overfetch(vec![1, 2, 3], request(3), 3);
        assert_eq!(page.items, vec![1, 2, 3]);
        assert!(!page.has_next_page);
    }

    #[test]
    fn a_short_or_empty_page_has_no_next_page() {
        let short = Page::from_overfetch(vec![1], request(3), 1);
        assert_eq!((short.items, short.has_next_page), (vec![1], false));
        let empty = Page::<i64>::from_overfetch(vec![], request(3), 0);
        assert!(empty.items.is_empty() && !empty.has_next_page);
    }

    #[test]
    fn a_page_of_one_and_the_largest_page() {
        let one = Page::from_overfetch(vec![7, 8], request(1), 2);
        assert_eq!((one.items, one.has_next_page), (vec![7], true));
        let rows: Vec<u32> = (0..101).collect();
        let largest = Page::from_overfetch(rows, request(100), 101);
        assert_eq!(largest.items.len(), 100);
        assert!(largest.has_next_page);
    }
}
