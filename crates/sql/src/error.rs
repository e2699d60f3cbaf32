//! Errors of the SQL door, each with a code from [`rvbbit_core::codes`].

use datafusion::error::DataFusionError;
use rvbbit_core::{ErrorCode, codes};

/// A failed SQL statement or setup step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The statement does not parse or plan (RVB-Q001).
    #[error("{message}")]
    Invalid {
        /// What is wrong, with the position when the parser gave one.
        message: String,
    },
    /// The statement failed while running (RVB-Q002).
    #[error("{message}")]
    Execution {
        /// What failed.
        message: String,
    },
    /// An rvbbit function call failed in `raise` mode (RVB-Q003).
    #[error("{message}")]
    FunctionFailed {
        /// The call and the underlying error (with its own code).
        message: String,
    },
    /// A bad argument to an rvbbit function, or a bad `rvbbit.*` setting (RVB-Q004).
    #[error("{message}")]
    Argument {
        /// What is wrong and the accepted values.
        message: String,
    },
    /// A network door refused a file outside the allowed folders, a remote URL or a write (RVB-Q005).
    #[error("{message}")]
    Refused {
        /// What was refused and why, naming the location only as the client wrote it.
        message: String,
    },
    /// The statement exceeds a size, count or depth limit of `rvbbit.toml` `[limits]` (RVB-Q006).
    #[error("{message}")]
    Limit {
        /// Which limit, its setting and value.
        message: String,
    },
    /// The statement's `-- @` annotations are over `rvbbit.max_annotations` or
    /// `rvbbit.max_annotation_bytes` (RVB-Q007).
    #[error("{message}")]
    Annotation {
        /// Which limit, its setting and value, and the line.
        message: String,
    },
    /// The statement's own `WITH (…)` options are malformed, unknown or out of range (RVB-Q008).
    #[error("{message}")]
    StatementOption {
        /// What is wrong, the option, its position and the valid options or values.
        message: String,
    },
    /// `THEN` pipeline stages where they cannot run: after a view's query, after a statement that
    /// makes no table of them, under `EXPLAIN` inside a subquery, or in a subquery that names the
    /// outer query (RVB-Q009).
    #[error("{message}")]
    StagePosition {
        /// Where the stages are and what to write instead.
        message: String,
    },
    /// A spending limit is used up: the statement would start new runs and starts none (RVB-B030,
    /// docs/costs.md).
    #[error("{message}")]
    SpendLimit {
        /// The limit, what it has spent and its period.
        message: String,
        /// The commands that show, raise or remove that limit.
        hint: String,
    },
    /// A distributed statement could not use the queue: none configured, too many rows, a row not
    /// gathered in time, the queue unreachable (RVB-S030…RVB-S033, RVB-S011; exit 5).
    #[error("{message}")]
    Queue {
        /// The code of the failure.
        code: &'static ErrorCode,
        /// What failed, naming the setting involved.
        message: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The error code (decides the exit code and the docs page).
    pub fn code(&self) -> &'static ErrorCode {
        match self {
            Error::Invalid { .. } => codes::Q_SYNTAX,
            Error::Execution { .. } => codes::Q_EXECUTION,
            Error::FunctionFailed { .. } => codes::Q_FUNCTION_FAILED,
            Error::Argument { .. } => codes::Q_ARGUMENT,
            Error::Refused { .. } => codes::Q_REFUSED,
            Error::Limit { .. } => codes::Q_LIMIT,
            Error::Annotation { .. } => codes::Q_ANNOTATION_LIMIT,
            Error::StatementOption { .. } => codes::Q_STATEMENT_OPTION,
            Error::StagePosition { .. } => codes::Q_STAGE_POSITION,
            Error::SpendLimit { .. } => codes::B_SPEND_LIMIT,
            Error::Queue { code, .. } => code,
        }
    }

    /// How to fix it.
    pub fn hint(&self) -> String {
        match self {
            Error::Invalid { message } => invalid_hint(message),
            Error::Execution { .. } => "the message names the failing expression or file".into(),
            Error::FunctionFailed { .. } => {
                "fix the cause named in the message, or `SET rvbbit.udf_errors = 'null'` to get NULL for \
                 failed rows and keep the others"
                    .into()
            }
            Error::Argument { .. } => "see docs/sql.md for the functions, options and settings".into(),
            Error::Refused { .. } => {
                "name a file under the server's working directory or a cascade root, relatively, or \
                 register the data in [sql.tables] of rvbbit.toml; run writes with `rvbbit sql` on the server"
                    .into()
            }
            Error::Limit { .. } => {
                "split the statement or flatten it (IN (…) lists, a join against a table of values), or \
                 raise the named limit in rvbbit.toml [limits]"
                    .into()
            }
            Error::Annotation { .. } => codes::Q_ANNOTATION_LIMIT.fix.into(),
            Error::StatementOption { .. } => codes::Q_STATEMENT_OPTION.fix.into(),
            Error::StagePosition { .. } => codes::Q_STAGE_POSITION.fix.into(),
            Error::SpendLimit { hint, .. } => hint.clone(),
            Error::Queue { code, .. } => code.fix.into(),
        }
    }

    /// Classify a DataFusion error: our own errors come back out of `External`; parse and plan errors
    /// are [`Error::Invalid`]; anything else is [`Error::Execution`].
    pub fn from_datafusion(err: DataFusionError) -> Error {
        if let Some(own) = own_error(&err) {
            return own;
        }
        let err = strip_context(err);
        let message = clean_message(&err);
        match err {
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_) => Error::Invalid { message },
            DataFusionError::Configuration(_) => Error::Argument { message },
            _ => Error::Execution { message },
        }
    }

    /// The same error (variant and message), for one found behind a reference.
    fn same(&self) -> Error {
        match self {
            Error::Invalid { message } => Error::Invalid {
                message: message.clone(),
            },
            Error::Execution { message } => Error::Execution {
                message: message.clone(),
            },
            Error::FunctionFailed { message } => Error::FunctionFailed {
                message: message.clone(),
            },
            Error::Argument { message } => Error::Argument {
                message: message.clone(),
            },
            Error::Refused { message } => Error::Refused {
                message: message.clone(),
            },
            Error::Limit { message } => Error::Limit {
                message: message.clone(),
            },
            Error::Annotation { message } => Error::Annotation {
                message: message.clone(),
            },
            Error::StatementOption { message } => Error::StatementOption {
                message: message.clone(),
            },
            Error::StagePosition { message } => Error::StagePosition {
                message: message.clone(),
            },
            Error::SpendLimit { message, hint } => Error::SpendLimit {
                message: message.clone(),
                hint: hint.clone(),
            },
            Error::Queue { code, message } => Error::Queue {
                code,
                message: message.clone(),
            },
        }
    }

    /// Wrap this error so it travels through DataFusion and comes back out in [`Error::from_datafusion`].
    pub(crate) fn into_datafusion(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
    }
}

