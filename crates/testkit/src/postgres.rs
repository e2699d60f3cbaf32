//! A throwaway PostgreSQL server for tests: `initdb` into a temporary directory, `pg_ctl start` on a free
//! loopback port with `fsync=off`, one fresh database per test.
//!
//! [`shared`] starts one server per test process (about 2 s) and hands out databases; a watchdog process
//! stops the server and removes its directory when the test process exits, however it exits (a panic, an
//! abort, a killed test run), so no server outlives its tests. Binaries come from `RVBBIT_PG_BIN`, else
//! `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`. As root, the server runs as the
//! `postgres` user (`initdb` refuses root).
//!
//! A missing PostgreSQL is a failure with instructions, never a skip: `scripts/test-deps.sh` installs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// A running throwaway PostgreSQL server.
#[derive(Debug)]
pub struct TestPostgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    run_as: Option<&'static str>,
    tls: Option<TlsFiles>,
}

/// The certificates of a server started with [`TestPostgres::start_tls`].
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate authority that signed the server's certificate (PEM).
    pub ca: PathBuf,
    /// Another authority, which signed nothing this server presents (PEM).
    pub other_ca: PathBuf,
}

static SHARED: OnceLock<TestPostgres> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The test process's server, started on first use and stopped when the process exits.
///
/// Panics with instructions when PostgreSQL is not installed or does not start.
pub fn shared() -> &'static TestPostgres {
    SHARED.get_or_init(|| TestPostgres::start().unwrap_or_else(|e| panic!("{e}")))
}

/// A URL of a new, empty database on the [`shared`] server.
pub fn fresh_database() -> String {
    shared().create_database()
}

