//! The Redis connection: one server or a Redis Cluster, chosen by `REDIS_URL`.
//!
//! [`RedisServers`] is what `REDIS_URL` names: a single `redis://` URL is one server; a
//! `redis+cluster://host:port,host:port,...` URL, or a comma-separated list of `redis://` URLs,
//! is the seed nodes of a cluster (the rest of the cluster is discovered from them).
//! [`RedisConnection`] is the shared multiplexed connection to either: a `ConnectionManager`
//! that reconnects by itself, or a cluster connection that routes every command to the node
//! owning its key's slot and follows the cluster's changes. Both are `ConnectionLike`, so
//! callers send commands, pipelines and scripts the same way; a script or pipeline must keep
//! all its keys in one hash slot (a `{hash tag}`) to work on a cluster.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::{TcpSettings, socket2};
use redis::{Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline, RedisFuture, Value};

pub use redis::RedisError;

/// Longest wait for an answer on the shared connection (a slow Redis is an error, not a stall).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

const CLUSTER_SCHEME: &str = "redis+cluster://";

/// The Redis servers `REDIS_URL` names.
#[derive(Clone, Debug)]
pub enum RedisServers {
    /// One server (`redis://host:port`).
    Single(redis::Client),
    /// The seed nodes of a Redis Cluster, in the order given.
    Cluster(Vec<redis::Client>),
}

impl std::str::FromStr for RedisServers {
    type Err = String;

    /// Parses `REDIS_URL`; the error says what is wrong and which forms are accepted.
    fn from_str(setting: &str) -> Result<Self, Self::Err> {
        let setting = setting.trim();
        let urls = match setting.strip_prefix(CLUSTER_SCHEME) {
            Some(rest) => cluster_urls(rest)?,
            None => setting
                .split(',')
                .map(|url| url.trim().to_owned())
                .collect(),
        };
        let mut nodes = urls
            .iter()
            .map(|url| node(url))
            .collect::<Result<Vec<_>, _>>()?;
        if nodes.len() == 1 && !setting.starts_with(CLUSTER_SCHEME) {
            Ok(RedisServers::Single(nodes.remove(0)))
        } else {
            Ok(RedisServers::Cluster(nodes))
        }
    }
}

/// `[userinfo@]h1:p1,h2:p2[/db][?query]` (after `redis+cluster://`): one `redis://` URL per
/// node, each with the userinfo and the path of the whole.
fn cluster_urls(rest: &str) -> Result<Vec<String>, String> {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
        None => (String::new(), authority),
    };
    hosts
        .split(',')
        .map(str::trim)
        .map(|host| {
            if host.is_empty() {
                Err(format!(
                    "{CLUSTER_SCHEME} needs host:port of at least one node, comma-separated, \
                     e.g. {CLUSTER_SCHEME}10.0.0.1:6379,10.0.0.2:6379"
                ))
            } else {
                Ok(format!("redis://{userinfo}{host}{tail}"))
            }
        })
        .collect()
}

/// One node's URL, checked as the Redis client reads it.
fn node(url: &str) -> Result<redis::Client, String> {
    let accepted = "give redis://host:port, or a Redis Cluster as \
                    redis+cluster://host:port,host:port or a comma-separated list of redis:// URLs";
    if url.starts_with("rediss://") {
        return Err(format!(
            "TLS (rediss://) is not supported by this build; {accepted}"
        ));
    }
    if !url.starts_with("redis://") {
        return Err(format!("{url:?} is not a redis:// URL; {accepted}"));
    }
    let info = url
        .into_connection_info()
        .map_err(|err| format!("{url:?}: {err}; {accepted}"))?;
    match info.addr() {
        ConnectionAddr::Tcp(host, _) if !host.is_empty() => {
            let info = info.set_tcp_settings(tcp_settings());
            redis::Client::open(info).map_err(|err| format!("{url:?}: {err}"))
        }
        _ => Err(format!("{url:?} names no host; {accepted}")),
    }
}

/// How every connection to Redis uses TCP: no Nagle delay on small commands, and a peer gone
/// silent (packets dropped, not refused) noticed by the kernel within about half a minute
/// (keepalive probes after 10 s idle, every 5 s, 3 of them; unacknowledged writes given up after
/// 30 s) instead of TCP's default of minutes to hours; the connection manager then reconnects.
fn tcp_settings() -> TcpSettings {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(5))
        .with_retries(3);
    let settings = TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive);
    #[cfg(target_os = "linux")]
    let settings = settings.set_user_timeout(Duration::from_secs(30));
    settings
}

