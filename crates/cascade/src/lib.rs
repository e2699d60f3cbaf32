//! The rvbbit cascade language: the typed model, parsing with source spans, validation into diagnostics,
//! JSON Schema export and template checks.
//!
//! This crate reads and explains cascade files; it never runs anything, and knows nothing of providers or
//! stores. Main entry points:
//!
//! - [`load_file`] / [`load_str`]: read a file (YAML or JSON, every naming era) into a [`Document`] with the
//!   typed [`model::Cascade`] and a spanned tree, collecting [`Diagnostic`]s instead of stopping.
//! - [`validate::validate_file`]: all semantic checks (targets, tools, validators, cycles, templates,
//!   output schemas) against a [`Catalog`] of known tools.
//! - [`render()`](fn@render): diagnostics as text with a source excerpt and caret; [`Diagnostic::to_json`] for machines.
//! - [`schema::export`]: the JSON Schema of the language for editors.
//!
//! ```
//! use std::path::Path;
//! use rvbbit_cascade::{Catalog, load_str, validate};
//!
//! let text = "cascade_id: hello\ncells:\n  - name: greet\n    instructions: 'Hi {{ input.name }}'\n    rules: {max_turn: 2}\n";
//! let loaded = load_str(Path::new("hello.yaml"), text);
//! let report = validate::validate_loaded(loaded, &mut Catalog::builtin(), &validate::Options::default());
//! let diag = &report.diagnostics()[0];
//! assert_eq!(diag.code.code, "RVB-V004"); // unknown key, with a "did you mean `max_turns`?" hint
//! assert_eq!(diag.hint.as_deref(), Some("did you mean `max_turns`?"));
//! ```

pub mod aliases;
pub mod catalog;
mod diagnostic;
mod load;
pub mod model;
pub mod operator;
mod render;
pub mod schema;
mod schema_check;
pub mod source;
pub mod support;
pub mod template;
pub mod validate;
pub mod yaml;

pub use catalog::Catalog;
pub use diagnostic::{Diagnostic, DiagnosticJson, Label, LabelJson, Severity, list_names, similar};
pub use load::{
    Content, Document, Include, Loaded, MAX_FILE_BYTES, load_file, load_file_with, load_str, load_str_with,
    resolve_cascade_ref, resolve_contained, search_bases,
};
pub use render::render;
