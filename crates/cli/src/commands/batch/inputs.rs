//! The inputs of a batch: the files a glob matches, the lines of a JSONL file or the rows of a CSV file,
//! each turned into a cascade input with a name that is safe as a folder name. A bad input (unreadable,
//! too large, malformed) becomes an input that fails alone (RVB-B004); a batch with no input at all, or
//! more than `batch.max_inputs`, is refused before anything runs (RVB-B003).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use rvbbit_core::codes;
use rvbbit_core::config::BatchConfig;
use serde_json::{Map, Value, json};

use crate::commands::{Coded, Failure};

/// One input of a batch.
#[derive(Clone, Debug)]
pub(super) struct Input {
    /// Its name: a safe folder name, unique in the batch.
    pub(super) name: String,
    /// Where it came from, for messages: a file, or `FILE:LINE`.
    pub(super) source: String,
    /// The cascade input, or why there is none.
    pub(super) value: Result<Value, String>,
}

/// Read the inputs `spec` names: a `.jsonl` or `.csv` file that exists, or else a glob of files.
pub(super) fn collect(spec: &str, limits: &BatchConfig) -> Result<Vec<Input>, Failure> {
    let path = Path::new(spec);
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let mut inputs = if path.is_file() && ext.eq_ignore_ascii_case("jsonl") {
        jsonl(path, limits)?
    } else if path.is_file() && ext.eq_ignore_ascii_case("csv") {
        csv_rows(path, limits)?
    } else {
        files(spec, limits)?
    };
    if inputs.is_empty() {
        return Err(no_inputs(
            format!("`--inputs {spec}` gives no input: no file matches it, or the file has no row"),
            "check the pattern with `ls` (quote it so the shell does not expand it), or pass a JSONL/CSV file with at least one row",
        ));
    }
    unique_names(&mut inputs);
    Ok(inputs)
}

fn no_inputs(message: String, hint: &str) -> Failure {
    Failure::Coded(Coded {
        code: codes::B_NO_INPUTS,
        message,
        hint: hint.into(),
        causes: Vec::new(),
    })
}

fn too_many(spec: &str, limits: &BatchConfig) -> Failure {
    no_inputs(
        format!(
            "`--inputs {spec}` gives more than {} inputs (batch.max_inputs)",
            limits.max_inputs
        ),
        "split the batch, or raise `batch.max_inputs` (rvbbit.toml or RVBBIT_BATCH__MAX_INPUTS)",
    )
}

/// A JSONL file: one input per non-blank line (an object as it is; another value as `{"value": …}`).
fn jsonl(path: &Path, limits: &BatchConfig) -> Result<Vec<Input>, Failure> {
    let file = std::fs::File::open(path).map_err(|e| unreadable(path, &e))?;
    let stem = stem(path);
    let mut reader = BufReader::new(file);
    let mut out = Vec::new();
    let mut line_no = 0usize;
    let cap = usize::try_from(limits.max_input_bytes).unwrap_or(usize::MAX);
    loop {
        line_no += 1;
        let mut buf = Vec::new();
        // Read at most one byte past the cap, so a huge line is refused without holding it all.
        let n = (&mut reader)
            .take(limits.max_input_bytes.saturating_add(1))
            .read_until(b'\n', &mut buf)
            .map_err(|e| unreadable(path, &e))?;
        if n == 0 {
            break;
        }
        let source = format!("{}:{line_no}", path.display());
        let value = if buf.len() > cap && !buf.ends_with(b"\n") {
            // Skip the rest of the long line.
            let mut rest = Vec::new();
            reader
                .read_until(b'\n', &mut rest)
                .map_err(|e| unreadable(path, &e))?;
            Err(format!(
                "line {line_no} is longer than {} bytes (batch.max_input_bytes)",
                limits.max_input_bytes
            ))
        } else {
            let text = String::from_utf8_lossy(&buf);
            if text.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(text.trim()) {
                Ok(Value::Object(m)) => Ok(Value::Object(m)),
                Ok(other) => Ok(json!({ "value": other })),
                Err(e) => Err(format!("line {line_no} is not valid JSON: {e}")),
            }
        };
        out.push(Input {
            name: format!("{stem}-{line_no}"),
            source,
            value,
        });
        if out.len() as u64 > limits.max_inputs {
            return Err(too_many(&path.display().to_string(), limits));
        }
    }
    Ok(out)
}

