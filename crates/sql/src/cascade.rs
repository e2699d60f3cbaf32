//! Cascades run from SQL: a cascade file (or the built-in `rvbbit_udf` text) loaded, validated and ready
//! to run ([`LoadedCascade`]), and where a cascade reference of a statement is looked for ([`resolve`]).

use std::path::{Path, PathBuf};

use rvbbit_cascade::validate::{Options, validate_loaded};
use rvbbit_cascade::{Catalog, Severity, load_str};
use rvbbit_engine::{Engine, RunRequest};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A cascade ready to run from SQL: its run request template and content hash.
#[derive(Debug)]
pub(crate) struct LoadedCascade {
    pub(crate) template: RunRequest,
    /// SHA-256 of the file text.
    pub(crate) hash: String,
}

impl LoadedCascade {
    /// The cascade's id.
    pub(crate) fn cascade_id(&self) -> &str {
        &self.template.cascade.cascade_id
    }

    /// The last cell's `output_schema`: the shape of the cascade's final output, when it declares one.
    pub(crate) fn final_schema(&self) -> Option<&Value> {
        self.template
            .cascade
            .cells
            .last()
            .and_then(|c| c.output_schema.as_ref())
    }
}

/// Load and validate a cascade text; the first error is the message.
pub(crate) fn load_cascade_text(path: &Path, text: &str, engine: &Engine) -> Result<LoadedCascade, String> {
    let mut catalog = Catalog::builtin();
    engine.registry().fill_catalog(&mut catalog);
    let loaded = load_str(path, text);
    let report = validate_loaded(loaded, &mut catalog, &Options::default());
    if let Some(d) = report
        .diagnostics()
        .iter()
        .find(|d| d.severity == Severity::Error)
    {
        let at = match (d.span, &report.loaded.source) {
            (Some(span), Some(source)) => {
                let at = source.line_col(span.start);
                format!(" at line {}, column {}", at.line, at.col)
            }
            _ => String::new(),
        };
        return Err(format!(
            "Cascade {} is invalid{at}: [{}] {}",
            path.display(),
            d.code.code,
            d.message
        ));
    }
    let Some(cascade) = report.loaded.document.as_ref().and_then(|d| d.cascade().cloned()) else {
        return Err(format!("{} is a tool definition, not a cascade", path.display()));
    };
    let mut template = RunRequest::new(cascade);
    template.cascade_file = path.is_file().then(|| path.to_path_buf());
    template.cascade_text = Some(text.to_owned());
    Ok(LoadedCascade {
        template,
        hash: hex::encode(Sha256::digest(text.as_bytes())),
    })
}

/// The file `reference` names: inside `base_dir` or one of `roots`, also with `.yaml`, `.yml` or
/// `.json` added. Errors are messages for the failure document.
pub(crate) fn resolve(base_dir: &Path, roots: &[PathBuf], reference: &str) -> Result<PathBuf, String> {
    let given = Path::new(reference);
    let mut bases = vec![base_dir.to_path_buf()];
    bases.extend(roots.iter().cloned());
    let allowed: Vec<PathBuf> = bases.iter().filter_map(|b| b.canonicalize().ok()).collect();
    for base in &bases {
        let joined = if given.is_absolute() {
            given.to_path_buf()
        } else {
            base.join(given)
        };
        // `name` finds `name.yaml`, `.yml` or `.json`; a name with an extension is taken as written.
        let mut candidates = vec![joined.clone()];
        if joined.extension().is_none() {
            for ext in ["yaml", "yml", "json"] {
                candidates.push(joined.with_extension(ext));
            }
        }
        for candidate in candidates {
            let Ok(real) = candidate.canonicalize() else {
                continue;
            };
            if !real.is_file() {
                continue;
            }
            if !allowed.iter().any(|a| real.starts_with(a)) {
                return Err(format!(
                    "Cascade {reference} is outside the working directory and the configured roots"
                ));
            }
            return Ok(real);
        }
    }
    Err(format!(
        "Cascade not found: {reference} (looked in the working directory and the configured roots, \
         also with .yaml, .yml and .json)"
    ))
}
