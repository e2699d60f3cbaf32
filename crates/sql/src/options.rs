//! The `rvbbit.*` session settings (`SET rvbbit.udf_errors = 'raise'`), stored as a DataFusion config
//! extension so every statement's functions read the values in force when it runs.

use std::any::Any;

use datafusion::common::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::error::{DataFusionError, Result};

/// What a failed `rvbbit_udf` call returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UdfErrors {
    /// NULL, with the error recorded in the store and a notice (the default).
    #[default]
    Null,
    /// Fail the whole statement (RVB-Q003).
    Raise,
    /// The string `ERROR: <first 50 characters>` (RVBBIT's behaviour, for compatibility).
    Text,
}

impl UdfErrors {
    const CHOICES: &'static str = "'null', 'raise' or 'text'";

    fn parse(value: &str) -> Option<UdfErrors> {
        match value.trim().to_ascii_lowercase().as_str() {
            "null" => Some(UdfErrors::Null),
            "raise" => Some(UdfErrors::Raise),
            "text" => Some(UdfErrors::Text),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            UdfErrors::Null => "null",
            UdfErrors::Raise => "raise",
            UdfErrors::Text => "text",
        }
    }
}

/// The `rvbbit.*` settings of one SQL session.
#[derive(Clone, Debug, PartialEq)]
pub struct RvbbitOptions {
    /// `rvbbit.udf_errors`: what a failed call returns.
    pub udf_errors: UdfErrors,
    /// `rvbbit.cache`: serve and fill the persistent result cache (`on`/`off`).
    pub cache: bool,
    /// `rvbbit.map_default_limit`: rows a `RVBBIT MAP` reads from its USING query without
    /// `WITH (limit = n)` (default 1,000).
    pub map_default_limit: u64,
    /// `rvbbit.run_default_limit`: rows a `RVBBIT RUN` passes to its cascade without `WITH (limit = n)`
    /// (default 10,000).
    pub run_default_limit: u64,
    /// `rvbbit.semantic_context_bytes`: the most bytes of a group's values an AGGREGATE semantic
    /// function puts in one prompt; a larger group is answered map-reduce (default 32,768).
    pub semantic_context_bytes: usize,
    /// `rvbbit.semantic_batch_size`: the most rows a SCALAR semantic function asks in one prompt; 1 asks
    /// one row per call. Unset (the default): each operator's `batch_size`, else 16.
    pub semantic_batch_size: Option<usize>,
    /// `rvbbit.semantic_cheap_model`: a model asked first for BOOLEAN semantic functions, with a
    /// confidence; only the rows it is unsure of go to the function's own model (default: none).
    pub semantic_cheap_model: Option<String>,
    /// `rvbbit.semantic_confidence`: the confidence (0 to 1) at which the cheap model's answer is kept
    /// (default 0.8).
    pub semantic_confidence: f64,
    /// `rvbbit.max_calls`: the most cascade runs the semantic functions, `rvbbit_udf` and `rvbbit_run`
    /// of one statement may start (cache hits are free); more fails the statement (default 10,000).
    pub max_calls: u64,
    /// `rvbbit.embed_model`: the model `SIMILAR_TO`, `rvbbit_embed` and `VECTOR_SEARCH` use when the
    /// call names none (default: `default_embed_model` of the configuration).
    pub embed_model: Option<String>,
    /// `rvbbit.distributed`: `rvbbit_run` calls (and `RVBBIT MAP` without a `distributed` option) run
    /// as jobs on the configured queue (`[queue] url`), gathered from the shared store (default off).
    pub distributed: bool,
    /// `rvbbit.distributed_timeout`: seconds a distributed row job may take, from being enqueued to
    /// its outcome in the store, before the statement fails with RVB-S032 (default 600).
    pub distributed_timeout: u64,
    /// `rvbbit.distributed_max_rows`: the most row jobs one distributed statement may enqueue (cache
    /// hits and duplicate rows do not count); more fails it before any is enqueued, RVB-S031
    /// (default 10,000).
    pub distributed_max_rows: u64,
    /// `rvbbit.max_annotations`: the most `-- @` annotation lines of one statement (default 64).
    pub max_annotations: usize,
    /// `rvbbit.max_annotation_bytes`: the most bytes of one `-- @` annotation line (default 2,048).
    pub max_annotation_bytes: usize,
}