/// A CSV file with a header row: one input per row, an object of the header's columns (strings).
fn csv_rows(path: &Path, limits: &BatchConfig) -> Result<Vec<Input>, Failure> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| unreadable(path, &e))?;
    let headers = reader.headers().map_err(|e| unreadable(path, &e))?.clone();
    let stem = stem(path);
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        // Row numbers count the header as line 1, as an editor shows them.
        let row = i + 2;
        let value = match record {
            Err(e) => Err(format!("row {row} cannot be read: {e}")),
            Ok(r) if r.len() != headers.len() => Err(format!(
                "row {row} has {} field(s), the header has {}",
                r.len(),
                headers.len()
            )),
            Ok(r) if r.as_byte_record().as_slice().len() as u64 > limits.max_input_bytes => Err(format!(
                "row {row} is longer than {} bytes (batch.max_input_bytes)",
                limits.max_input_bytes
            )),
            Ok(r) => {
                let mut m = Map::new();
                for (h, v) in headers.iter().zip(r.iter()) {
                    m.insert(h.to_owned(), Value::String(v.to_owned()));
                }
                Ok(Value::Object(m))
            }
        };
        out.push(Input {
            name: format!("{stem}-{row}"),
            source: format!("{}:{row}", path.display()),
            value,
        });
        if out.len() as u64 > limits.max_inputs {
            return Err(too_many(&path.display().to_string(), limits));
        }
    }
    Ok(out)
}

/// The files a glob matches, in order. A `.json` file holding an object is that object; any other file
/// is `{"name", "path", "content"}` (UTF-8 text). Every file must resolve (after links) inside the
/// pattern's folder.
fn files(spec: &str, limits: &BatchConfig) -> Result<Vec<Input>, Failure> {
    matched(spec, limits, &|path, root| read_file(path, root, limits))
}

/// The files a glob matches as references, for `rvbbit exec --batch`: `{"name", "path", "sha256",
/// "size"}` with `path` absolute (after links, inside the pattern's folder) and the file any size up to
/// `max_bytes`, text or not. Names are made safe and unique.
pub(super) fn file_refs(spec: &str, limits: &BatchConfig, max_bytes: u64) -> Result<Vec<Input>, Failure> {
    let mut inputs = matched(spec, limits, &|path, root| {
        let real = std::fs::canonicalize(path).map_err(|e| format!("cannot be read: {e}"))?;
        if !real.starts_with(root) {
            return Err(format!(
                "resolves to {} (through a link), outside {}: refused",
                real.display(),
                root.display()
            ));
        }
        let (sha256, size) = super::script_env::file_digest(&real, max_bytes)?;
        Ok(json!({
            "name": path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            "path": real.display().to_string(),
            "sha256": sha256,
            "size": size,
        }))
    })?;
    if inputs.is_empty() {
        return Err(no_inputs(
            format!("`--batch {spec}` matches no file"),
            "check the pattern with `ls` (quote it so the shell does not expand it)",
        ));
    }
    unique_names(&mut inputs);
    Ok(inputs)
}

/// The files `spec` matches, each read by `read` (given the file and the pattern's folder after links).
fn matched(
    spec: &str,
    limits: &BatchConfig,
    read: &dyn Fn(&Path, &Path) -> Result<Value, String>,
) -> Result<Vec<Input>, Failure> {
    let paths = glob::glob(spec).map_err(|e| {
        no_inputs(
            format!("`--inputs {spec}` is not a valid pattern: {e}"),
            "use `*`, `?`, `[...]` and `**` as in a shell, or name a .jsonl or .csv file that exists",
        )
    })?;
    let base = literal_base(spec);
    let root = std::fs::canonicalize(&base).unwrap_or_else(|_| base.clone());
    let mut out = Vec::new();
    for entry in paths {
        let path = match entry {
            Ok(p) => p,
            Err(e) => {
                out.push(Input {
                    name: "unreadable".into(),
                    source: e.path().display().to_string(),
                    value: Err(format!("cannot be read: {}", e.error())),
                });
                continue;
            }
        };
        if path.is_dir() {
            continue;
        }
        let rel = path.strip_prefix(&base).unwrap_or(&path);
        let name = rel
            .with_extension("")
            .display()
            .to_string()
            .replace(['/', '\\'], "_");
        out.push(Input {
            name,
            source: path.display().to_string(),
            value: read(&path, &root),
        });
        if out.len() as u64 > limits.max_inputs {
            return Err(too_many(spec, limits));
        }
    }
    Ok(out)
}