impl RedisServers {
    /// Opens a shared connection; fails at start-up when Redis cannot be reached.
    /// `response_timeout`: the longest wait for an answer (`None`: as long as it takes).
    pub async fn connect(
        &self,
        response_timeout: Option<Duration>,
    ) -> Result<RedisConnection, RedisError> {
        match self {
            RedisServers::Single(client) => {
                let config = ConnectionManagerConfig::new().set_response_timeout(response_timeout);
                Ok(RedisConnection::Single(
                    ConnectionManager::new_with_config(client.clone(), config).await?,
                ))
            }
            RedisServers::Cluster(seeds) => {
                let mut builder = ClusterClientBuilder::new(
                    seeds.iter().map(|seed| seed.get_connection_info().clone()),
                );
                builder = builder.tcp_settings(tcp_settings());
                if let Some(timeout) = response_timeout {
                    builder = builder.response_timeout(timeout);
                }
                let connection = builder.build()?.get_async_connection().await?;
                Ok(RedisConnection::Cluster(connection))
            }
        }
    }

    /// The nodes to SUBSCRIBE on, in the order to try them: the server, or the seed nodes of a
    /// cluster (a PUBLISH reaches the subscribers of every node of a cluster).
    pub fn subscription_nodes(&self) -> &[redis::Client] {
        match self {
            RedisServers::Single(client) => std::slice::from_ref(client),
            RedisServers::Cluster(seeds) => seeds,
        }
    }
}

/// A multiplexed connection to one server or to a cluster; clones share it.
#[derive(Clone)]
pub enum RedisConnection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConnection::Single(conn) => conn.req_packed_command(cmd),
            RedisConnection::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            RedisConnection::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Single(conn) => conn.get_db(),
            RedisConnection::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Answers when Redis (every primary of a cluster) takes a PING.
pub async fn ping(conn: &RedisConnection) -> Result<(), RedisError> {
    let mut conn = conn.clone();
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(servers: &RedisServers) -> Vec<String> {
        let nodes = servers
            .subscription_nodes()
            .iter()
            .map(|node| node.get_connection_info().addr().to_string());
        match servers {
            RedisServers::Single(_) => nodes.map(|node| format!("single {node}")).collect(),
            RedisServers::Cluster(_) => nodes.collect(),
        }
    }

    #[test]
    fn one_url_is_a_single_server_and_lists_are_clusters() {
        let single: RedisServers = "redis://127.0.0.1:6379".parse().unwrap();
        assert_eq!(addresses(&single), ["single 127.0.0.1:6379"]);
        let cluster: RedisServers = "redis+cluster://10.0.0.1:7000, 10.0.0.2:7001"
            .parse()
            .unwrap();
        assert_eq!(addresses(&cluster), ["10.0.0.1:7000", "10.0.0.2:7001"]);
        let one_seed: RedisServers = "redis+cluster://10.0.0.1:7000".parse().unwrap();
        assert_eq!(addresses(&one_seed), ["10.0.0.1:7000"]);
        let list: RedisServers = "redis://a:7000,redis://b:7001".parse().unwrap();
        assert_eq!(addresses(&list), ["a:7000", "b:7001"]);
    }

    #[test]
    fn credentials_and_database_of_a_cluster_url_apply_to_every_seed() {
        let RedisServers::Cluster(seeds) = "redis+cluster://user:secret@a:7000,b:7001/0"
            .parse()
            .unwrap()
        else {
            panic!("a cluster");
        };
        for seed in &seeds {
            let settings = seed.get_connection_info().redis_settings();
            assert_eq!(settings.username(), Some("user"));
            assert_eq!(settings.password(), Some("secret"));
        }
    }

    #[test]
    fn bad_urls_are_refused_with_the_accepted_forms() {
        for bad in [
            "http://127.0.0.1:6379",
            "redis+cluster://",
            "redis+cluster://a:7000,,b:7001",
            "redis://a:7000,http://b:7001",
            "rediss://127.0.0.1:6379",
            "redis://127.0.0.1:notaport",
        ] {
            let err = bad.parse::<RedisServers>().unwrap_err();
            assert!(err.contains("redis+cluster://"), "{bad}: {err}");
        }
    }
}
