//! Data sources: CSV, Parquet and JSON files, folders and object-store URLs as tables.
//!
//! - `[sql.tables]` (configuration: name → path or URL) are tables of every session, opened on first use
//!   and shared by all sessions of the runtime (a folder's files are listed at each scan).
//! - `read_csv_auto('file')`, `read_csv`, `read_json`, `read_json_auto`, `read_ndjson`, `read_parquet`
//!   (DuckDB names; the path argument only).
//! - `CREATE EXTERNAL TABLE … STORED AS CSV|JSON|PARQUET LOCATION '…'` (DataFusion's), through the same
//!   object stores.
//!
//! Every session shares one object-store registry that opens stores on first use: `file://` (and plain
//! paths), `http(s)://host` (read-only; folders need a WebDAV server) and `s3://bucket` (credentials and
//! region from the standard `AWS_*` environment variables). Relative paths resolve against the runtime's
//! base directory.

mod read;
mod schema;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use datafusion::catalog::TableProvider;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{
    CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionConfig, SessionContext,
};
use object_store::ObjectStore;
use url::Url;

use crate::error::Error;

pub(crate) use read::{READ_FUNCTIONS, ReadFunction};
pub(crate) use schema::SessionSchema;

/// A file format, from a file's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Csv,
    Parquet,
    Json,
}

impl Format {
    fn of_extension(ext: &str) -> Option<Format> {
        match ext.to_ascii_lowercase().as_str() {
            "csv" | "tsv" => Some(Format::Csv),
            "parquet" | "pq" => Some(Format::Parquet),
            "json" | "jsonl" | "ndjson" => Some(Format::Json),
            _ => None,
        }
    }
}

/// The object-store registry shared by every session: known stores, and stores opened on first use for
/// `http(s)://` and `s3://` URLs.
#[derive(Debug, Default)]
struct LazyStores {
    known: DefaultObjectStoreRegistry,
}

impl LazyStores {
    fn open(url: &Url) -> Result<Arc<dyn ObjectStore>> {
        let external = |e: object_store::Error| DataFusionError::External(Box::new(e));
        match url.scheme() {
            "http" | "https" => {
                let base = format!("{}://{}", url.scheme(), url.authority());
                let store = object_store::http::HttpBuilder::new()
                    .with_url(base)
                    .with_client_options(object_store::ClientOptions::new().with_allow_http(true))
                    .build()
                    .map_err(external)?;
                Ok(Arc::new(store))
            }
            "s3" | "s3a" => {
                let bucket = url.host_str().unwrap_or_default();
                let store = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .map_err(|e| {
                        Error::Execution {
                            message: format!(
                                "the S3 bucket `{bucket}` cannot be opened: {e}; set AWS_REGION and \
                                 AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or AWS_ENDPOINT for an S3-compatible server)"
                            ),
                        }
                        .into_datafusion()
                    })?;
                Ok(Arc::new(store))
            }
            other => Err(Error::Invalid {
                message: format!(
                    "no object store for `{other}://` URLs ({url}); rvbbit reads local paths, file://, \
                     http(s):// and s3:// URLs"
                ),
            }
            .into_datafusion()),
        }
    }
}

impl ObjectStoreRegistry for LazyStores {
    fn register_store(&self, url: &Url, store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        self.known.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        self.known.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.known.get_store(url) {
            return Ok(store);
        }
        let store = LazyStores::open(url)?;
        self.known.register_store(url, store.clone());
        Ok(store)
    }
}

/// The data sources of a runtime: the shared runtime environment (object stores) and the configured
/// tables, opened once.
#[derive(Debug)]
pub(crate) struct Sources {
    env: Arc<RuntimeEnv>,
    base_dir: PathBuf,
    tables: BTreeMap<String, String>,
    opened: Mutex<HashMap<String, Arc<dyn TableProvider>>>,
    /// The canonical folders client-named locations must lie under (the network doors); None: any.
    confine: Option<Vec<PathBuf>>,
}

