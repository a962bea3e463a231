//! What a test starts besides its server and must not leave behind: a Redis server, a Redis
//! Cluster or a PostgreSQL server of its own (that it may stop and start again), the `commerce`
//! binary as a separate process (that it may SIGKILL), and the mock data platform. Each holds a
//! [`ProcessGuard`], the one thing that stops them, whatever way the test ends.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use commerce::config::Settings;
use serde_json::Value;

use super::server::TestServer;

/// Something a test started that must not outlive it, stopped once: by [`ProcessGuard::stop`],
/// or when dropped (also when the test panics).
#[derive(Default)]
pub struct ProcessGuard {
    running: Option<Running>,
}

enum Running {
    /// A child process: killed (SIGKILL) and reaped.
    Child(Child),
    /// A task of this process: aborted.
    Task(tokio::task::AbortHandle),
    /// A daemon this process does not parent (`pg_ctl` starts PostgreSQL): its stop command.
    Daemon(Box<dyn FnOnce() + Send + Sync>),
}

impl ProcessGuard {
    pub fn child(child: Child) -> Self {
        Self {
            running: Some(Running::Child(child)),
        }
    }

    pub fn task<T>(task: tokio::task::JoinHandle<T>) -> Self {
        Self {
            running: Some(Running::Task(task.abort_handle())),
        }
    }

    pub fn daemon(stop: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self {
            running: Some(Running::Daemon(Box::new(stop))),
        }
    }

    /// The child's process id (`None` for anything else, or once stopped).
    pub fn pid(&self) -> Option<u32> {
        match &self.running {
            Some(Running::Child(child)) => Some(child.id()),
            _ => None,
        }
    }

    /// True until stopped (for a child: until it exits).
    pub fn is_running(&mut self) -> bool {
        match &mut self.running {
            None => false,
            Some(Running::Child(child)) => matches!(child.try_wait(), Ok(None)),
            Some(Running::Task(task)) => !task.is_finished(),
            Some(Running::Daemon(_)) => true,
        }
    }

    /// Stops it at once, like a crash: nothing is flushed. Stopping twice does nothing.
    pub fn stop(&mut self) {
        match self.running.take() {
            None => {}
            Some(Running::Child(mut child)) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Some(Running::Task(task)) => task.abort(),
            Some(Running::Daemon(stop)) => stop(),
        }
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port nobody listens on right now.
fn spare_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a spare port")
}

/// A Redis server of the test's own, on a spare port, that the test may stop and start again
/// (never the shared one other tests use). Killed when dropped.
pub struct PrivateRedis {
    pub port: u16,
    process: ProcessGuard,
}

impl PrivateRedis {
    pub async fn start() -> Self {
        let mut redis = Self {
            port: spare_port(),
            process: ProcessGuard::default(),
        };
        redis.resume().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and waits until it answers.
    pub async fn resume(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.process = ProcessGuard::child(child);
        wait_until_listening(self.port, "the private redis-server").await;
    }

    /// Kills it (like a crash: nothing is kept).
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// SIGSTOP: Redis hangs, connections stay open, nothing answers (a stalled server).
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`PrivateRedis::freeze`]: it answers everything that waited, in order.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.process.pid().expect("the private redis-server runs");
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {pid}");
    }
}

/// A Redis Cluster of the test's own: three masters without replicas on spare ports, the slots
/// spread over them by `redis-cli --cluster create`, their files in a directory of their own.
/// Killed and removed when dropped.
pub struct PrivateRedisCluster {
    pub ports: Vec<u16>,
    dir: PathBuf,
    nodes: Vec<ProcessGuard>,
}

impl PrivateRedisCluster {
    const MASTERS: usize = 3;

