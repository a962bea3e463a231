//! Infrastructure shared by the domains: the database (connection, write transactions with retry,
//! backend quirks), the write helper every use case runs in ([`transact`]), group commit, Redis,
//! read replicas, the event bus, idempotency keys, writes sent together ([`writes`]), the
//! open-file limit and the names of our metrics.

pub mod batching;
pub mod bus;
pub mod db;
pub mod files;
pub mod idempotency;
pub mod locking;
pub mod meters;
pub mod paging;
pub mod redis;
pub mod replicas;
pub mod transact;
pub mod writes;
