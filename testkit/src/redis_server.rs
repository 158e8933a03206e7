//! Real `redis-server` (or `valkey-server`) processes on free ports.

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer PING after it is spawned.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Names the variable that holds the path of the `valkey-server` binary.
/// `local/valkey.sh` installs Valkey and prints that path; `make test` and
/// `make bench` set the variable from it.
pub const VALKEY_SERVER_VAR: &str = "REGIS_VALKEY_SERVER";

/// A server engine that ElastiCache runs and the applier must work on.
///
/// Valkey speaks the same protocol and runs the same Lua as Redis 7, but it
/// is a separate code base: its scripting, `MEMORY USAGE` and expiry code
/// may differ, so the apply tests run against both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerEngine {
    /// `redis-server` from the system's packages (Redis 7.0 on Debian), found on `PATH`.
    Redis,
    /// `valkey-server` (Valkey 8.1), at the path in [`VALKEY_SERVER_VAR`].
    Valkey,
}

impl ServerEngine {
    /// Every engine, in a fixed order.
    pub const ALL: [ServerEngine; 2] = [ServerEngine::Redis, ServerEngine::Valkey];

    /// A short lowercase name (`redis`, `valkey`), for test and report names.
    pub fn name(self) -> &'static str {
        match self {
            ServerEngine::Redis => "redis",
            ServerEngine::Valkey => "valkey",
        }
    }

    /// The server binary to run.
    ///
    /// # Panics
    /// For Valkey, when [`VALKEY_SERVER_VAR`] is unset or names no file: a
    /// test on Valkey must not silently run on Redis instead.
    pub fn server_binary(self) -> OsString {
        match self {
            ServerEngine::Redis => "redis-server".into(),
            ServerEngine::Valkey => {
                let path = std::env::var_os(VALKEY_SERVER_VAR).unwrap_or_else(|| {
                    panic!(
                        "{VALKEY_SERVER_VAR} is not set: it must name the valkey-server binary \
                         (export {VALKEY_SERVER_VAR}=\"$(local/valkey.sh)\", which installs it; `make test` does this)"
                    )
                });
                assert!(
                    std::path::Path::new(&path).is_file(),
                    "{VALKEY_SERVER_VAR}={} names no file (run local/valkey.sh, which installs valkey-server and prints its path)",
                    path.to_string_lossy()
                );
                path
            }
        }
    }

    /// How to install it, for the message when it cannot be started.
    fn install_hint(self) -> &'static str {
        match self {
            ServerEngine::Redis => "redis-server must be installed (apt-get install redis-server, or `make up`)",
            ServerEngine::Valkey => "valkey-server could not be run (local/valkey.sh installs it)",
        }
    }
}

impl std::fmt::Display for ServerEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Runs tests written once on every [`ServerEngine`].
///
/// Each listed function takes the engine as its one argument (`async fn
/// name(on: ServerEngine)`, or a plain `fn` with `sync:`); the macro writes
/// one `#[tokio::test]` (or `#[test]`) per engine that calls it, in the
/// modules `on_redis` and `on_valkey`, so a failure names the engine
/// (`on_valkey::name`) and `cargo test on_redis::` runs one engine. A
/// function left out of the list is never called, which the compiler
/// reports as dead code.
///
/// ```ignore
/// async fn a_write_lands(on: ServerEngine) {
///     let server = RedisServer::start_engine(on);
///     // ...
/// }
/// regis_testkit::on_each_engine!(async: a_write_lands);
/// ```
#[macro_export]
macro_rules! on_each_engine {
    (async: $($name:ident),* $(,)?) => {
        $crate::on_each_engine!(@module on_redis, Redis, async, $($name),*);
        $crate::on_each_engine!(@module on_valkey, Valkey, async, $($name),*);
    };
    (sync: $($name:ident),* $(,)?) => {
        $crate::on_each_engine!(@module on_redis, Redis, sync, $($name),*);
        $crate::on_each_engine!(@module on_valkey, Valkey, sync, $($name),*);
    };
    (@module $module:ident, $engine:ident, async, $($name:ident),*) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::ServerEngine::$engine).await
                }
            )*
        }
    };
    (@module $module:ident, $engine:ident, sync, $($name:ident),*) => {
        mod $module {
            $(
                #[test]
                fn $name() {
                    super::$name($crate::ServerEngine::$engine)
                }
            )*
        }
    };
}

/// A `redis-server` (or `valkey-server`, see [`ServerEngine`]) on 127.0.0.1 with
/// its own temporary directory, killed when dropped. No persistence: a
/// restart starts empty.
pub struct RedisServer {
    engine: ServerEngine,
    port: u16,
    extra_args: Vec<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// A port the OS says is free right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

impl RedisServer {
    /// Starts a `redis-server` on a free port.
    pub fn start() -> Self {
        Self::start_engine(ServerEngine::Redis)
    }

    /// Starts a server of `engine` on a free port.
    pub fn start_engine(engine: ServerEngine) -> Self {
        Self::start_engine_with_args(engine, &[])
    }

    /// Starts a `redis-server` with extra arguments (e.g. `["--requirepass", "s3cret"]`).
    pub fn start_with_args(args: &[&str]) -> Self {
        Self::start_engine_with_args(ServerEngine::Redis, args)
    }

