//! The SQL functions of a session ([`Registry`]): the built-in operator files, then the `sql_function`
//! cascades under the working directory's `cascades/` folder (a user function overrides a built-in of
//! the same name), and the operator table the session's dialect parses with.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rvbbit_cascade::model::{ModelSpec, OutputMode, SqlFunction, SqlShape, SqlType};
use rvbbit_cascade::operator::{self, Form, Template};
use rvbbit_engine::Engine;
use sha2::{Digest, Sha256};

use super::batch::Batching;
use super::builtin::BUILTIN;
use super::dialect::{Fixity, Operator, Operators};
use super::files;
use crate::cascade::{LoadedCascade, load_cascade_text};
use crate::limits::Limits;

/// Where the built-in functions come from, in `rvbbit_functions.source`.
pub(crate) const BUILTIN_SOURCE: &str = "builtin";

/// One SQL function defined by a cascade's `sql_function` block.
#[derive(Debug)]
pub(crate) struct Definition {
    /// The SQL name, lower-cased.
    pub(crate) name: String,
    /// The `sql_function` block.
    pub(crate) spec: SqlFunction,
    /// The cascade run per call.
    pub(crate) cascade: Arc<LoadedCascade>,
    /// `builtin`, or the file's path relative to the working directory.
    pub(crate) source: String,
    /// The operator templates, parsed.
    pub(crate) templates: Vec<Template>,
    /// Why the function cannot run in this version (its shape, result type or output mode), if so.
    pub(crate) unsupported: Option<String>,
    /// How its rows are asked many per prompt, or why they cannot be.
    pub(crate) batching: Result<Batching, String>,
}

impl Definition {
    /// The function of a cascade text, `None` when it has no (enabled) `sql_function`. Errors are
    /// messages naming the file as `shown`.
    fn from_text(
        path: &Path,
        shown: &str,
        text: &str,
        engine: &Engine,
    ) -> Result<Option<Definition>, String> {
        if !text.contains("sql_function") {
            return Ok(None);
        }
        let cascade = load_cascade_text(path, text, engine)
            .map_err(|e| e.replace(&path.display().to_string(), shown))?;
        let Some(spec) = cascade.template.cascade.sql_function.clone() else {
            return Ok(None);
        };
        if spec.enabled == Some(false) {
            return Ok(None);
        }
        let name = spec.sql_name(cascade.cascade_id()).to_lowercase();
        if !is_identifier(&name) {
            return Err(format!(
                "Cascade {shown}: the SQL function name `{name}` is not a plain identifier; use letters, \
                 digits and `_`"
            ));
        }
        // Validation already refused a template that does not parse.
        let templates = spec
            .operators
            .iter()
            .filter_map(|t| operator::parse(t).ok())
            .collect();
        let unsupported = unsupported(&name, &spec);
        let batching = Batching::of(&spec, &cascade);
        Ok(Some(Definition {
            name,
            spec,
            batching,
            cascade: Arc::new(cascade),
            source: shown.to_owned(),
            templates,
            unsupported,
        }))
    }

    /// The names the function is called by: its name, then the names of its `NAME(...)` templates.
    pub(crate) fn call_names(&self) -> Vec<String> {
        let mut names = vec![self.name.clone()];
        for t in &self.templates {
            if let Form::Call { name } = &t.form
                && !names.contains(name)
            {
                names.push(name.clone());
            }
        }
        names
    }

    /// How many leading arguments are required.
    pub(crate) fn required(&self) -> usize {
        self.spec
            .args
            .iter()
            .take_while(|a| a.optional != Some(true))
            .count()
    }

    /// The declared result type.
    pub(crate) fn returns(&self) -> SqlType {
        self.spec.result_type()
    }

