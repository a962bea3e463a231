//! The Redis connection: one multiplexed `ConnectionManager` that reconnects by itself.

use redis::aio::ConnectionManager;

pub use redis::RedisError;

/// Opens the shared connection; fails at start-up when Redis cannot be reached.
pub async fn connect(url: &str) -> Result<ConnectionManager, RedisError> {
    let client = redis::Client::open(url)?;
    ConnectionManager::new(client).await
}

/// Answers when Redis takes a PING.
pub async fn ping(conn: &ConnectionManager) -> Result<(), RedisError> {
    let mut conn = conn.clone();
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map(|_| ())
}
