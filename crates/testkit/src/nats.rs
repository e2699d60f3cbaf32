//! A throwaway NATS server with JetStream for tests: `nats-server -js -sd DIR -a 127.0.0.1 -p PORT` with
//! its store in a temporary directory on a free loopback port, one server per test (it starts in a few
//! tens of milliseconds, so tests never share streams).
//!
//! [`TestNats::start`] waits until the server accepts clients; [`TestNats::kill`] stops it with SIGKILL
//! (as a crash would) and [`TestNats::restart`] starts it again on the same directory and port, so
//! persisted streams come back. Dropping it kills the server and removes its directory; a watchdog
//! process does the same when the test process exits however it exits, so no server outlives its tests.
//! The binary is `RVBBIT_NATS_SERVER`, else `nats-server` on `PATH` or in `/usr/sbin`.
//!
//! A missing `nats-server` is a failure with instructions, never a skip: `scripts/test-deps.sh`
//! installs Debian's package (2.9).

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A running throwaway NATS server with JetStream.
#[derive(Debug)]
pub struct TestNats {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    /// A user and password every client must send (`--user`, `--pass`), when set.
    auth: Option<(String, String)>,
    child: Mutex<Option<Child>>,
}

/// The `nats-server` binary: `RVBBIT_NATS_SERVER`, else on `PATH`, else in `/usr/sbin` or `/usr/bin`.
pub fn binary() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("RVBBIT_NATS_SERVER") {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!(
                "RVBBIT_NATS_SERVER names `{}`, which does not exist: point it at nats-server",
                bin.display()
            ))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/usr/bin", "/usr/local/bin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "nats-server is not installed (not on PATH nor in /usr/sbin): run scripts/test-deps.sh or \
             `apt-get install nats-server`"
                .to_owned()
        })
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

impl TestNats {
    /// Start a server in a new temporary directory on a free port.
    ///
    /// Panics with instructions when `nats-server` is missing or does not start (a test needs it; it
    /// is never skipped).
    pub fn start() -> Self {
        Self::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Start a server that accepts only clients sending this user and password.
    ///
    /// Panics as [`TestNats::start`] does.
    pub fn start_with_user(user: &str, password: &str) -> Self {
        Self::try_start_as(Some((user.to_owned(), password.to_owned()))).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Start a server; errors name what is missing or what the server printed.
    pub fn try_start() -> Result<Self, String> {
        Self::try_start_as(None)
    }

    fn try_start_as(auth: Option<(String, String)>) -> Result<Self, String> {
        let bin = binary()?;
        let dir = std::env::temp_dir().join(format!(
            "rvbbit-nats-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(dir.join("js"))
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut server = TestNats {
            dir,
            bin,
            port: 0,
            auth,
            child: Mutex::new(None),
        };
        server.watchdog();
        let mut last = String::new();
        for _ in 0..3 {
            server.port = free_port()?;
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn spawn(&self) -> Result<(), String> {
        let log = self.dir.join("server.log");
        let mut command = Command::new(&self.bin);
        command
            .args(["-js", "-sd"])
            .arg(self.dir.join("js"))
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-l"])
            .arg(&log);
        if let Some((user, password)) = &self.auth {
            command.args(["--user", user, "--pass", password]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{} could not start: {e}", self.bin.display()))?;
        std::fs::write(self.dir.join("server.pid"), child.id().to_string())
            .map_err(|e| format!("cannot write the pid file: {e}"))?;
        *self.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.ready() {
                return Ok(());
            }
            let exited = self
                .child
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                self.kill();
                return Err(format!(
                    "nats-server did not accept clients on 127.0.0.1:{}: {}",
                    self.port,
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the server answers a client with its `INFO` line and says JetStream is on.
    fn ready(&self) -> bool {
        let Ok(stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        if stream.set_read_timeout(Some(Duration::from_secs(2))).is_err() {
            return false;
        }
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).is_ok()
            && line.starts_with("INFO ")
            && line.contains("\"jetstream\":true")
    }

    /// Stop the server (whatever its pid after restarts) and remove its directory once this process ends.
    fn watchdog(&self) {
        crate::watchdog::spawn(&self.dir, &crate::watchdog::kill_pid_file(&self.dir), "NATS");
    }

    /// The client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stop the server with SIGKILL, as a crash would (its JetStream files stay for [`restart`]).
    ///
    /// [`restart`]: TestNats::restart
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            if let Err(e) = child.kill() {
                eprintln!("testkit: cannot kill nats-server: {e}");
            }
            // Reap it so the port is free again; the exit status of a killed server says nothing.
            let _ = child.wait();
        }
    }

    /// Start the server again on the same directory and port (after [`kill`](TestNats::kill)).
    ///
    /// Panics when it does not come back.
    pub fn restart(&self) {
        self.kill();
        self.spawn().unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for TestNats {
    fn drop(&mut self) {
        self.kill();
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("testkit: cannot remove {}: {e}", self.dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TestNats;

    #[test]
    fn starts_kills_and_restarts_on_the_same_port() {
        let nats = TestNats::start();
        let port = nats.port();
        assert!(nats.url().ends_with(&format!(":{port}")));
        assert!(nats.ready());
        nats.kill();
        assert!(!nats.ready(), "a killed server still answers");
        nats.restart();
        assert!(nats.ready());
        assert_eq!(nats.port(), port);
    }
}