/// One of our own errors inside `err`, through every wrapper DataFusion puts around an error on its way
/// out of a plan: context, diagnostics, an error shared between partitions (which cannot be taken out
/// of its `Arc`), and Arrow's external error (an error raised inside a filter or a stream).
fn own_error(err: &DataFusionError) -> Option<Error> {
    match err {
        DataFusionError::External(inner) => match inner.downcast_ref::<Error>() {
            Some(own) => Some(own.same()),
            None => inner.downcast_ref::<DataFusionError>().and_then(own_error),
        },
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => own_error(inner),
        DataFusionError::Shared(inner) => own_error(inner),
        DataFusionError::ArrowError(arrow, _) => match arrow.as_ref() {
            datafusion::arrow::error::ArrowError::ExternalError(inner) => match inner.downcast_ref::<Error>()
            {
                Some(own) => Some(own.same()),
                None => inner.downcast_ref::<DataFusionError>().and_then(own_error),
            },
            _ => None,
        },
        DataFusionError::Collection(errors) => errors.first().and_then(own_error),
        _ => None,
    }
}

/// Remove `Context` and `Shared` wrappers (and collections of one error) to reach the cause.
fn strip_context(err: DataFusionError) -> DataFusionError {
    match err {
        DataFusionError::Context(_, inner) => strip_context(*inner),
        DataFusionError::Shared(inner) => match std::sync::Arc::try_unwrap(inner) {
            Ok(e) => strip_context(e),
            Err(shared) => DataFusionError::Execution(shared.to_string()),
        },
        DataFusionError::Diagnostic(_, inner) => strip_context(*inner),
        // Several errors (planning goes on after a bad SELECT item): classify by the first, keep all
        // messages.
        DataFusionError::Collection(errors) if !errors.is_empty() => {
            let messages: Vec<String> = errors.iter().map(clean_message).collect();
            match strip_context(
                errors
                    .into_iter()
                    .next()
                    .unwrap_or(DataFusionError::Plan(String::new())),
            ) {
                DataFusionError::Plan(_) | DataFusionError::SchemaError(..) => {
                    DataFusionError::Plan(messages.join("; "))
                }
                DataFusionError::SQL(..) => DataFusionError::Plan(messages.join("; ")),
                other => other,
            }
        }
        other => other,
    }
}