/// Rows a MAP reads from its USING query unless told otherwise (spec §4.3).
const DEFAULT_MAP_LIMIT: u64 = 1_000;
/// Rows a RUN passes to its cascade unless told otherwise (spec §4.3).
const DEFAULT_RUN_LIMIT: u64 = 10_000;

/// The default `rvbbit.semantic_batch_size`.
pub(crate) const DEFAULT_BATCH_SIZE: usize = 16;
/// The largest `rvbbit.semantic_batch_size`.
pub(crate) const MAX_BATCH_SIZE: usize = 1000;
/// The default `rvbbit.max_annotations`.
const DEFAULT_MAX_ANNOTATIONS: usize = 64;
/// The default `rvbbit.max_annotation_bytes`.
const DEFAULT_MAX_ANNOTATION_BYTES: usize = 2048;
/// The largest `rvbbit.max_annotations` and `rvbbit.max_annotation_bytes` a session may set.
const MAX_ANNOTATION_SETTING: usize = 65_536;

fn annotation_setting(key: &str, value: &str, unit: &str) -> Result<usize> {
    match value.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_ANNOTATION_SETTING).contains(&n) => Ok(n),
        _ => Err(DataFusionError::Configuration(format!(
            "`rvbbit.{key}` cannot be '{value}'; use a whole number of {unit} from 1 to {MAX_ANNOTATION_SETTING}"
        ))),
    }
}
/// The default `rvbbit.semantic_confidence`.
const DEFAULT_CONFIDENCE: f64 = 0.8;

fn confidence_setting(value: &str) -> Result<f64> {
    match value.trim().parse::<f64>() {
        Ok(c) if (0.0..=1.0).contains(&c) => Ok(c),
        _ => Err(DataFusionError::Configuration(format!(
            "`rvbbit.semantic_confidence` cannot be '{value}'; use a number from 0 to 1"
        ))),
    }
}

/// The default `rvbbit.max_calls`.
pub(crate) const DEFAULT_MAX_CALLS: u64 = 10_000;

/// The smallest `rvbbit.semantic_context_bytes`: room for a few short values.
pub(crate) const MIN_CONTEXT_BYTES: usize = 256;

/// The default `rvbbit.semantic_context_bytes`.
pub(crate) const DEFAULT_CONTEXT_BYTES: usize = 32_768;

fn context_setting(value: &str) -> Result<usize> {
    match value.trim().parse::<usize>() {
        Ok(n) if n >= MIN_CONTEXT_BYTES => Ok(n),
        _ => Err(DataFusionError::Configuration(format!(
            "`rvbbit.semantic_context_bytes` cannot be '{value}'; use a whole number of bytes of at \
             least {MIN_CONTEXT_BYTES}"
        ))),
    }
}

fn batch_setting(value: &str) -> Result<usize> {
    match value.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_BATCH_SIZE).contains(&n) => Ok(n),
        _ => Err(DataFusionError::Configuration(format!(
            "`rvbbit.semantic_batch_size` cannot be '{value}'; use a whole number of rows from 1 (one row \
             per call) to {MAX_BATCH_SIZE}"
        ))),
    }
}

fn calls_setting(value: &str) -> Result<u64> {
    match value.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(DataFusionError::Configuration(format!(
            "`rvbbit.max_calls` cannot be '{value}'; use a whole number of calls of at least 1"
        ))),
    }
}

fn limit_setting(key: &str, value: &str) -> Result<u64> {
    match value.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(DataFusionError::Configuration(format!(
            "`rvbbit.{key}` cannot be '{value}'; use a whole number of rows of at least 1"
        ))),
    }
}

/// The default `rvbbit.distributed_timeout`, in seconds.
const DEFAULT_DISTRIBUTED_TIMEOUT: u64 = 600;
/// The default `rvbbit.distributed_max_rows`.
const DEFAULT_DISTRIBUTED_MAX_ROWS: u64 = 10_000;

