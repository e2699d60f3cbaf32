//! `read_image`: an image file shown to a vision model. Called by the model of an LLM cell, the image
//! is attached to the conversation as an OpenAI image part (`{"type": "image_url", "image_url": {"url":
//! "data:image/png;base64,…"}}`) in a user message after the tool results (`cells/turns.rs`); called by
//! a deterministic cell, its output describes the image and carries it as a `data:` URL.
//!
//! Bounded: the path must lie inside the cascade's directory, the session directory or a configured
//! root once links are resolved; the file is at most `limits.image_bytes`; its type is sniffed from
//! its first bytes (PNG, JPEG, GIF or WebP only), never taken from its name.

use std::io::Read;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use base64::Engine as _;
use serde_json::{Value, json};

use super::{SideEffect, Tool, ToolContext, ToolError};

/// The key of a tool result holding images for the model (`data:` URLs); the LLM cell takes it out
/// of the text the model reads and attaches the images as image parts.
pub(crate) const IMAGES_KEY: &str = "_images";

/// The content type of an image from its first bytes, for the four types vision models take.
pub(crate) fn sniff(bytes: &[u8]) -> Option<&'static str> {
    match bytes {
        [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, ..] => Some("image/png"),
        [0xff, 0xd8, 0xff, ..] => Some("image/jpeg"),
        [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some("image/gif"),
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some("image/webp"),
        _ => None,
    }
}

/// The directories an image may be read from: the cascade's directory, the session directory and the
/// configured roots, canonicalised (those that do not exist are left out).
fn allowed_bases(ctx: &ToolContext) -> Vec<PathBuf> {
    let mut bases = vec![ctx.session_dir.clone()];
    if let Some(scope) = &ctx.scope {
        bases.extend(scope.cascade_file().and_then(Path::parent).map(Path::to_path_buf));
        bases.extend(scope.roots().iter().cloned());
    }
    bases
        .iter()
        .filter_map(|b| std::fs::canonicalize(b).ok())
        .collect()
}

/// Resolve `path` (relative to the cascade's directory, else the working directory), follow its links
/// and check it stays inside an allowed base. The error names the path as given, never the resolved
/// one.
fn contained(ctx: &ToolContext, path: &str) -> Result<PathBuf, ToolError> {
    let given = Path::new(path);
    let joined = if given.is_absolute() {
        given.to_path_buf()
    } else {
        match ctx
            .scope
            .as_ref()
            .and_then(|s| s.cascade_file())
            .and_then(Path::parent)
        {
            Some(dir) => dir.join(given),
            None => given.to_path_buf(),
        }
    };
    let real = std::fs::canonicalize(&joined)
        .map_err(|e| ToolError::Failed(format!("cannot open the image `{path}`: {}", e.kind())))?;
    if !allowed_bases(ctx).iter().any(|b| real.starts_with(b)) {
        return Err(ToolError::Failed(format!(
            "the image `{path}` is outside the directories rvbbit may read: the cascade's directory, the \
             session directory and the configured `roots` (links are followed before checking); move it \
             there or add its directory to `roots` in rvbbit.toml"
        )));
    }
    Ok(real)
}

/// Read at most `limit` bytes of an image; a larger file, or one that is not PNG, JPEG, GIF or WebP,
/// is an error naming the setting or the types.
fn read_bounded(path: &str, real: &Path, limit: u64) -> Result<(Vec<u8>, &'static str), ToolError> {
    let file = std::fs::File::open(real)
        .map_err(|e| ToolError::Failed(format!("cannot open the image `{path}`: {}", e.kind())))?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| ToolError::Failed(format!("cannot read the image `{path}`: {}", e.kind())))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
        return Err(ToolError::Failed(format!(
            "the image `{path}` is larger than limits.image_bytes = {limit}: make it smaller, or raise \
             limits.image_bytes in rvbbit.toml [limits]"
        )));
    }
    let content_type = sniff(&bytes).ok_or_else(|| {
        ToolError::Failed(format!(
            "`{path}` is not an image a vision model takes: its bytes are not PNG, JPEG, GIF or WebP"
        ))
    })?;
    Ok((bytes, content_type))
}

/// `read_image(path)`: show an image file to the model.
#[derive(Debug)]
pub struct ReadImage;

#[async_trait]
impl Tool for ReadImage {
    fn name(&self) -> &str {
        "read_image"
    }
    fn description(&self) -> &str {
        "Look at an image file (PNG, JPEG, GIF or WebP): it is shown to you after this tool's result."
    }
    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {"path": {"type": "string", "description": "The image file, relative to the cascade's directory."}},
            "required": ["path"]
        })
    }
    fn side_effect(&self) -> SideEffect {
        SideEffect::Pure
    }
    async fn execute(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        // LARS's tools name the argument `path` or `image_path`.
        let path = args
            .get("path")
            .or_else(|| args.get("image_path"))
            .and_then(Value::as_str)
            .ok_or_else(|| ToolError::InvalidArguments("`path` is required and must be a string".into()))?;
        let limit = ctx
            .scope
            .as_ref()
            .map_or(rvbbit_core::config::LimitsConfig::default().image_bytes, |s| {
                s.limits().image_bytes
            });
        let real = contained(ctx, path)?;
        let (bytes, content_type) = read_bounded(path, &real, limit)?;
        let url = format!(
            "data:{content_type};base64,{}",
            base64::engine::general_purpose::STANDARD.encode(&bytes)
        );
        Ok(json!({
            "path": path,
            "content_type": content_type,
            "bytes": bytes.len(),
            "content": format!("Image `{path}` ({content_type}, {} bytes) is attached below.", bytes.len()),
            IMAGES_KEY: [url],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::sniff;

    #[test]
    fn image_types_are_sniffed_from_bytes() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff(b"\xff\xd8\xff\xe0"), Some("image/jpeg"));
        assert_eq!(sniff(b"GIF89a.."), Some("image/gif"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"<svg xmlns=..."), None);
        assert_eq!(sniff(b"\x89PN"), None);
    }
}
