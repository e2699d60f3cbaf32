//! rvbbit SQL errors → PostgreSQL ErrorResponse fields (SQLSTATE, message, hint, position).

use pgwire::error::{ErrorInfo, PgWireError};

use crate::error::Error;

/// SQLSTATE classes used on the wire.
pub(crate) mod state {
    /// syntax_error
    pub(crate) const SYNTAX: &str = "42601";
    /// undefined_table
    pub(crate) const UNDEFINED_TABLE: &str = "42P01";
    /// undefined_column
    pub(crate) const UNDEFINED_COLUMN: &str = "42703";
    /// undefined_function
    pub(crate) const UNDEFINED_FUNCTION: &str = "42883";
    /// undefined_object (unknown setting)
    pub(crate) const UNDEFINED_OBJECT: &str = "42704";
    /// datatype_mismatch
    pub(crate) const DATATYPE_MISMATCH: &str = "42804";
    /// invalid_parameter_value
    pub(crate) const INVALID_PARAMETER: &str = "22023";
    /// invalid_text_representation
    pub(crate) const INVALID_TEXT: &str = "22P02";
    /// invalid_binary_representation
    pub(crate) const INVALID_BINARY: &str = "22P03";
    /// division_by_zero
    pub(crate) const DIVISION_BY_ZERO: &str = "22012";
    /// numeric_value_out_of_range
    pub(crate) const OUT_OF_RANGE: &str = "22003";
    /// feature_not_supported
    pub(crate) const NOT_SUPPORTED: &str = "0A000";
    /// external_routine_exception (an rvbbit function failed in raise mode)
    pub(crate) const EXTERNAL_ROUTINE: &str = "38000";
    /// insufficient_privilege (a file, URL or write the network door refuses)
    pub(crate) const INSUFFICIENT_PRIVILEGE: &str = "42501";
    /// internal_error
    pub(crate) const INTERNAL: &str = "XX000";
    /// admin_shutdown
    pub(crate) const SHUTDOWN: &str = "57P01";
    /// invalid_password
    pub(crate) const INVALID_PASSWORD: &str = "28P01";
    /// protocol_violation
    pub(crate) const PROTOCOL: &str = "08P01";
    /// program_limit_exceeded (a statement over `limits.sql_query_bytes` or `limits.sql_statements`)
    pub(crate) const PROGRAM_LIMIT: &str = "54000";
    /// statement_too_complex (a statement nested deeper than `limits.sql_expression_depth`)
    pub(crate) const TOO_COMPLEX: &str = "54001";
    /// invalid_cursor_name (FETCH, MOVE or CLOSE of a cursor that is not open)
    pub(crate) const UNDEFINED_CURSOR: &str = "34000";
    /// duplicate_cursor (DECLARE of a name already open)
    pub(crate) const DUPLICATE_CURSOR: &str = "42P03";
    /// invalid_cursor_state (FETCH from a cursor whose query failed)
    pub(crate) const INVALID_CURSOR_STATE: &str = "24000";
    /// no_active_sql_transaction (DECLARE without HOLD outside a transaction block)
    pub(crate) const NO_TRANSACTION: &str = "25P01";
    /// too_many_connections (more than `limits.pgwire_connections`)
    pub(crate) const TOO_MANY_CONNECTIONS: &str = "53300";
    /// configuration_limit_exceeded (a spending limit of `rvbbit costs limit` is used up).
    pub(crate) const CONFIGURATION_LIMIT: &str = "53400";
}

/// An ERROR with a SQLSTATE, message and hint.
pub(crate) fn error(code: &str, message: impl Into<String>, hint: impl Into<String>) -> ErrorInfo {
    let mut info = ErrorInfo::new("ERROR".to_owned(), code.to_owned(), message.into());
    let hint = hint.into();
    if !hint.is_empty() {
        info.hint = Some(hint);
    }
    info
}

/// The same as a pgwire error (what the handlers return).
pub(crate) fn user_error(info: ErrorInfo) -> PgWireError {
    PgWireError::UserError(Box::new(info))
}