impl Sources {
    /// Confine the locations clients name to these folders (canonicalised now; folders that do not
    /// exist allow nothing).
    pub(crate) fn confined_to(mut self, allowed: &[PathBuf]) -> Sources {
        self.confine = Some(allowed.iter().filter_map(|a| a.canonicalize().ok()).collect());
        self
    }

    /// Whether statements are confined (the network doors).
    pub(crate) fn is_confined(&self) -> bool {
        self.confine.is_some()
    }

    /// Check a location a statement names (`read_*`, `CREATE EXTERNAL TABLE … LOCATION`) against the
    /// network doors' rule ([`Sources::vet`]); the files it reads are vetted when it is opened.
    pub(crate) fn check_client_location(&self, what: &str, location: &str) -> Result<(), Error> {
        self.vet(what, location).map(|_| ())
    }

    /// Vet a location a statement names against the network doors' rule: a local path whose canonical
    /// form (symbolic links resolved) lies under an allowed folder and is no secret file
    /// ([`is_secret`]). For a folder, every file in it that the statement would read is vetted the
    /// same way when it is opened ([`Sources::vet_entries`]). Without confinement everything passes
    /// ([`Vetted::Any`]). Messages name the location only as the client wrote it.
    pub(crate) fn vet(&self, what: &str, location: &str) -> Result<Vetted, Error> {
        let Some(allowed) = &self.confine else {
            return Ok(Vetted::Any);
        };
        let refuse = |why: &str| Error::Refused {
            message: format!("{what}: `{location}` is refused: {why}"),
        };
        let local = match location.strip_prefix("file://") {
            Some(rest) => rest,
            None if location.contains("://") => {
                return Err(refuse(
                    "this server reads no URLs named in statements (register remote data in [sql.tables])",
                ));
            }
            None => location,
        };
        if local.contains('\0') {
            return Err(refuse("it contains a NUL byte"));
        }
        let path = Path::new(local);
        let path = if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        };
        let Ok(real) = path.canonicalize() else {
            return Err(refuse(
                "no such file or folder under the server's working directory or cascade roots",
            ));
        };
        if !allowed.iter().any(|a| real.starts_with(a)) {
            return Err(refuse(
                "it lies outside the server's working directory and cascade roots",
            ));
        }
        if is_secret(&path) || is_secret(&real) {
            return Err(refuse(SECRET));
        }
        if real.is_dir() {
            Ok(Vetted::Folder(real))
        } else {
            Ok(Vetted::File(real))
        }
    }

    /// The files of a vetted folder that a table over it reads (its direct entries that resolve to
    /// files, as DataFusion lists a folder; subfolders are not read), each vetted like a named file:
    /// an entry that resolves outside the allowed folders or to a secret file refuses the whole
    /// statement, naming the entry relative to the folder. `wanted` keeps the entries a table reads by
    /// name (an extension filter). Returns the entries' names and canonical paths, sorted by name.
    pub(crate) fn vet_entries(
        &self,
        what: &str,
        location: &str,
        folder: &Path,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<Vec<(String, PathBuf)>, Error> {
        let allowed = self.confine.as_deref().unwrap_or_default();
        let refuse = |name: &str, why: &str| Error::Refused {
            message: format!("{what}: `{location}` is refused: its entry `{name}` {why}"),
        };
        let listing = std::fs::read_dir(folder).map_err(|e| Error::Execution {
            message: format!("{what}: the folder `{location}` cannot be listed: {e}"),
        })?;
        let mut files = Vec::new();
        for entry in listing {
            let entry = entry.map_err(|e| Error::Execution {
                message: format!("{what}: the folder `{location}` cannot be listed: {e}"),
            })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // A dangling link or an entry that vanished is not read; a subfolder is not read.
            let Ok(real) = entry.path().canonicalize() else {
                continue;
            };
            if real.is_dir() || !wanted(&name) {
                continue;
            }
            if !allowed.iter().any(|a| real.starts_with(a)) {
                return Err(refuse(
                    &name,
                    "leads outside the server's working directory and cascade roots",
                ));
            }
            if is_secret(&entry.path()) || is_secret(&real) {
                return Err(refuse(&name, SECRET));
            }
            files.push((name, real));
        }
        files.sort();
        Ok(files)
    }

    /// In a network door's session, pin a `CREATE EXTERNAL TABLE` to vetted files: each local
    /// location is replaced by the canonical paths of the files it names (a file, or a folder's
    /// files, [`Sources::vet_entries`]), so the table reads exactly those files, whatever appears in
    /// the folder later. Other statements are left alone (the plan check refuses URLs and writes).
    pub(crate) fn vet_statement(
        &self,
        statement: &mut datafusion::sql::parser::Statement,
    ) -> Result<(), Error> {
        use datafusion::sql::parser::Statement as DfStatement;
        let DfStatement::CreateExternalTable(create) = statement else {
            return Ok(());
        };
        let what = "CREATE EXTERNAL TABLE";
        let mut pinned = Vec::new();
        for location in &create.locations {
            match self.vet(what, location)? {
                Vetted::Any => pinned.push(location.clone()),
                Vetted::File(real) => pinned.push(real.display().to_string()),
                Vetted::Folder(folder) => {
                    if !create.table_partition_cols.is_empty() {
                        return Err(Error::Refused {
                            message: format!(
                                "{what}: `{location}` is refused: partitioned folders (PARTITIONED BY) \
                                 are not read over this network door"
                            ),
                        });
                    }
                    let files = self.vet_entries(what, location, &folder, |_| true)?;
                    if files.is_empty() {
                        return Err(Error::Execution {
                            message: format!("{what}: the folder `{location}` holds no files to read"),
                        });
                    }
                    pinned.extend(files.into_iter().map(|(_, real)| real.display().to_string()));
                }
            }
        }
        pinned.dedup();
        create.locations = pinned;
        Ok(())
    }

    pub(crate) fn new(base_dir: PathBuf, tables: BTreeMap<String, String>) -> Result<Sources, String> {
        let env = RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::new(LazyStores::default()))
            .build_arc()
            .map_err(|e| format!("the SQL runtime environment cannot be built: {e}"))?;
        Ok(Sources {
            env,
            base_dir,
            tables,
            opened: Mutex::new(HashMap::new()),
            confine: None,
        })
    }

    /// The runtime environment every session of the runtime shares.
    pub(crate) fn env(&self) -> Arc<RuntimeEnv> {
        self.env.clone()
    }

    /// `location` as a URL or an absolute path (relative paths against the base directory).
    pub(crate) fn resolve(&self, location: &str) -> String {
        if location.contains("://") || Path::new(location).is_absolute() {
            return location.to_owned();
        }
        self.base_dir.join(location).display().to_string()
    }

    /// The configured table `name`, opened on first use.
    async fn configured(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(location) = self.tables.get(name) else {
            return Ok(None);
        };
        if let Some(found) = self.opened.lock().unwrap_or_else(|p| p.into_inner()).get(name) {
            return Ok(Some(found.clone()));
        }
        let what = format!("table `{name}` ([sql.tables] in the configuration)");
        let table = self.open(&what, location, None).await?;
        self.opened
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), table.clone());
        Ok(Some(table))
    }

    /// Open `location` (a file, a folder or a URL) as a table; `what` names it in errors.
    pub(crate) async fn open(
        &self,
        what: &str,
        location: &str,
        format: Option<Format>,
    ) -> Result<Arc<dyn TableProvider>> {
        self.open_vetted(what, location, format, Vetted::Any).await
    }

    /// [`Sources::open`] of a location vetted by [`Sources::vet`]: a vetted file is read by its
    /// canonical path, a vetted folder as the explicit list of its vetted files.
    pub(crate) async fn open_vetted(
        &self,
        what: &str,
        location: &str,
        format: Option<Format>,
        vetted: Vetted,
    ) -> Result<Arc<dyn TableProvider>> {
        let (resolved, folder) = match vetted {
            Vetted::Any => (self.resolve(location), None),
            Vetted::File(real) => (real.display().to_string(), None),
            Vetted::Folder(real) => (real.display().to_string(), Some(real)),
        };
        let remote = resolved.contains("://") && !resolved.starts_with("file://");
        let local = resolved.strip_prefix("file://").unwrap_or(&resolved).to_owned();
        let missing = |why: &str| {
            Error::Execution {
                message: format!(
                    "{what}: `{location}` {why}; fix the path (relative paths start at {}) or create the file",
                    self.base_dir.display()
                ),
            }
            .into_datafusion()
        };
        // The file's extension, or for a local folder, the first known extension among its files.
        let mut extension = Path::new(&local)
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_owned);
        let mut json_array = false;
        // A vetted folder's files, read as an explicit list (nothing added to the folder later is read).
        let mut pinned: Option<Vec<String>> = None;
        if !remote {
            let path = Path::new(&local);
            if !path.exists() {
                return Err(missing(&format!("does not exist ({})", path.display())));
            }
            if path.is_dir() {
                let mut names: Vec<PathBuf> = std::fs::read_dir(path)
                    .map_err(|e| missing(&format!("cannot be listed: {e}")))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file())
                    .collect();
                names.sort();
                extension = names.iter().find_map(|p| {
                    p.extension()
                        .and_then(|e| e.to_str())
                        .filter(|e| Format::of_extension(e).is_some())
                        .map(str::to_owned)
                });
                if extension.is_none() && format.is_none() {
                    return Err(missing("is a folder without .csv, .parquet or .json files"));
                }
                if let Some(folder) = &folder {
                    let suffix = extension.as_ref().map(|e| format!(".{e}")).unwrap_or_default();
                    let files = self
                        .vet_entries(what, location, folder, |name| name.ends_with(&suffix))
                        .map_err(Error::into_datafusion)?;
                    if files.is_empty() {
                        return Err(missing("is a folder without .csv, .parquet or .json files"));
                    }
                    pinned = Some(
                        files
                            .into_iter()
                            .map(|(_, real)| real.display().to_string())
                            .collect(),
                    );
                }
            } else {
                // A JSON file holding one array (not newline-delimited objects).
                json_array = is_json_array(path);
            }
        }
        let Some(format) = format.or_else(|| extension.as_deref().and_then(Format::of_extension)) else {
            return Err(Error::Invalid {
                message: format!(
                    "{what}: cannot tell the format of `{location}`; name a .csv, .parquet or .json \
                     (newline-delimited) file, or a local folder of them"
                ),
            }
            .into_datafusion());
        };
        let ext = extension.map(|e| format!(".{e}")).unwrap_or_default();
        let ctx = bare_session(&self.env);
        // An explicit file list is read whatever the files' extensions (the names were filtered).
        let (paths, filter) = match pinned {
            Some(files) => (files, String::new()),
            None => (vec![resolved.clone()], ext.clone()),
        };
        let df = match format {
            Format::Csv => {
                let mut o = CsvReadOptions::new().file_extension(&filter);
                if ext.eq_ignore_ascii_case(".tsv") {
                    o = o.delimiter(b'\t');
                }
                ctx.read_csv(paths, o).await
            }
            Format::Parquet => {
                ctx.read_parquet(paths, ParquetReadOptions::default().file_extension(&filter))
                    .await
            }
            Format::Json => {
                let o = JsonReadOptions::default()
                    .file_extension(&filter)
                    .newline_delimited(!json_array);
                ctx.read_json(paths, o).await
            }
        }
        .map_err(|e| {
            let e = Error::from_datafusion(e);
            Error::Execution {
                message: format!("{what}: `{location}` cannot be read: {e}"),
            }
            .into_datafusion()
        })?;
        Ok(df.into_view())
    }
}

