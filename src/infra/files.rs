//! The process's open-file limit. Every WebSocket listener, HTTP connection and database
//! connection is a file; Linux services often start with a soft limit of 1,024 while their hard
//! limit allows far more, so the server raises its soft limit to the hard one at start (as Go's
//! runtime and nginx's `worker_rlimit_nofile` do), and WebSocket upgrades are capped below what
//! is left (a 503 to the client rather than `EMFILE` for every socket, the database's included).

/// Files kept for everything but WebSocket listeners: database and Redis connections, HTTP
/// requests, log and data files.
pub const RESERVED_FILES: u64 = 1_000;

/// Raises the soft open-file limit to the hard one; returns the soft limit in force afterwards
/// (`None` where it cannot be read).
pub fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct handed to them
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above; a refusal (e.g. macOS above OPEN_MAX) leaves the limit as it was
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    Some(limit.rlim_cur)
}

/// The WebSocket connections the server accepts: `configured` (WS_MAX_CONNECTIONS), or fewer
/// where the open-file limit would run out first.
pub fn websocket_cap(configured: u64, open_files: Option<u64>) -> u64 {
    match open_files {
        Some(files) => configured.min(files.saturating_sub(RESERVED_FILES).max(1)),
        None => configured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websockets_are_capped_below_the_open_file_limit() {
        assert_eq!(websocket_cap(20_000, Some(1_048_576)), 20_000);
        assert_eq!(websocket_cap(20_000, Some(20_000)), 19_000);
        assert_eq!(websocket_cap(20_000, Some(1_024)), 24);
        assert_eq!(websocket_cap(20_000, Some(500)), 1);
        assert_eq!(websocket_cap(20_000, None), 20_000);
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let limit = raise_open_file_limit().expect("the limit can be read");
        let mut now = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: reads into the struct
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut now) }, 0);
        assert_eq!((limit, now.rlim_cur), (now.rlim_max, now.rlim_max));
    }
}