/// DataFusion's message without its internal prefixes ("Error during planning: ", "SQL error: ").
fn clean_message(err: &DataFusionError) -> String {
    let text = err.to_string();
    let mut text = text.as_str();
    for prefix in [
        "SQL error: ",
        "Error during planning: ",
        "Schema error: ",
        "This feature is not implemented: ",
        "Execution error: ",
        "Arrow error: ",
        "Invalid or Unsupported Configuration: ",
        "External error: ",
    ] {
        if let Some(rest) = text.strip_prefix(prefix) {
            text = rest;
        }
    }
    // sqlparser's errors print as `ParserError("…")`: keep the sentence (it ends with the position).
    for wrapper in ["ParserError(\"", "TokenizerError(\""] {
        if let Some(inner) = text.strip_prefix(wrapper).and_then(|t| t.strip_suffix("\")")) {
            return inner.replace("\\\"", "\"").replace("\\\\", "\\");
        }
    }
    text.trim().to_owned()
}

/// The hint of an invalid statement, from what its message says: the position when the parser gave one
/// (sqlparser ends its messages with `at Line: L, Column: C`), else what to check for the kind of
/// problem named (a table, a column, a function), never a "reported position" that is not there.
fn invalid_hint(message: &str) -> String {
    let lower = message.to_lowercase();
    if let Some(at) = position(message) {
        return format!(
            "fix the statement near {at}; string values take 'single quotes' (\"double\" ones name columns)"
        );
    }
    if lower.contains("table") && lower.contains("not found") {
        return "`SHOW TABLES` lists the tables of this session; register files in [sql.tables] of \
                rvbbit.toml or with CREATE EXTERNAL TABLE"
            .into();
    }
    if lower.contains("no field named") || lower.contains("column") {
        return "check the column name (`DESCRIBE table` lists the columns); a \"double-quoted\" word is a \
                column name, write text values in 'single quotes'"
            .into();
    }
    if lower.contains("function") {
        return "check the function's name and arguments; `rvbbit_udf(instructions, value [, model [, options]])` \
                and `rvbbit_run(cascade, inputs_json [, field])` are rvbbit's own (docs/sql.md)"
            .into();
    }
    "check the statement's keywords, names and quotes against the message; `SHOW TABLES` lists the \
     tables of this session"
        .into()
}

/// `line L, column C` from a sqlparser message ending in `at Line: L, Column: C`.
fn position(message: &str) -> Option<String> {
    let at = message.rfind("Line: ")?;
    let rest = &message[at + "Line: ".len()..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (line.chars().all(|c| c.is_ascii_digit()) && !line.is_empty() && !column.is_empty())
        .then(|| format!("line {line}, column {column}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_hints_name_the_position_only_when_there_is_one() {
        let parse = Error::Invalid {
            message: "Expected: an expression, found: FROM at Line: 1, Column: 8".into(),
        };
        assert!(parse.hint().contains("line 1, column 8"), "{}", parse.hint());
        let table = Error::Invalid {
            message: "table 'datafusion.public.nope' not found".into(),
        };
        assert!(table.hint().contains("SHOW TABLES"), "{}", table.hint());
        assert!(!table.hint().contains("position"), "{}", table.hint());
        let column = Error::Invalid {
            message: "Schema error: No field named z. Valid fields are t.x.".into(),
        };
        assert!(column.hint().contains("column name"), "{}", column.hint());
        assert_eq!(
            position("found: x at Line: 12, Column: 3"),
            Some("line 12, column 3".into())
        );
        assert_eq!(position("no position here"), None);
    }
}