fn bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("RVBBIT_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "PostgreSQL is not installed (no initdb in RVBBIT_PG_BIN, `pg_config --bindir` or /usr/lib/postgresql/*/bin): \
         run scripts/test-deps.sh or `apt-get install postgresql`"
            .to_owned()
    })
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl TestPostgres {
    /// Start a new server in a new temporary directory.
    ///
    /// Errors: PostgreSQL missing, `initdb` or `pg_ctl start` failing (with their output).
    pub fn start() -> Result<Self, String> {
        Self::start_with(false)
    }

    /// Start a new server that takes only TLS connections (`ssl = on`; `pg_hba.conf` allows `hostssl` and
    /// rejects `hostnossl`), its certificate signed by a new authority ([`TlsFiles::ca`]) for the name
    /// `localhost` only (no IP address), so `verify-full` to `127.0.0.1` fails on the name while
    /// `verify-ca` passes. Certificates come from the `openssl` command.
    ///
    /// Errors: as [`start`](Self::start), and `openssl` missing or failing.
    pub fn start_tls() -> Result<Self, String> {
        Self::start_with(true)
    }

    /// The certificates, for a server from [`start_tls`](Self::start_tls).
    pub fn tls_files(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    fn start_with(tls: bool) -> Result<Self, String> {
        let bin = bin_dir()?;
        let run_as = is_root().then_some("postgres");
        let dir = std::env::temp_dir().join(format!(
            "rvbbit-pg-{}-{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut server = TestPostgres {
            dir,
            bin,
            port: 0,
            run_as,
            tls: None,
        };
        if let Some(user) = run_as {
            server.run(
                Command::new("chown").args([user, &server.dir.display().to_string()]),
                "chown",
            )?;
        }
        let data = server.dir.join("data");
        let initdb = server.bin.join("initdb");
        server.run(
            server
                .command(&initdb)
                .args([
                    "-D",
                    &data.display().to_string(),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                ])
                .args(["-E", "UTF8", "--locale", "C"]),
            "initdb",
        )?;
        server.watchdog();
        let mut extra = String::new();
        if tls {
            let files = server.make_certificates(&data)?;
            extra = format!(
                " -c ssl=on -c ssl_cert_file={d}/server.crt -c ssl_key_file={d}/server.key",
                d = data.display()
            );
            server.tls = Some(files);
        }
        let mut last = String::new();
        for _ in 0..3 {
            server.port = free_port()?;
            let options = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
                 -c full_page_writes=off -c max_connections=200{extra}",
                server.port,
                server.dir.display()
            );
            let pg_ctl = server.bin.join("pg_ctl");
            let log = server.dir.join("server.log");
            match server.run(
                server.command(&pg_ctl).args([
                    "-w",
                    "-D",
                    &data.display().to_string(),
                    "-l",
                    &log.display().to_string(),
                    "-o",
                    &options,
                    "start",
                ]),
                "pg_ctl start",
            ) {
                Ok(()) => return Ok(server),
                Err(e) => last = format!("{e}\n{}", std::fs::read_to_string(&log).unwrap_or_default()),
            }
        }
        Err(last)
    }

    /// A new authority and a server certificate it signs (for `localhost`), written into the data
    /// directory with the key readable by the server's user only, and `pg_hba.conf` for TLS only.
    fn make_certificates(&self, data: &Path) -> Result<TlsFiles, String> {
        let d = self.dir.display();
        let dd = data.display();
        let script = format!(
            "set -e; cd '{d}'
             openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=rvbbit-test-ca -keyout ca.key -out ca.pem
             openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=rvbbit-other-ca -keyout other.key -out other-ca.pem
             openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout '{dd}/server.key' -out server.csr
             printf 'subjectAltName=DNS:localhost\\n' > san.ext
             openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out '{dd}/server.crt'
             chmod 600 '{dd}/server.key'
             printf 'local all all trust\\nhostssl all all 127.0.0.1/32 trust\\nhostnossl all all 127.0.0.1/32 reject\\n' > '{dd}/pg_hba.conf'"
        );
        self.run(Command::new("sh").args(["-c", &script]), "openssl (certificates)")?;
        if let Some(user) = self.run_as {
            let key = data.join("server.key").display().to_string();
            let crt = data.join("server.crt").display().to_string();
            let hba = data.join("pg_hba.conf").display().to_string();
            self.run(Command::new("chown").args([user, &key, &crt, &hba]), "chown")?;
        }
        Ok(TlsFiles {
            ca: self.dir.join("ca.pem"),
            other_ca: self.dir.join("other-ca.pem"),
        })
    }

    fn command(&self, program: &Path) -> Command {
        match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    fn run(&self, command: &mut Command, what: &str) -> Result<(), String> {
        let out = command
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{what} could not start: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{what} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Stop the server and remove its directory once this process ends.
    fn watchdog(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = match self.run_as {
            Some(user) => format!("runuser -u {user} -- '{}'", pg_ctl.display()),
            None => format!("'{}'", pg_ctl.display()),
        };
        let stop = format!("{stop} -D '{}/data' stop -m immediate", self.dir.display());
        crate::watchdog::spawn(&self.dir, &stop, "PostgreSQL");
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of the `postgres` database as the `postgres` superuser (plain TCP: on a server from
    /// [`start_tls`](Self::start_tls) add `?sslmode=…`).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Create a new empty database; returns its URL.
    ///
    /// Panics when `createdb` fails (the server is gone).
    pub fn create_database(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        let createdb = self.bin.join("createdb");
        let port = self.port.to_string();
        self.run(
            Command::new(createdb).args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", &name]),
            "createdb",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Stop the server now (`pg_ctl stop -m immediate`), as a crash would.
    pub fn stop(&self) -> Result<(), String> {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.dir.join("data");
        self.run(
            self.command(&pg_ctl)
                .args(["-w", "-D", &data.display().to_string(), "stop", "-m", "immediate"]),
            "pg_ctl stop",
        )
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("testkit: {e}");
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("testkit: cannot remove {}: {e}", self.dir.display());
        }
    }
}
