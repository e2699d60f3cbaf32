//! The artifacts a session published (`create_artifact` and the chart tools record them as `artifact`
//! events): read back for `rvbbit sessions artifacts`, the HTTP API and the Studio.

use rvbbit_core::{Event, EventKind, SessionId, Timestamp};
use serde_json::Value;

use crate::error::Result;
use crate::model::EventFilter;
use crate::traits::Store;

/// The most artifacts read for one session.
pub const MAX_PUBLISHED: u64 = 10_000;

/// One artifact as recorded: its event's `content`, the cell that published it and when.
#[derive(Clone, Debug, PartialEq)]
pub struct Published {
    /// The publishing cell.
    pub cell: String,
    /// When it was published.
    pub at: Timestamp,
    /// `artifact_id`, `kind`, `title`, `description`, `tags`, `content_type`, `bytes`, `body` and, for a
    /// chart, `svg` or `not_rendered_because`.
    pub content: Value,
}

impl Published {
    /// The artifact's id (`art_` and 16 hex digits), when it has a well-formed one.
    pub fn id(&self) -> Option<&str> {
        self.content
            .get("artifact_id")
            .and_then(Value::as_str)
            .filter(|id| is_artifact_id(id))
    }

    /// A text field of the content (empty when missing).
    pub fn text(&self, key: &str) -> &str {
        self.content.get(key).and_then(Value::as_str).unwrap_or_default()
    }
}

/// Whether `id` is an artifact id: `art_` and 16 lowercase hex digits (safe in file names and URLs).
pub fn is_artifact_id(id: &str) -> bool {
    id.len() == 20
        && id.starts_with("art_")
        && id[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The artifacts of session `id`, in the order they were published; an id published again (a retried
/// call) keeps its last version in its last place. Reads at most [`MAX_PUBLISHED`] events.
///
/// # Errors
/// The store's, when it cannot be read.
pub async fn published(store: &dyn Store, id: &SessionId) -> Result<Vec<Published>> {
    let events = store
        .events(&EventFilter {
            session_id: Some(id.clone()),
            kind: Some(EventKind::Artifact),
            limit: Some(MAX_PUBLISHED),
            ..EventFilter::default()
        })
        .await?;
    Ok(published_from(events.into_iter().map(|s| s.event)))
}

/// The artifacts among `events` (a session's, in order), as [`published`] reads them.
pub fn published_from(events: impl IntoIterator<Item = Event>) -> Vec<Published> {
    let mut out: Vec<Published> = Vec::new();
    for e in events.into_iter().filter(|e| e.kind == EventKind::Artifact) {
        let found = Published {
            cell: e.cell_name.clone().unwrap_or_default(),
            at: e.ts_us,
            content: e.content,
        };
        if let Some(id) = found.id() {
            let id = id.to_owned();
            out.retain(|f| f.id() != Some(id.as_str()));
        }
        out.push(found);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::is_artifact_id;

    #[test]
    fn artifact_ids_are_checked_before_they_name_files_or_urls() {
        assert!(is_artifact_id("art_0123456789abcdef"));
        for bad in [
            "art_0123456789ABCDEF",
            "art_../../etc/passwd",
            "art_0123",
            "xyz_0123456789abcdef",
            "",
        ] {
            assert!(!is_artifact_id(bad), "{bad}");
        }
    }
}