    /// Starts a server of `engine` with extra arguments.
    pub fn start_engine_with_args(engine: ServerEngine, args: &[&str]) -> Self {
        Self::start_engine_on(engine, free_port(), args)
    }

    /// Starts a `redis-server` on a given port.
    pub fn start_on(port: u16, args: &[&str]) -> Self {
        Self::start_engine_on(ServerEngine::Redis, port, args)
    }

    /// Starts a server of `engine` on a given port.
    pub fn start_engine_on(engine: ServerEngine, port: u16, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory for the server");
        let mut server = Self {
            engine,
            port,
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            dir,
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new(self.engine.server_binary())
            .arg("--port")
            .arg(self.port.to_string())
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", self.engine.install_hint()));
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("{}-server on port {} exited at start: {status}", self.engine, self.port);
            }
            assert!(
                Instant::now() < deadline,
                "{}-server on port {} did not start",
                self.engine,
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The engine it runs.
    pub fn engine(&self) -> ServerEngine {
        self.engine
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its working directory.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// A client for it.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("valid URL")
    }

    /// A synchronous connection (handy for assertions).
    pub fn connection(&self) -> redis::Connection {
        self.client()
            .get_connection()
            .expect("connect to the test redis-server")
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again, empty, on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Three `redis-server --cluster-enabled yes` masters (or `valkey-server`,
/// see [`ServerEngine`]) with all 16384 slots assigned, killed on drop.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts a three-master `redis-server` cluster and waits until it reports `cluster_state:ok`.
    pub fn start() -> Self {
        Self::start_engine(ServerEngine::Redis)
    }

    /// Starts a three-master cluster of `engine` and waits until it reports `cluster_state:ok`.
    pub fn start_engine(engine: ServerEngine) -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_engine_with_args(
                    engine,
                    &["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"],
                )
            })
            .collect();
        // Each node writes its cluster config file into its own directory.
        let per_node = 16384 / nodes.len();
        for (i, node) in nodes.iter().enumerate() {
            let mut con = node.connection();
            let first = i * per_node;
            let last = if i == nodes.len() - 1 {
                16383
            } else {
                first + per_node - 1
            };
            let slots: Vec<usize> = (first..=last).collect();
            redis::cmd("CLUSTER")
                .arg("ADDSLOTS")
                .arg(&slots)
                .exec(&mut con)
                .expect("CLUSTER ADDSLOTS");
        }
        let mut first = nodes[0].connection();
        for node in &nodes[1..] {
            redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(node.port())
                .exec(&mut first)
                .expect("CLUSTER MEET");
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &nodes {
            let mut con = node.connection();
            loop {
                let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut con).expect("CLUSTER INFO");
                let known = info
                    .lines()
                    .any(|l| l.trim() == format!("cluster_known_nodes:{}", nodes.len()));
                if info.contains("cluster_state:ok") && known {
                    break;
                }
                assert!(Instant::now() < deadline, "cluster did not converge: {info}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Self { nodes }
    }

    /// URLs of the nodes (any one is a valid seed).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// A cluster client for it.
    pub fn client(&self) -> redis::cluster::ClusterClient {
        redis::cluster::ClusterClient::new(self.urls()).expect("valid cluster URLs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_answers_and_restarts_empty() {
        let mut server = RedisServer::start();
        let mut con = server.connection();
        redis::cmd("SET").arg("k").arg("v").exec(&mut con).unwrap();
        server.restart();
        let mut con = server.connection();
        let v: Option<String> = redis::cmd("GET").arg("k").query(&mut con).unwrap();
        assert_eq!(v, None);
        server.stop();
        assert!(!server.is_running());
    }

    /// The engine a server says it is (`INFO server`) is the one asked
    /// for: a test "on Valkey" must not run on Redis by mistake.
    #[test]
    fn each_engine_runs_the_server_it_names() {
        for engine in ServerEngine::ALL {
            let server = RedisServer::start_engine(engine);
            let info: String = redis::cmd("INFO")
                .arg("server")
                .query(&mut server.connection())
                .unwrap();
            let is_valkey = info.lines().any(|l| l.starts_with("valkey_version:"));
            assert_eq!(is_valkey, engine == ServerEngine::Valkey, "{engine}: {info}");
            assert_eq!(server.engine(), engine);
        }
    }

    #[test]
    fn a_valkey_cluster_covers_every_slot() {
        let cluster = RedisCluster::start_engine(ServerEngine::Valkey);
        let mut con = cluster.client().get_connection().unwrap();
        redis::cmd("SET").arg("key7").arg(7).exec(&mut con).unwrap();
        let v: i64 = redis::cmd("GET").arg("key7").query(&mut con).unwrap();
        assert_eq!(v, 7);
    }

    #[test]
    fn cluster_covers_every_slot() {
        let cluster = RedisCluster::start();
        let mut con = cluster.client().get_connection().unwrap();
        for i in 0..50 {
            redis::cmd("SET").arg(format!("key{i}")).arg(i).exec(&mut con).unwrap();
        }
        let v: i64 = redis::cmd("GET").arg("key7").query(&mut con).unwrap();
        assert_eq!(v, 7);
    }
}