fn whole_setting(key: &str, value: &str, unit: &str) -> Result<u64> {
    match value.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(DataFusionError::Configuration(format!(
            "`rvbbit.{key}` cannot be '{value}'; use a whole number of {unit} of at least 1"
        ))),
    }
}

impl Default for RvbbitOptions {
    fn default() -> Self {
        RvbbitOptions {
            udf_errors: UdfErrors::Null,
            cache: true,
            map_default_limit: DEFAULT_MAP_LIMIT,
            run_default_limit: DEFAULT_RUN_LIMIT,
            semantic_context_bytes: DEFAULT_CONTEXT_BYTES,
            semantic_batch_size: None,
            semantic_cheap_model: None,
            semantic_confidence: DEFAULT_CONFIDENCE,
            max_calls: DEFAULT_MAX_CALLS,
            embed_model: None,
            distributed: false,
            distributed_timeout: DEFAULT_DISTRIBUTED_TIMEOUT,
            distributed_max_rows: DEFAULT_DISTRIBUTED_MAX_ROWS,
            max_annotations: DEFAULT_MAX_ANNOTATIONS,
            max_annotation_bytes: DEFAULT_MAX_ANNOTATION_BYTES,
        }
    }
}

impl ConfigExtension for RvbbitOptions {
    const PREFIX: &'static str = "rvbbit";
}

