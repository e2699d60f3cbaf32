//! One line for an error and its causes.

/// The error and its sources on one line, joined by `: ` (a client library's own message often hides
/// the cause that matters, such as "connection refused").
///
/// ```
/// let e = std::io::Error::other("outer");
/// assert_eq!(rvbbit_core::error_chain(&e), "outer");
/// ```
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