    /// The function as one annotated call runs it (`-- @`, `annotate.rs`): every cell asks `model`
    /// when given, and `text` goes before the first instructions. Its cascade hash covers both, so its
    /// answers are cached apart from the function's own.
    pub(crate) fn annotated(&self, model: Option<&str>, text: &str) -> Definition {
        let mut request = self.cascade.template.clone();
        let mut cascade = (*request.cascade).clone();
        if let Some(model) = model {
            cascade.model = Some(model.to_owned());
            for cell in &mut cascade.cells {
                if cell.model.is_some() || cell.instructions.is_some() {
                    cell.model = Some(ModelSpec::One(model.to_owned()));
                }
            }
        }
        if !text.is_empty()
            && let Some(cell) = cascade.cells.iter_mut().find(|c| c.instructions.is_some())
        {
            let instructions = cell.instructions.take().unwrap_or_default();
            cell.instructions = Some(format!("{text}\n\n{instructions}"));
        }
        request.cascade = Arc::new(cascade);
        request.cascade_file = None;
        request.cascade_text = None;
        let hash = hex::encode(Sha256::digest(
            format!("{}\n-- @ model: {model:?}\n-- @ {text}", self.cascade.hash).as_bytes(),
        ));
        let loaded = LoadedCascade {
            template: request,
            hash,
        };
        Definition {
            name: self.name.clone(),
            spec: self.spec.clone(),
            batching: Batching::of(&self.spec, &loaded),
            cascade: Arc::new(loaded),
            source: self.source.clone(),
            templates: self.templates.clone(),
            unsupported: self.unsupported.clone(),
        }
    }