fn bool_setting(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Some(true),
        "off" | "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

impl ExtensionOptions for RvbbitOptions {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "udf_errors" => {
                self.udf_errors = UdfErrors::parse(value).ok_or_else(|| {
                    DataFusionError::Configuration(format!(
                        "`rvbbit.udf_errors` cannot be '{value}'; use {}",
                        UdfErrors::CHOICES
                    ))
                })?;
            }
            "cache" => {
                self.cache = bool_setting(value).ok_or_else(|| {
                    DataFusionError::Configuration(format!(
                        "`rvbbit.cache` cannot be '{value}'; use 'on' or 'off'"
                    ))
                })?;
            }
            "map_default_limit" => self.map_default_limit = limit_setting(key, value)?,
            "run_default_limit" => self.run_default_limit = limit_setting(key, value)?,
            "semantic_context_bytes" => self.semantic_context_bytes = context_setting(value)?,
            "semantic_batch_size" => self.semantic_batch_size = Some(batch_setting(value)?),
            "max_calls" => self.max_calls = calls_setting(value)?,
            "distributed" => {
                self.distributed = bool_setting(value).ok_or_else(|| {
                    DataFusionError::Configuration(format!(
                        "`rvbbit.distributed` cannot be '{value}'; use 'on' or 'off'"
                    ))
                })?;
            }
            "distributed_timeout" => self.distributed_timeout = whole_setting(key, value, "seconds")?,
            "distributed_max_rows" => self.distributed_max_rows = whole_setting(key, value, "rows")?,
            "semantic_confidence" => self.semantic_confidence = confidence_setting(value)?,
            "max_annotations" => self.max_annotations = annotation_setting(key, value, "lines")?,
            "max_annotation_bytes" => self.max_annotation_bytes = annotation_setting(key, value, "bytes")?,
            "embed_model" => {
                let model = value.trim();
                self.embed_model = match model.to_ascii_lowercase().as_str() {
                    "" | "default" => None,
                    _ => Some(model.to_owned()),
                };
            }
            "semantic_cheap_model" => {
                let model = value.trim();
                self.semantic_cheap_model = match model.to_ascii_lowercase().as_str() {
                    "" | "off" | "none" => None,
                    _ => Some(model.to_owned()),
                };
            }
            other => {
                return Err(DataFusionError::Configuration(format!(
                    "unknown setting `rvbbit.{other}`; the rvbbit settings are `rvbbit.udf_errors`, \
                     `rvbbit.cache`, `rvbbit.map_default_limit`, `rvbbit.run_default_limit`, \
                     `rvbbit.semantic_context_bytes`, `rvbbit.semantic_batch_size`, `rvbbit.semantic_cheap_model`, \
                     `rvbbit.semantic_confidence`, `rvbbit.embed_model`, `rvbbit.max_calls`, `rvbbit.distributed`, \
                     `rvbbit.distributed_timeout`, `rvbbit.distributed_max_rows`, `rvbbit.max_annotations` and \
                     `rvbbit.max_annotation_bytes`"
                )));
            }
        }
        Ok(())
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        vec![
            ConfigEntry {
                key: "rvbbit.udf_errors".into(),
                value: Some(self.udf_errors.as_str().into()),
                description: "What a failed rvbbit_udf call returns: 'null' (default), 'raise' or 'text'",
            },
            ConfigEntry {
                key: "rvbbit.cache".into(),
                value: Some(if self.cache { "on" } else { "off" }.into()),
                description: "Serve and fill the persistent result cache: 'on' (default) or 'off'",
            },
            ConfigEntry {
                key: "rvbbit.map_default_limit".into(),
                value: Some(self.map_default_limit.to_string()),
                description: "Rows RVBBIT MAP reads from its USING query without WITH (limit = n) (default 1000)",
            },
            ConfigEntry {
                key: "rvbbit.run_default_limit".into(),
                value: Some(self.run_default_limit.to_string()),
                description: "Rows RVBBIT RUN passes to its cascade without WITH (limit = n) (default 10000)",
            },
            ConfigEntry {
                key: "rvbbit.semantic_context_bytes".into(),
                value: Some(self.semantic_context_bytes.to_string()),
                description: "Most bytes of a group's values one AGGREGATE semantic call reads; more is map-reduced (default 32768)",
            },
            ConfigEntry {
                key: "rvbbit.semantic_batch_size".into(),
                value: self.semantic_batch_size.map(|n| n.to_string()),
                description: "Most rows a SCALAR semantic function asks in one prompt; 1 asks one row per call (default: each operator's batch_size, else 16)",
            },
            ConfigEntry {
                key: "rvbbit.semantic_cheap_model".into(),
                value: self.semantic_cheap_model.clone(),
                description: "A model asked first for BOOLEAN and label semantic functions; rows it is unsure of go to the function's model (default: none)",
            },
            ConfigEntry {
                key: "rvbbit.semantic_confidence".into(),
                value: Some(self.semantic_confidence.to_string()),
                description: "Confidence (0 to 1) at which the cheap model's answer is kept (default 0.8)",
            },
            ConfigEntry {
                key: "rvbbit.max_calls".into(),
                value: Some(self.max_calls.to_string()),
                description: "Most cascade runs the semantic functions, rvbbit_udf and rvbbit_run of one statement start (default 10000)",
            },
            ConfigEntry {
                key: "rvbbit.embed_model".into(),
                value: self.embed_model.clone(),
                description: "The embedding model of SIMILAR_TO, rvbbit_embed and VECTOR_SEARCH when a call names none (default: default_embed_model)",
            },
            ConfigEntry {
                key: "rvbbit.distributed".into(),
                value: Some(if self.distributed { "on" } else { "off" }.into()),
                description: "Run rvbbit_run calls and RVBBIT MAP rows as jobs on the configured queue: 'on' or 'off' (default)",
            },
            ConfigEntry {
                key: "rvbbit.distributed_timeout".into(),
                value: Some(self.distributed_timeout.to_string()),
                description: "Seconds a distributed row job may take from enqueued to gathered (default 600)",
            },
            ConfigEntry {
                key: "rvbbit.distributed_max_rows".into(),
                value: Some(self.distributed_max_rows.to_string()),
                description: "Most row jobs one distributed statement may enqueue (default 10000)",
            },
            ConfigEntry {
                key: "rvbbit.max_annotations".into(),
                value: Some(self.max_annotations.to_string()),
                description: "Most `-- @` annotation lines of one statement (default 64)",
            },
            ConfigEntry {
                key: "rvbbit.max_annotation_bytes".into(),
                value: Some(self.max_annotation_bytes.to_string()),
                description: "Most bytes of one `-- @` annotation line (default 2048)",
            },
        ]
    }
}