    /// Starts the nodes, creates the cluster and waits until every node says `cluster_state:ok`.
    pub async fn start() -> Self {
        // a node's cluster bus needs a port too (by default port + 10000, often above 65535)
        let mut ports: Vec<u16> = Vec::new();
        while ports.len() < 2 * Self::MASTERS {
            let port = spare_port();
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        let bus_ports = ports.split_off(Self::MASTERS);
        let dir = std::env::temp_dir().join(format!(
            "commerce-redis-cluster-{}-{}",
            std::process::id(),
            ports[0]
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory for the cluster's files");
        let mut cluster = Self {
            ports,
            dir,
            nodes: Vec::new(),
        };
        for (port, bus_port) in cluster.ports.clone().into_iter().zip(bus_ports) {
            let (port, bus_port) = (port.to_string(), bus_port.to_string());
            let child = Command::new("redis-server")
                .args(["--cluster-enabled", "yes", "--port", &port])
                .args(["--cluster-port", &bus_port, "--bind", "127.0.0.1"])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    text(&cluster.dir),
                ])
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server is installed");
            cluster.nodes.push(ProcessGuard::child(child));
        }
        for &port in &cluster.ports {
            wait_until_listening(port, "a redis-server of the cluster").await;
        }
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(cluster.ports.iter().map(|port| format!("127.0.0.1:{port}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .status();
        assert!(
            created.is_ok_and(|s| s.success()),
            "redis-cli --cluster create failed"
        );
        for _ in 0..200 {
            let mut ok = 0;
            for &port in &cluster.ports {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut cluster.node(port).await)
                    .await
                    .expect("CLUSTER INFO");
                ok += usize::from(info.contains("cluster_state:ok"));
            }
            if ok == cluster.ports.len() {
                return cluster;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the private Redis Cluster never reached cluster_state:ok");
    }

    /// `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// A plain connection to the node on `port` (it answers for its own keys only).
    pub async fn node(&self, port: u16) -> redis::aio::MultiplexedConnection {
        redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .expect("a node URL")
            .get_multiplexed_async_connection()
            .await
            .expect("the cluster node answers")
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`).
    pub async fn keyslot(&self, key: &str) -> u16 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut self.node(self.ports[0]).await)
            .await
            .expect("CLUSTER KEYSLOT")
    }

    /// The keys matching `pattern` each node holds, by port.
    pub async fn keys_by_node(&self, pattern: &str) -> Vec<(u16, Vec<String>)> {
        let mut found = Vec::new();
        for &port in &self.ports {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query_async(&mut self.node(port).await)
                .await
                .expect("KEYS");
            found.push((port, keys));
        }
        found
    }
}

impl Drop for PrivateRedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until something accepts connections on `port`.
async fn wait_until_listening(port: u16, what: &str) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not start on port {port}");
}

/// The mock data platform (the `data-platform` crate), run in-process on a spare port; stopped
/// when dropped.
pub struct MockPlatform {
    pub base: String,
    http: reqwest::Client,
    _task: ProcessGuard,
}

impl MockPlatform {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a spare port");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        let task = tokio::spawn(data_platform::serve(listener));
        Self {
            base,
            http: reqwest::Client::new(),
            _task: ProcessGuard::task(task),
        }
    }

    /// The URL the server delivers to.
    pub fn events_url(&self) -> String {
        format!("{}/events", self.base)
    }

    /// Changes how the mock answers (see the `data-platform` crate).
    pub async fn control(&self, behaviour: Value) {
        let response = self
            .http
            .post(format!("{}/control", self.base))
            .json(&behaviour)
            .send()
            .await
            .expect("the mock answers");
        assert!(response.status().is_success());
    }

    /// `{ events, calls, duplicates, overlaps }`.
    pub async fn received(&self) -> Value {
        self.http
            .get(self.events_url())
            .send()
            .await
            .expect("the mock answers")
            .json()
            .await
            .expect("JSON")
    }

    /// Waits until the mock holds `count` unique events; returns what it received.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            let received = self.received().await;
            let have = received["events"].as_array().map_or(0, Vec::len);
            if have >= count {
                return received;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the platform got {have} of {count} events: {}",
                received["calls"]
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// The `commerce` binary running as a separate process (killed when dropped), so a test can
/// SIGKILL it or run two of them; what it logs (at `warn` and above) is kept in a file.
pub struct ServerProcess {
    process: ProcessGuard,
    pub base: String,
    env: Vec<(String, String)>,
    log: PathBuf,
    /// The open-file limit (soft, hard) it starts with; `None`: this process's own.
    open_files: Option<(u64, u64)>,
}

impl ServerProcess {
    /// Starts `commerce serve` with `settings` (the fields tests set) on a spare port, and
    /// returns it with a [`TestServer`] that talks to it.
    pub async fn start(backend: &'static str, settings: &Settings) -> (Self, TestServer) {
        let port = spare_port();
        let mut env = vec![
            ("DATABASE_URL", settings.database.database_url().to_owned()),
            ("BIND", format!("127.0.0.1:{port}")),
            ("REDIS_KEY_PREFIX", settings.redis.redis_key_prefix.clone()),
            (
                "RANKING_REFRESH_MS",
                settings.ranking.ranking_refresh_ms.to_string(),
            ),
            (
                "OUTBOX_RETRY_BASE_MS",
                settings.outbox.outbox_retry_base_ms.to_string(),
            ),
            (
                "OUTBOX_RETRY_MAX_MS",
                settings.outbox.outbox_retry_max_ms.to_string(),
            ),
            ("OUTBOX_POLL_MS", settings.outbox.outbox_poll_ms.to_string()),
            (
                "OUTBOX_TIMEOUT_MS",
                settings.outbox.outbox_timeout_ms.to_string(),
            ),
            (
                "OUTBOX_BREAKER_THRESHOLD",
                settings.outbox.outbox_breaker_threshold.to_string(),
            ),
            (
                "OUTBOX_BREAKER_COOLDOWN_MS",
                settings.outbox.outbox_breaker_cooldown_ms.to_string(),
            ),
            (
                "RATE_LIMIT_USER_PER_SEC",
                settings.limits.rate_limit_user_per_sec.to_string(),
            ),
            ("RUST_LOG", "warn".to_owned()),
        ];
        if let Some(url) = &settings.redis.redis_url {
            env.push(("REDIS_URL", url.clone()));
        }
        if let Some(url) = &settings.outbox.data_platform_url {
            env.push(("DATA_PLATFORM_URL", url.clone()));
        }
        let mut process = Self {
            process: ProcessGuard::default(),
            base: format!("http://127.0.0.1:{port}"),
            env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            log: std::env::temp_dir()
                .join(format!("commerce-server-{}-{port}.log", std::process::id())),
            open_files: None,
        };
        process.resume().await;
        let server = TestServer::attach(backend, settings.clone(), &process.base).await;
        (process, server)
    }

    /// Starts the process (again) and waits until it answers `/healthz`; its log starts over.
    pub async fn resume(&mut self) {
        let log = std::fs::File::create(&self.log).expect("a log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_commerce"));
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(log);
        if let Some((soft, hard)) = self.open_files {
            let limit = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            // SAFETY: only setrlimit runs between fork and exec
            unsafe {
                command.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let child = command.spawn().expect("the commerce binary starts");
        self.process = ProcessGuard::child(child);
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(response) = client.get(format!("{}/healthz", self.base)).send().await
                && response.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server process did not come up at {}", self.base);
    }

    /// Sets the open-file limit (soft, hard) of the next [`ServerProcess::resume`].
    pub fn set_open_file_limit(&mut self, soft: u64, hard: u64) {
        self.open_files = Some((soft, hard));
    }

    /// Sets an environment variable for the next [`ServerProcess::resume`].
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// What the process has logged since it was last started.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many files (sockets included) the process has open (from `/proc`).
    pub fn open_files(&self) -> usize {
        let pid = self.process.pid().expect("the process runs");
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("/proc")
            .count()
    }

    /// The process's resident memory, in KiB (from `/proc`).
    pub fn resident_kib(&self) -> u64 {
        let pid = self.process.pid().expect("the process runs");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// SIGKILL: no shutdown, no flush, nothing.
    pub fn kill(&mut self) {
        self.process.stop();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.process.stop();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A PostgreSQL server of the test's own (initdb on a spare port), that the test may stop and
/// start again; stopped and removed when dropped.
pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    /// `-c` settings of its own (a replica's apply delay).
    settings: String,
    _server: ProcessGuard,
}

impl PrivatePostgres {
    pub async fn start() -> Self {
        Self::start_in(&std::env::temp_dir()).await
    }

    /// A server whose files (data directory, WAL, log) all live under `base`.
    pub async fn start_in(base: &Path) -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed under /usr/lib/postgresql")
            .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
            .find(|bin| bin.join("initdb").exists())
            .expect("initdb");
        let postgres = Self::prepare(base, bin, String::new(), |bin, data| {
            vec![
                text(&bin.join("initdb")).to_owned(),
                "-D".into(),
                text(data).to_owned(),
                "-A".into(),
                "trust".into(),
                "-U".into(),
                "postgres".into(),
            ]
        });
        postgres.resume().await;
        postgres
    }

    /// A streaming standby of this server (`pg_basebackup -R`) on a port of its own, applying
    /// each commit `apply_delay` late (`recovery_min_apply_delay`); read-only, as replicas are.
    pub async fn start_replica(&self, apply_delay: Duration) -> Self {
        let primary_port = self.port.to_string();
        let settings = format!(" -c recovery_min_apply_delay={}ms", apply_delay.as_millis());
        let replica = Self::prepare(
            &std::env::temp_dir(),
            self.bin.clone(),
            settings,
            |bin, data| {
                [
                    text(&bin.join("pg_basebackup")),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &primary_port,
                    "-U",
                    "postgres",
                    "-D",
                    text(data),
                    "-R",
                    "-X",
                    "stream",
                    "--checkpoint=fast",
                ]
                .map(str::to_owned)
                .to_vec()
            },
        );
        replica.resume().await;
        replica
    }

    /// A data directory under `base` made by `make(bin, data)` (run as the postgres user) on a
    /// spare port, removed with the server when dropped.
    fn prepare(
        base: &Path,
        bin: PathBuf,
        settings: String,
        make: impl FnOnce(&Path, &Path) -> Vec<String>,
    ) -> Self {
        let port = spare_port();
        let dir = base.join(format!("commerce-pg-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a data directory");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres", text(&dir)])
                .status();
            assert!(status.is_ok_and(|s| s.success()), "chown {dir:?} failed");
        }
        let command = make(&bin, &dir.join("data"));
        let command: Vec<&str> = command.iter().map(String::as_str).collect();
        assert!(as_postgres(&command, false), "{command:?} failed");
        let server = ProcessGuard::daemon({
            let (pg_ctl, dir) = (bin.join("pg_ctl"), dir.clone());
            move || {
                // stopped by the test already, or not: either way nothing is left behind
                pg_ctl_as_postgres(&pg_ctl, &dir, &["-m", "immediate", "stop"], true);
                let _ = std::fs::remove_dir_all(&dir);
            }
        });
        Self {
            port,
            dir,
            bin,
            settings,
            _server: server,
        }
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a database on it; returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        let admin = sea_orm::Database::connect(self.url("postgres"))
            .await
            .expect("private PostgreSQL");
        sea_orm::ConnectionTrait::execute_unprepared(&admin, &format!("CREATE DATABASE {name}"))
            .await
            .expect("database");
        admin.close().await.ok();
        self.url(name)
    }

    /// Waits until `replica` has replayed every commit this server made so far.
    pub async fn wait_for_replay(&self, replica: &PrivatePostgres, within: Duration) {
        let lsn = |url: String, sql: &'static str| async move {
            let conn = sea_orm::Database::connect(url)
                .await
                .expect("private PostgreSQL");
            let row = sea_orm::ConnectionTrait::query_one_raw(
                &conn,
                sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, sql),
            )
            .await
            .expect("WAL position")
            .expect("one row");
            conn.close().await.ok();
            row.try_get_by_index::<i64>(0).expect("a position")
        };
        let written = lsn(
            self.url("postgres"),
            "SELECT (pg_current_wal_lsn() - '0/0')::bigint",
        )
        .await;
        let began = std::time::Instant::now();
        while lsn(
            replica.url("postgres"),
            "SELECT (pg_last_wal_replay_lsn() - '0/0')::bigint",
        )
        .await
            < written
        {
            assert!(began.elapsed() < within, "the replica replayed in time");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// Starts (again) and waits until it answers.
    pub async fn resume(&self) {
        self.start_now();
    }

    fn start_now(&self) {
        let log = self.dir.join("log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off{}",
            self.port,
            self.dir.display(),
            self.settings
        );
        self.pg_ctl(&["-l", text(&log), "-o", &options, "-w", "start"]);
    }

    /// Stops as an operator's restart does (`-m fast`): sessions are terminated (57P01) and
    /// their transactions rolled back; then starts again. `pg_ctl` blocks: the runtime's other
    /// tasks move to other threads meanwhile (multi-thread runtimes only).
    pub async fn restart(&self) {
        tokio::task::block_in_place(|| {
            self.pg_ctl(&["-m", "fast", "-w", "stop"]);
            self.start_now();
        });
    }

    /// Stops at once, like a crash (`-m immediate`).
    pub fn stop(&self) {
        self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
    }

    /// Stops every process of the server in its tracks (SIGSTOP): connections stay open and
    /// nothing answers, as behind a network that went silent. [`Self::thaw`] resumes them.
    pub fn freeze(&self) {
        self.signal_all("-STOP");
    }

    pub fn thaw(&self) {
        self.signal_all("-CONT");
    }

    /// Sends `signal` to the postmaster (its pid is the first line of `postmaster.pid`) and to
    /// every process it started.
    fn signal_all(&self, signal: &str) {
        let pid_file = std::fs::read_to_string(self.dir.join("data").join("postmaster.pid"))
            .expect("a running server has postmaster.pid");
        let pid = pid_file
            .lines()
            .next()
            .expect("the postmaster's pid")
            .trim();
        for (command, target) in [("pkill", ["-P", pid]), ("kill", ["--", pid])] {
            let sent = std::process::Command::new(command)
                .arg(signal)
                .args(target)
                .status()
                .expect("signals can be sent");
            assert!(sent.success(), "{command} {signal} {target:?}");
        }
    }

    fn pg_ctl(&self, args: &[&str]) {
        assert!(
            pg_ctl_as_postgres(&self.bin.join("pg_ctl"), &self.dir, args, false),
            "pg_ctl {args:?} failed"
        );
    }
}

fn text(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// `pg_ctl -D DIR/data ARGS` as the `postgres` user when we are root; true when it succeeded.
fn pg_ctl_as_postgres(pg_ctl: &Path, dir: &Path, args: &[&str], quiet: bool) -> bool {
    let data = dir.join("data");
    let mut command = vec![text(pg_ctl), "-D", text(&data)];
    command.extend_from_slice(args);
    as_postgres(&command, quiet)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a command as the `postgres` user when we are root (initdb refuses root), its output
/// discarded (`quiet`: its errors too); true when it succeeded.
fn as_postgres(command: &[&str], quiet: bool) -> bool {
    let mut process = if is_root() {
        let mut runuser = Command::new("runuser");
        runuser.args(["-u", "postgres", "--"]).args(command);
        runuser
    } else {
        let mut direct = Command::new(command[0]);
        direct.args(&command[1..]);
        direct
    };
    process.stdout(Stdio::null());
    if quiet {
        process.stderr(Stdio::null());
    }
    process.status().is_ok_and(|s| s.success())
}

/// A small disk of the test's own (a tmpfs mounted on a fresh directory; the tests run as root),
/// that [`Self::fill`] fills up to a few bytes and [`Self::free`] frees again; unmounted when
/// dropped.
pub struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    pub fn mount(megabytes: u64) -> Self {
        let path = std::env::temp_dir().join(format!(
            "commerce-disk-{}-{}",
            std::process::id(),
            spare_port()
        ));
        std::fs::create_dir_all(&path).expect("a mount point");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m,mode=1777")])
            .args(["tmpfs", text(&path)])
            .status();
        assert!(
            mounted.is_ok_and(|s| s.success()),
            "mount a tmpfs on {path:?} (the tests run as root)"
        );
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes still free on it.
    pub fn available(&self) -> u64 {
        let output = Command::new("df")
            .args(["--output=avail", "-B1", text(&self.path)])
            .output()
            .expect("df runs");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .nth(1)
            .and_then(|line| line.trim().parse().ok())
            .expect("df prints the free bytes")
    }

    /// Takes all but `left` bytes of what is free with a ballast file.
    pub fn fill(&self, left: u64) {
        let take = self.available().saturating_sub(left);
        let status = Command::new("fallocate")
            .args(["-l", &take.to_string(), text(&self.ballast())])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "fallocate {take} bytes");
    }

    /// Frees what [`Self::fill`] took.
    pub fn free(&self) {
        std::fs::remove_file(self.ballast()).expect("the ballast file");
    }

    fn ballast(&self) -> PathBuf {
        self.path.join("ballast")
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .args(["-l", text(&self.path)])
            .status();
        let _ = std::fs::remove_dir(&self.path);
    }
}