/// A bare session to read a file with: reading needs the file format and the object stores, not the
/// hundreds of functions a default session registers (a few milliseconds of every statement, issue 24).
fn bare_session(env: &Arc<RuntimeEnv>) -> SessionContext {
    SessionContext::new_with_state(
        SessionStateBuilder::new()
            .with_config(SessionConfig::new())
            .with_runtime_env(env.clone())
            .build(),
    )
}

/// What a location vetted by [`Sources::vet`] is.
#[derive(Debug)]
pub(crate) enum Vetted {
    /// Not confined: read it as named.
    Any,
    /// A file allowed to be read, by its canonical path.
    File(PathBuf),
    /// A folder (canonical path) whose files are vetted when it is opened.
    Folder(PathBuf),
}

/// Why a secret file is refused.
const SECRET: &str = "it is a configuration, secrets or store file of the server (rvbbit.toml, .env, \
                      .rvbbit/*.db), which no network door reads";

/// Whether `path` names a file the network doors never read, whatever folder it is in: `rvbbit.toml`
/// (it may hold `provider.api_key`), `.env`, and the store's database files (`*.db`, `*.db-wal`,
/// `*.db-shm`) under a `.rvbbit` folder.
pub(crate) fn is_secret(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if name.eq_ignore_ascii_case("rvbbit.toml") || name == ".env" {
        return true;
    }
    let store_file = [".db", ".db-wal", ".db-shm"]
        .iter()
        .any(|ext| name.ends_with(ext));
    store_file && path.components().any(|c| c.as_os_str() == ".rvbbit")
}