    /// Whether a call of the function may be annotated (`-- @`): a SCALAR, ROW or AGGREGATE function
    /// this version runs.
    pub(crate) fn takes_annotations(&self) -> bool {
        self.unsupported.is_none()
            && matches!(
                self.spec.call_shape(),
                SqlShape::Scalar | SqlShape::Row | SqlShape::Aggregate
            )
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Why `spec` cannot run in this version, if it cannot.
fn unsupported(name: &str, spec: &SqlFunction) -> Option<String> {
    let shape = spec.call_shape();
    let returns = spec.result_type();
    if shape != SqlShape::Pipeline && matches!(returns, SqlType::DoubleList | SqlType::Table) {
        return Some(format!(
            "`{name}` returns {}, which SQL functions cannot return yet (VARCHAR, INTEGER, DOUBLE, \
             BOOLEAN or JSON)",
            returns.as_str()
        ));
    }
    match spec.output_mode {
        None | Some(OutputMode::Value) => None,
        Some(other) => Some(format!(
            "`{name}` has output_mode {other:?}; only `value` is supported yet"
        )),
    }
}

/// The built-in functions, loaded once per runtime.
#[derive(Debug)]
pub(crate) struct Builtins(Vec<Arc<Definition>>);

impl Builtins {
    /// Load the embedded operator files. Errors: a built-in file that does not load (a bug).
    pub(crate) fn load(engine: &Engine) -> Result<Builtins, String> {
        let mut out = Vec::new();
        for (file, text) in BUILTIN {
            let shown = format!("<builtin {file}>");
            match Definition::from_text(Path::new(&shown), BUILTIN_SOURCE, text, engine) {
                Ok(Some(d)) => out.push(Arc::new(d)),
                Ok(None) => return Err(format!("the built-in {file} has no sql_function; this is a bug")),
                Err(e) => return Err(format!("the built-in {file} does not load ({e}); this is a bug")),
            }
        }
        Ok(Builtins(out))
    }
}

/// The SQL functions of one session, the operator table and the warnings of loading them.
#[derive(Debug)]
pub(crate) struct Registry {
    /// Every function, by name.
    pub(crate) functions: Vec<Arc<Definition>>,
    /// What was skipped and why (the session's first statement reports them as notices).
    pub(crate) warnings: Vec<String>,
    /// The infix and postfix operators.
    pub(crate) operators: Arc<Operators>,
}

impl Registry {
    /// The built-ins, then the `sql_function` cascades under `base_dir/cascades` (bounded by `limits`;
    /// a broken file is skipped with a warning).
    pub(crate) fn load(builtins: &Builtins, base_dir: &Path, limits: &Limits, engine: &Engine) -> Registry {
        let mut by_name: BTreeMap<String, Arc<Definition>> =
            builtins.0.iter().map(|d| (d.name.clone(), d.clone())).collect();
        let scan = files::scan(base_dir, limits);
        let mut warnings = scan.warnings;
        for found in scan.files {
            let definition = match Definition::from_text(&found.path, &found.shown, &found.text, engine) {
                Ok(Some(d)) => d,
                Ok(None) => continue,
                Err(e) => {
                    warnings.push(format!("semantic SQL: {} is skipped: {e}", found.shown));
                    continue;
                }
            };
            match by_name.get(&definition.name) {
                Some(earlier) if earlier.source != BUILTIN_SOURCE => warnings.push(format!(
                    "semantic SQL: {} is skipped: {} already defines the function `{}`; rename one",
                    found.shown, earlier.source, definition.name
                )),
                _ => {
                    by_name.insert(definition.name.clone(), Arc::new(definition));
                }
            }
        }
        let functions: Vec<Arc<Definition>> = by_name.into_values().collect();
        let operators = Arc::new(operator_table(&functions, &mut warnings));
        Registry {
            functions,
            warnings,
            operators,
        }
    }
}

/// The infix and postfix operators of `functions`; a spelling defined twice keeps the first.
fn operator_table(functions: &[Arc<Definition>], warnings: &mut Vec<String>) -> Operators {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut list = Vec::new();
    for f in functions {
        for t in &f.templates {
            let (keywords, fixity) = match &t.form {
                Form::Infix { keywords } => (keywords, Fixity::Infix),
                Form::Postfix { keywords } => (keywords, Fixity::Postfix),
                Form::Call { .. } | Form::Stage { .. } | Form::Other => continue,
            };
            let spelling = keywords.join(" ");
            let Some(positions) = positions(f, t) else {
                warnings.push(format!(
                    "semantic SQL: the operator `{spelling}` of `{}` ({}) is not loaded: its placeholders \
                     must name the function's required arguments, each once",
                    f.name, f.source
                ));
                continue;
            };
            if let Some(owner) = seen.get(&spelling) {
                warnings.push(format!(
                    "semantic SQL: the operator `{spelling}` of `{}` ({}) is not loaded: `{owner}` already \
                     uses it",
                    f.name, f.source
                ));
                continue;
            }
            seen.insert(spelling, f.name.clone());
            list.push(Operator {
                keywords: keywords.clone(),
                function: f.name.clone(),
                fixity,
                predicate: f.returns() == SqlType::Boolean,
                positions,
            });
        }
    }
    // `a SIMILAR_TO b`: the native `semantic_similarity` (`embed/`), unless a file took the spelling or
    // the name.
    let native_taken = functions.iter().any(|f| f.name == "semantic_similarity");
    if !native_taken && !seen.contains_key("SIMILAR_TO") {
        list.push(Operator {
            keywords: vec!["SIMILAR_TO".to_owned()],
            function: "semantic_similarity".to_owned(),
            fixity: Fixity::Infix,
            predicate: false,
            positions: vec![0, 1],
        });
    }
    let aggregates = functions
        .iter()
        .filter(|f| f.unsupported.is_none() && f.spec.call_shape() == SqlShape::Aggregate)
        .flat_map(|f| f.call_names());
    let scores = functions
        .iter()
        .filter(|f| {
            f.unsupported.is_none()
                && matches!(f.spec.call_shape(), SqlShape::Scalar | SqlShape::Row)
                && f.returns() == SqlType::Double
        })
        .flat_map(|f| f.call_names())
        .chain((!native_taken).then(|| "semantic_similarity".to_owned()));
    Operators::new(list)
        .with_aggregates(aggregates)
        .with_scores(scores)
}

/// The argument position of each placeholder of `t`, when they are the first k arguments of `f` (k at
/// least the required ones), each once.
fn positions(f: &Definition, t: &Template) -> Option<Vec<usize>> {
    let positions: Vec<usize> = t
        .args
        .iter()
        .map(|a| f.spec.args.iter().position(|d| &d.name == a))
        .collect::<Option<_>>()?;
    let mut sorted = positions.clone();
    sorted.sort_unstable();
    let first_k = sorted.iter().enumerate().all(|(i, p)| i == *p);
    (first_k && positions.len() >= f.required()).then_some(positions)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rvbbit_cascade::validate::{Options, validate_loaded};
    use rvbbit_cascade::{Catalog, load_str};

    use super::*;

    /// `rvbbit validate --strict` accepts every shipped operator file: no error, no warning.
    #[test]
    fn every_builtin_operator_file_validates_strictly() {
        for (file, text) in BUILTIN {
            let loaded = load_str(Path::new(file), text);
            let options = Options {
                strict: true,
                ..Options::default()
            };
            let report = validate_loaded(loaded, &mut Catalog::builtin(), &options);
            assert_eq!(report.counts(), (0, 0), "{file}: {:?}", report.diagnostics());
            let doc = report.loaded.document.as_ref().unwrap();
            let spec = doc.cascade().unwrap().sql_function.as_ref().unwrap();
            assert_eq!(spec.name.as_deref(), file.strip_suffix(".yaml"), "{file}");
            for t in &spec.operators {
                assert!(operator::parse(t).is_ok(), "{file}: {t}");
            }
        }
    }
}
