//! A throwaway ClickHouse server for tests: `clickhouse-server` with a generated configuration in a
//! temporary directory (free loopback ports for HTTP and the native protocol, no interserver port, every
//! path below the directory, a `default` user without password), one fresh database per test.
//!
//! [`shared`] starts one server per test process and hands out databases; [`TestClickHouse::start`]
//! starts a private one a test may [`kill`](TestClickHouse::kill) with SIGKILL and
//! [`restart`](TestClickHouse::restart) on the same data and port. A watchdog process kills the server
//! and removes its directory when the test process exits, however it exits. Debian's ClickHouse (18.16)
//! runs as root, so no user switch is needed; the binary is `RVBBIT_CLICKHOUSE_BIN`, else
//! `clickhouse-server` on `PATH` or in `/usr/sbin`, else `clickhouse` (the single binary of newer
//! releases, run as `clickhouse server`).
//!
//! With `RVBBIT_TEST_CLICKHOUSE_URL` set (`http://user:password@host:8123`), [`shared`] and
//! [`fresh_database`] use that server instead. A missing binary fails under `CI=true` and is a printed
//! skip otherwise ([`available`]): `scripts/test-deps.sh` installs it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The variable naming an external server to use instead of a throwaway one.
pub const URL_VAR: &str = "RVBBIT_TEST_CLICKHOUSE_URL";

/// A running ClickHouse server (throwaway, or external from [`URL_VAR`]).
#[derive(Debug)]
pub struct TestClickHouse {
    dir: PathBuf,
    /// The program and the arguments before `--config-file`.
    program: Option<(PathBuf, Vec<&'static str>)>,
    /// `http://[user[:password]@]host:port` without a database.
    base: String,
    host: String,
    http_port: u16,
    auth: Option<String>,
    child: Mutex<Option<Child>>,
}

static SHARED: OnceLock<TestClickHouse> = OnceLock::new();
static NEXT: AtomicU32 = AtomicU32::new(0);

/// Whether ClickHouse tests can run: `Ok` with an external server or an installed binary. Without
/// either, under `CI=true` it panics (a CI run never skips silently); otherwise it prints why the test
/// is skipped and returns `false`.
pub fn available() -> bool {
    if std::env::var_os(URL_VAR).is_some() || binary().is_ok() {
        return true;
    }
    let why = binary().err().unwrap_or_default();
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{why}");
    }
    eprintln!("skipped: {why}");
    false
}

/// Whether a test can start (and kill) a server of its own: `Ok` with an installed binary. Without one,
/// under `CI=true` it panics; otherwise it prints why the test is skipped and returns `false` (an
/// external server from [`URL_VAR`] cannot be killed and restarted by a test).
pub fn startable() -> bool {
    match binary() {
        Ok(_) => true,
        Err(why) => {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("{why}");
            }
            eprintln!("skipped: {why}");
            false
        }
    }
}

/// Whether [`shared`] is an external server (from [`URL_VAR`]): it has only the users its owner made,
/// not the throwaway server's `rvbbit` user with password `secret`.
pub fn is_external() -> bool {
    std::env::var_os(URL_VAR).is_some()
}

/// The test process's server, started on first use (or the external one from [`URL_VAR`]).
///
/// Panics with instructions when ClickHouse is not installed or does not start.
pub fn shared() -> &'static TestClickHouse {
    SHARED.get_or_init(|| match std::env::var(URL_VAR) {
        Ok(url) => TestClickHouse::external(&url).unwrap_or_else(|e| panic!("{e}")),
        Err(_) => TestClickHouse::start().unwrap_or_else(|e| panic!("{e}")),
    })
}

/// A URL of a new, empty database on the [`shared`] server.
pub fn fresh_database() -> String {
    shared().create_database()
}