/// The wire form of a statement's error: SQLSTATE by kind and message, the rvbbit code in the detail,
/// the position (1-based character offset into `sql`) when the parser named a line and column.
pub(crate) fn from_sql_error(err: &Error, sql: &str) -> ErrorInfo {
    let message = err.to_string();
    let lower = message.to_ascii_lowercase();
    let data_error = matches!(err, Error::Invalid { .. } | Error::Execution { .. });
    let code = match err {
        // DataFusion raises these while planning (constant folding) or running
        _ if data_error && (lower.contains("divide by zero") || lower.contains("division by zero")) => {
            state::DIVISION_BY_ZERO
        }
        _ if data_error && lower.contains("overflow") => state::OUT_OF_RANGE,
        _ if data_error && is_cast_error(&lower) => state::INVALID_TEXT,
        Error::Invalid { .. } => {
            if lower.contains("not found") && (lower.contains("table '") || lower.contains("table \"")) {
                state::UNDEFINED_TABLE
            } else if lower.contains("no field named")
                || lower.contains("column '") && lower.contains("not found")
            {
                state::UNDEFINED_COLUMN
            } else if lower.contains("invalid function") || lower.contains("unknown function") {
                state::UNDEFINED_FUNCTION
            } else if lower.contains("cannot coerce arithmetic expression") || lower.contains("no operator") {
                // PostgreSQL: operator does not exist (integer + text)
                state::UNDEFINED_FUNCTION
            } else if lower.contains("cannot infer common argument type")
                || lower.contains("no function matches")
                || lower.contains("coercion")
            {
                state::DATATYPE_MISMATCH
            } else if lower.contains("not implemented") || lower.contains("unsupported") {
                state::NOT_SUPPORTED
            } else {
                state::SYNTAX
            }
        }
        Error::Argument { .. } => {
            if lower.contains("unknown setting") || lower.contains("unrecognized") {
                state::UNDEFINED_OBJECT
            } else {
                state::INVALID_PARAMETER
            }
        }
        Error::FunctionFailed { .. } => state::EXTERNAL_ROUTINE,
        Error::Refused { .. } => state::INSUFFICIENT_PRIVILEGE,
        Error::Limit { .. } if lower.contains("sql_expression_depth") => state::TOO_COMPLEX,
        Error::Limit { .. } => state::PROGRAM_LIMIT,
        Error::Annotation { .. } => state::PROGRAM_LIMIT,
        Error::StatementOption { .. } => state::INVALID_PARAMETER,
        Error::StagePosition { .. } => state::NOT_SUPPORTED,
        Error::SpendLimit { .. } => state::CONFIGURATION_LIMIT,
        Error::Queue { code, .. } if code.code == "RVB-S031" => state::PROGRAM_LIMIT,
        Error::Queue { .. } => state::EXTERNAL_ROUTINE,
        Error::Execution { .. } => state::INTERNAL,
    };
    let mut info = error(code, first_line(&message), err.hint());
    info.detail = Some(format!("rvbbit error {}", err.code().code));
    if let Some(pos) = position(&message, sql) {
        info.position = Some(pos.to_string());
    }
    info
}

/// Arrow's cast and parse failures of a value (`CAST('x' AS INT)`, `'2024-13-01'::date`).
fn is_cast_error(lower: &str) -> bool {
    lower.contains("cannot cast")
        || lower.contains("cast error")
        || lower.contains("can't cast")
        || lower.contains("arrow error: parser error")
        || lower.contains("invalid input syntax")
}

/// DataFusion messages can carry a "Did you mean …" second line: keep it in the message, drop
/// anything that looks like a backtrace.
fn first_line(message: &str) -> String {
    message
        .lines()
        .filter(|l| !l.trim_start().starts_with("at ") && !l.contains("backtrace"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// sqlparser reports `… at Line: L, Column: C`: turn it into a 1-based character offset.
fn position(message: &str, sql: &str) -> Option<usize> {
    let at = message.rfind("Line: ")?;
    let rest = &message[at + 6..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let line: usize = line.trim().parse().ok()?;
    let column: usize = rest
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()?;
    let mut offset = 0;
    for (i, l) in sql.split('\n').enumerate() {
        if i + 1 == line {
            return Some(offset + column.min(l.chars().count() + 1));
        }
        offset += l.chars().count() + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters_across_lines() {
        assert_eq!(
            position("Expected: x, found: y at Line: 1, Column: 8", "SELECT * FRM t"),
            Some(8)
        );
        assert_eq!(
            position("found: y at Line: 2, Column: 3", "SELECT 1\nFRM t"),
            Some(12)
        );
        assert_eq!(position("no position", "SELECT"), None);
    }

    #[test]
    fn kinds_map_to_sqlstates() {
        let sql = "SELECT * FROM nope";
        let e = Error::Invalid {
            message: "table 'datafusion.public.nope' not found".into(),
        };
        assert_eq!(from_sql_error(&e, sql).code, "42P01");
        let e = Error::Invalid {
            message: "No field named x.".into(),
        };
        assert_eq!(from_sql_error(&e, sql).code, "42703");
        let e = Error::Invalid {
            message: "Invalid function 'nope'.\nDid you mean 'now'?".into(),
        };
        let info = from_sql_error(&e, sql);
        assert_eq!(info.code, "42883");
        assert!(!info.message.contains('\n'));
        let e = Error::Argument {
            message: "`rvbbit.cache` cannot be 'x'".into(),
        };
        assert_eq!(from_sql_error(&e, sql).code, "22023");
        let e = Error::SpendLimit {
            message: "the day limit of everything ($1) is used up".into(),
            hint: "raise it with `rvbbit costs limit set AMOUNT/day`".into(),
        };
        let info = from_sql_error(&e, sql);
        assert_eq!(info.code, "53400");
        assert_eq!(info.detail.as_deref(), Some("rvbbit error RVB-B030"));
    }

    #[test]
    fn data_errors_map_to_class_22() {
        let sql = "SELECT 1";
        let exec = |m: &str| Error::Execution { message: m.into() };
        let plan = |m: &str| Error::Invalid { message: m.into() };
        assert_eq!(
            from_sql_error(&exec("Arrow error: Divide by zero error"), sql).code,
            "22012"
        );
        assert_eq!(from_sql_error(&plan("Divide by zero error"), sql).code, "22012");
        assert_eq!(
            from_sql_error(
                &exec("Cast error: Cannot cast string 'x' to value of Int32 type"),
                sql
            )
            .code,
            "22P02"
        );
        assert_eq!(
            from_sql_error(
                &exec("Arrow error: Arithmetic overflow: Overflow happened on: 9223372036854775807 + 1"),
                sql
            )
            .code,
            "22003"
        );
        assert_eq!(
            from_sql_error(
                &plan("Cannot coerce arithmetic expression Int64 + Utf8 to valid types"),
                sql
            )
            .code,
            "42883"
        );
        assert_eq!(from_sql_error(&exec("something else broke"), sql).code, "XX000");
    }
}
