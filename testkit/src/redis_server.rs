//! Real `redis-server` processes on free ports.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer PING after it is spawned.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A `redis-server` on 127.0.0.1 with its own temporary directory, killed
/// when dropped. No persistence: a restart starts empty.
pub struct RedisServer {
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
    /// Starts a server on a free port.
    pub fn start() -> Self {
        Self::start_with_args(&[])
    }

    /// Starts a server with extra arguments (e.g. `["--requirepass", "s3cret"]`).
    pub fn start_with_args(args: &[&str]) -> Self {
        Self::start_on(free_port(), args)
    }

    /// Starts a server on a given port.
    pub fn start_on(port: u16, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory for redis-server");
        let mut server = Self {
            port,
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            dir,
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
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
            .expect("redis-server must be installed (apt-get install redis-server, or `make up`)");
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
                panic!("redis-server on port {} exited at start: {status}", self.port);
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
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

/// Three `redis-server --cluster-enabled yes` masters with all 16384 slots
/// assigned, killed on drop.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts a three-master cluster and waits until it reports `cluster_state:ok`.
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| RedisServer::start_with_args(&["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"]))
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
