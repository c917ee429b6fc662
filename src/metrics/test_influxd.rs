//! A real influxd for tests: started on a free loopback port with a temporary data dir,
//! configured from `scripts/influxdb.conf.template` (the same file `scripts/influxdb.sh`
//! renders), and killed when the guard drops.
//!
//! Compiled into the library (not only under `cfg(test)`) so the integration tests in
//! `tests/` can start one too; hence std only, no dev-dependencies.
//!
//! A missing influxd fails the test: summaries are only worth testing against the real
//! thing, and a silent skip would let CI pass without it.

use std::{
    fs::File,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use super::influx::InfluxClient;

const CONFIG_TEMPLATE: &str = include_str!("../../scripts/influxdb.conf.template");
const INSTALL_HINT: &str =
    "install influxdb (apt-get install -y influxdb or scripts/influxdb.sh ensure-installed)";
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Another test may grab the port between our probe and influxd's bind.
const START_ATTEMPTS: usize = 5;

/// A running influxd, killed (and its data dir removed) on drop.
pub struct InfluxServer {
    child: Child,
    port: u16,
    http: reqwest::Client,
    data_dir: PathBuf,
}

impl InfluxServer {
    /// Starts influxd and waits until `/ping` answers 204. Panics with the log on failure,
    /// and with how to install it when `influxd` is not on PATH.
    pub async fn start() -> Self {
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let data_dir = fresh_data_dir();
            let port = free_port_pair();
            let log_path = data_dir.join("influxd.log");
            let child = spawn_influxd(&data_dir, port, &log_path);
            let mut server = Self { child, port, http: crate::tls::client(), data_dir };
            if server.wait_until_up().await {
                return server;
            }
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if !last_log.contains("address already in use") {
                break;
            }
        }
        panic!("influxd did not answer /ping within {START_TIMEOUT:?}; its log:\n{last_log}");
    }

    /// The HTTP API's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The influxd process id (to freeze it with SIGSTOP and thaw it with SIGCONT).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A client for `database` on this server.
    pub fn client(&self, database: &str) -> InfluxClient {
        InfluxClient::new(self.http.clone(), self.base_url(), database)
    }

    /// Writes line-protocol `lines` with millisecond timestamps (k6 itself writes ns).
    pub async fn write(&self, database: &str, lines: &str) {
        let url = format!("{}/write?db={database}&precision=ms", self.base_url());
        let response = self.http.post(url).body(lines.to_owned()).send().await.expect("POST /write");
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(status.as_u16(), 204, "write refused: {body}");
    }

    /// Kills influxd, keeping its data: InfluxDB is down until [`InfluxServer::restart`].
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts influxd again on the same port and data (after [`InfluxServer::stop`]).
    pub async fn restart(&mut self) {
        let log_path = self.data_dir.join("influxd-restarted.log");
        self.child = spawn_influxd(&self.data_dir, self.port, &log_path);
        if !self.wait_until_up().await {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("influxd did not come back on port {}; its log:\n{log}", self.port);
        }
    }

    async fn wait_until_up(&mut self) -> bool {
        let client = self.client("_");
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if client.ping().await {
                return true;
            }
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

impl Drop for InfluxServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Renders the config into `data_dir` and starts influxd with its output in `log_path`.
fn spawn_influxd(data_dir: &Path, port: u16, log_path: &Path) -> Child {
    let config_path = data_dir.join("influxdb.conf");
    let config = CONFIG_TEMPLATE
        .replace("@PORT@", &port.to_string())
        .replace("@RPC_PORT@", &(port + 2).to_string())
        .replace("@DATA_DIR@", &data_dir.display().to_string());
    std::fs::write(&config_path, config).expect("write influxdb.conf");
    let log = File::create(log_path).expect("create influxd.log");
    let spawned = Command::new("influxd")
        .arg("-config")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone the log handle"))
        .stderr(log)
        .spawn();
    match spawned {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            panic!("influxd is not on PATH: {INSTALL_HINT}")
        }
        Err(error) => panic!("could not start influxd ({error}): {INSTALL_HINT}"),
    }
}

/// A new, empty directory under the system's temp dir, unique to this process and call.
fn fresh_data_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    loop {
        let name =
            format!("metric-vault-influxd-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let dir = std::env::temp_dir().join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return dir,
            // Left over from an earlier process with the same id: take the next name.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => panic!("could not create {}: {error}", dir.display()),
        }
    }
}

/// A loopback port that is free, and whose `+ 2` (influxd's RPC bind) is free too.
fn free_port_pair() -> u16 {
    loop {
        let http = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = http.local_addr().expect("local address").port();
        if port < u16::MAX - 2 && TcpListener::bind(("127.0.0.1", port + 2)).is_ok() {
            return port;
        }
    }
}
