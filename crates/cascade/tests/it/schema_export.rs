//! The exported JSON Schema is valid, knows the era aliases, and accepts the valid corpus files.

use rvbbit_cascade::schema::{ExportTarget, export};

use crate::{corpus_dir, files_under};

#[test]
fn exported_schema_is_a_valid_json_schema_with_aliases() {
    let schema = export(ExportTarget::Cascade);
    assert!(jsonschema::meta::is_valid(&schema));
    let props = schema["properties"].as_object().unwrap();
    assert!(
        props.contains_key("cells") && props.contains_key("phases"),
        "aliases are exported"
    );
    let cell = schema["$defs"]["Cell"]["properties"].as_object().unwrap();
    for key in [
        "traits",
        "tackle",
        "skills",
        "candidates",
        "soundings",
        "takes",
        "htmx",
        "hitl",
    ] {
        assert!(cell.contains_key(key), "Cell lacks {key}");
    }
    assert!(
        !serde_json::to_string(&schema)
            .unwrap()
            .contains("\"default\":null")
    );
}

#[test]
fn exported_schema_accepts_corpus_cascades() {
    let validator = jsonschema::validator_for(&export(ExportTarget::Cascade)).unwrap();
    let mut checked = 0;
    for path in files_under(&corpus_dir()) {
        let loaded = rvbbit_cascade::load_file(&path);
        if loaded.has_errors() {
            continue;
        }
        let Some(doc) = loaded.document else { continue };
        if doc.cascade().is_none() {
            continue;
        }
        let instance = doc.root.to_json();
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .take(3)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        // The editor schema is stricter on scalars than the loader's coercions (`yes` for true, numbers
        // for strings); it must still accept every file that uses plain types.
        if errors.iter().all(|e| !e.contains("is not of type")) {
            assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        }
        checked += 1;
    }
    assert!(checked > 150, "only {checked} cascades checked");
}