/// Whether the file's first non-blank byte is `[`.
fn is_json_array(path: &Path) -> bool {
    use std::io::Read;
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let mut buf = [0u8; 256];
    let Ok(n) = file.read(&mut buf) else {
        return false;
    };
    buf[..n]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'[')
}

impl Sources {
    /// The network doors' rule over a planned statement (before it runs): no `COPY … TO` files, no
    /// writes into tables other than the session's in-memory ones, and `CREATE EXTERNAL TABLE` only
    /// at an allowed location. Without confinement everything passes.
    pub(crate) fn check_plan(&self, plan: &datafusion::logical_expr::LogicalPlan) -> Result<(), Error> {
        use datafusion::common::tree_node::TreeNodeRecursion;
        use datafusion::logical_expr::{DdlStatement, LogicalPlan};

        if !self.is_confined() {
            return Ok(());
        }
        let mut refused = None;
        let walked = plan.apply_with_subqueries(|node| {
            let verdict = match node {
                LogicalPlan::Copy(_) => Err(Error::Refused {
                    message: "COPY … TO writes a file on the server, which this network door does not allow"
                        .into(),
                }),
                LogicalPlan::Dml(dml) => {
                    let in_memory = datafusion::datasource::source_as_provider(&dml.target).is_ok_and(|p| {
                        let any: &dyn std::any::Any = p.as_ref();
                        any.is::<datafusion::catalog::MemTable>()
                    });
                    if in_memory {
                        Ok(())
                    } else {
                        Err(Error::Refused {
                            message: format!(
                                "`{}` into `{}` would write files on the server, which this network door \
                                 does not allow (only tables made in this session can change)",
                                dml.op, dml.table_name
                            ),
                        })
                    }
                }
                LogicalPlan::Ddl(DdlStatement::CreateExternalTable(c)) => c
                    .locations
                    .iter()
                    .try_for_each(|l| self.check_client_location("CREATE EXTERNAL TABLE", l)),
                _ => Ok(()),
            };
            match verdict {
                Ok(()) => Ok(TreeNodeRecursion::Continue),
                Err(e) => {
                    refused = Some(e);
                    Ok(TreeNodeRecursion::Stop)
                }
            }
        });
        if let Err(e) = walked {
            return Err(Error::from_datafusion(e));
        }
        refused.map_or(Ok(()), Err)
    }
}