fn binary() -> Result<(PathBuf, Vec<&'static str>), String> {
    if let Some(bin) = std::env::var_os("RVBBIT_CLICKHOUSE_BIN") {
        let bin = PathBuf::from(bin);
        if !bin.is_file() {
            return Err(format!(
                "RVBBIT_CLICKHOUSE_BIN names `{}`, which does not exist: point it at clickhouse-server",
                bin.display()
            ));
        }
        let args = if bin.file_name().is_some_and(|n| n == "clickhouse") {
            vec!["server"]
        } else {
            Vec::new()
        };
        return Ok((bin, args));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/usr/bin", "/usr/local/bin"].map(PathBuf::from));
    for dir in &dirs {
        let server = dir.join("clickhouse-server");
        if server.is_file() {
            return Ok((server, Vec::new()));
        }
    }
    for dir in &dirs {
        let single = dir.join("clickhouse");
        if single.is_file() {
            return Ok((single, vec!["server"]));
        }
    }
    Err(format!(
        "ClickHouse is not installed (no clickhouse-server or clickhouse on PATH or in /usr/sbin) and {URL_VAR} \
         is not set: run scripts/test-deps.sh or `apt-get install clickhouse-server`"
    ))
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// The generated server configuration (the `<yandex>` root, which every release reads).
fn config_xml(dir: &Path, http_port: u16, tcp_port: u16) -> String {
    let d = dir.display();
    format!(
        r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/log/server.log</log><errorlog>{d}/log/error.log</errorlog></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>{http_port}</http_port>
  <tcp_port>{tcp_port}</tcp_port>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>5368709120</mark_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
</yandex>
"#
    )
}

/// Users: `default` without password, and `rvbbit` with password `secret` (for credential tests; not on
/// an external server).
const USERS_XML: &str = r#"<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users>
    <default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default>
    <rvbbit><password>secret</password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></rvbbit>
  </users>
  <quotas><default></default></quotas>
</yandex>
"#;

impl TestClickHouse {
    /// Start a new server in a new temporary directory on free loopback ports.
    ///
    /// Errors: ClickHouse missing, or the server not answering `/ping` within 60 s (with its log).
    pub fn start() -> Result<Self, String> {
        let program = binary()?;
        let dir = std::env::temp_dir().join(format!(
            "rvbbit-ch-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        for sub in ["data", "tmp", "user_files", "format_schemas", "log"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let http_port = free_port()?;
        let tcp_port = free_port()?;
        std::fs::write(dir.join("config.xml"), config_xml(&dir, http_port, tcp_port))
            .and_then(|()| std::fs::write(dir.join("users.xml"), USERS_XML))
            .map_err(|e| format!("cannot write the configuration in {}: {e}", dir.display()))?;
        let server = TestClickHouse {
            base: format!("http://default@127.0.0.1:{http_port}"),
            host: "127.0.0.1".into(),
            http_port,
            auth: None,
            dir,
            program: Some(program),
            child: Mutex::new(None),
        };
        server.watchdog();
        server.spawn()?;
        Ok(server)
    }

    /// An external server from a URL such as `http://user:password@host:8123`.
    fn external(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{URL_VAR} must be an http:// URL, found `{url}`"))?;
        let authority = rest.split('/').next().unwrap_or_default();
        let (auth, hostport) = match authority.rsplit_once('@') {
            Some((a, h)) => (Some(a.to_owned()), h),
            None => (None, authority),
        };
        let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "8123"));
        let http_port = port
            .parse()
            .map_err(|e| format!("{URL_VAR} has a bad port `{port}`: {e}"))?;
        let base = match &auth {
            Some(a) => format!("http://{a}@{host}:{http_port}"),
            None => format!("http://{host}:{http_port}"),
        };
        Ok(TestClickHouse {
            dir: PathBuf::new(),
            program: None,
            base,
            host: host.to_owned(),
            http_port,
            auth,
            child: Mutex::new(None),
        })
    }

    fn spawn(&self) -> Result<(), String> {
        let Some((bin, args)) = &self.program else {
            return Err("an external server cannot be started here".into());
        };
        let child = Command::new(bin)
            .args(args)
            .arg(format!("--config-file={}", self.dir.join("config.xml").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{} could not start: {e}", bin.display()))?;
        std::fs::write(self.dir.join("server.pid"), child.id().to_string())
            .map_err(|e| format!("cannot write the pid file: {e}"))?;
        *self.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, body)) = self.http("GET", "/ping", "")
                && body.starts_with("Ok.")
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("log/error.log")).unwrap_or_default();
                return Err(format!(
                    "clickhouse-server did not answer /ping on port {} within 60 s: {log}",
                    self.http_port
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stop the server (whatever its pid after restarts) and remove its directory once this process ends.
    fn watchdog(&self) {
        crate::watchdog::spawn(
            &self.dir,
            &crate::watchdog::kill_pid_file(&self.dir),
            "ClickHouse",
        );
    }

    /// One HTTP/1.0 request to the server; returns status and body.
    pub fn http(&self, method: &str, path: &str, body: &str) -> Result<(u16, String), String> {
        let mut s = TcpStream::connect((self.host.as_str(), self.http_port)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let auth = match &self.auth {
            Some(a) => format!("Authorization: Basic {}\r\n", base64(a.as_bytes())),
            None => String::new(),
        };
        let req = format!(
            "{method} {path} HTTP/1.0\r\nHost: {}\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Ok((status, body.to_owned()))
    }

    /// Run one statement; returns its output. Panics when the server answers with an error.
    pub fn query(&self, sql: &str) -> String {
        match self.http("POST", "/", sql) {
            Ok((200, body)) => body,
            Ok((status, body)) => panic!("ClickHouse answered {status} to `{sql}`: {body}"),
            Err(e) => panic!("ClickHouse did not answer `{sql}`: {e}"),
        }
    }

    /// The server's URL without a database, such as `http://default@127.0.0.1:8123`.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Its HTTP port.
    pub fn port(&self) -> u16 {
        self.http_port
    }

    /// Create a new empty database; returns its URL (`{url}/{name}`).
    pub fn create_database(&self) -> String {
        let name = format!("t{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        self.query(&format!("CREATE DATABASE {name}"));
        format!("{}/{name}", self.base)
    }

    /// Kill the server with SIGKILL, as a crash would, and wait for it to end.
    pub fn kill(&self) -> Result<(), String> {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mut c) = child.take() else {
            return Err("the server is not running (or is external)".into());
        };
        c.kill().map_err(|e| format!("SIGKILL failed: {e}"))?;
        c.wait()
            .map_err(|e| format!("waiting for the killed server failed: {e}"))?;
        Ok(())
    }

    /// Start the server again on the same data directory and port.
    pub fn restart(&self) -> Result<(), String> {
        self.spawn()
    }
}

impl Drop for TestClickHouse {
    fn drop(&mut self) {
        if self.program.is_none() {
            return;
        }
        if let Err(e) = self.kill() {
            eprintln!("testkit: {e}");
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("testkit: cannot remove {}: {e}", self.dir.display());
        }
    }
}

/// Standard base64 (for a Basic `Authorization` header).
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
