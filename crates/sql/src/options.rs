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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RvbbitOptions {
    /// `rvbbit.udf_errors`: what a failed call returns.
    pub udf_errors: UdfErrors,
    /// `rvbbit.cache`: serve and fill the persistent result cache (`on`/`off`).
    pub cache: bool,
}

impl Default for RvbbitOptions {
    fn default() -> Self {
        RvbbitOptions {
            udf_errors: UdfErrors::Null,
            cache: true,
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
            other => {
                return Err(DataFusionError::Configuration(format!(
                    "unknown setting `rvbbit.{other}`; the rvbbit settings are `rvbbit.udf_errors` and \
                     `rvbbit.cache`"
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
        ]
    }
}