fn read_file(path: &Path, root: &Path, limits: &BatchConfig) -> Result<Value, String> {
    let real = std::fs::canonicalize(path).map_err(|e| format!("cannot be read: {e}"))?;
    if !real.starts_with(root) {
        return Err(format!(
            "resolves to {} (through a link), outside {}: refused",
            real.display(),
            root.display()
        ));
    }
    let meta = std::fs::metadata(&real).map_err(|e| format!("cannot be read: {e}"))?;
    if meta.len() > limits.max_input_bytes {
        return Err(format!(
            "is {} bytes, more than {} (batch.max_input_bytes)",
            meta.len(),
            limits.max_input_bytes
        ));
    }
    let bytes = std::fs::read(&real).map_err(|e| format!("cannot be read: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| "is not UTF-8 text".to_owned())?;
    let is_json = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json && let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&text) {
        return Ok(Value::Object(m));
    }
    Ok(json!({
        "name": path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        "path": path.display().to_string(),
        "content": text,
    }))
}

/// The folder part of a pattern before its first wildcard (`data/in/*.txt` → `data/in`).
fn literal_base(spec: &str) -> PathBuf {
    let mut base = PathBuf::new();
    for part in Path::new(spec).components() {
        let s = part.as_os_str().to_string_lossy();
        if s.contains(['*', '?', '[']) {
            break;
        }
        base.push(part);
    }
    if base.as_os_str() == spec || base.as_os_str().is_empty() {
        // A pattern without wildcards names a file: its folder is the base.
        return Path::new(spec)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    }
    base
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "input".into(), |s| s.to_string_lossy().into_owned())
}

fn unreadable(path: &Path, e: &dyn std::fmt::Display) -> Failure {
    no_inputs(
        format!("the input file {} cannot be read: {e}", path.display()),
        "check that the file exists and is readable",
    )
}

/// A name safe as one folder name: letters, digits, `.`, `_` and `-` (others become `_`), no leading
/// dot, at most 100 characters.
pub(super) fn safe_name(raw: &str) -> String {
    let mut s: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    while s.starts_with('.') {
        s.replace_range(0..1, "_");
    }
    s.truncate(100);
    if s.is_empty() { "input".into() } else { s }
}

/// Make every name safe and unique (`name`, `name-2`, `name-3`, …).
fn unique_names(inputs: &mut [Input]) {
    let mut seen = BTreeSet::new();
    for input in inputs {
        let base = safe_name(&input.name);
        let mut name = base.clone();
        let mut n = 2;
        while !seen.insert(name.to_ascii_lowercase()) {
            name = format!("{base}-{n}");
            n += 1;
        }
        input.name = name;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_folder_names() {
        assert_eq!(safe_name("../../etc/passwd"), "_._.._etc_passwd");
        assert_eq!(safe_name(".hidden"), "_hidden");
        assert_eq!(safe_name(""), "input");
        assert_eq!(safe_name("a b/c"), "a_b_c");
        assert_eq!(safe_name(&"x".repeat(300)).len(), 100);
        assert!(!safe_name("..").starts_with('.'));
    }

    #[test]
    fn duplicate_names_get_a_suffix() {
        let mut inputs: Vec<Input> = ["a", "A", "a", "b"]
            .iter()
            .map(|n| Input {
                name: (*n).into(),
                source: String::new(),
                value: Ok(Value::Null),
            })
            .collect();
        unique_names(&mut inputs);
        let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, vec!["a", "A-2", "a-3", "b"]);
    }

    #[test]
    fn the_base_of_a_pattern_is_its_literal_folder() {
        assert_eq!(literal_base("data/in/*.txt"), PathBuf::from("data/in"));
        assert_eq!(literal_base("*.txt"), PathBuf::from("."));
        assert_eq!(literal_base("data/one.txt"), PathBuf::from("data"));
        assert_eq!(literal_base("one.txt"), PathBuf::from("."));
    }
}
