//! `read_image` (issue 19): the model of an LLM cell calls it and the next request carries the image as
//! an OpenAI `image_url` part (the testkit answers depending on it); a file outside the allowed
//! directories, one over `limits.image_bytes` and one that is not an image are coded tool errors.

use rvbbit_core::SessionStatus;
use rvbbit_core::config::LimitsConfig;
use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::json;
use tempfile::TempDir;

use crate::support::{Harness, yaml};

/// A PNG signature and a few bytes: enough for the type to be sniffed.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDRtest-image";

#[tokio::test]
async fn the_model_receives_the_image_it_reads() {
    let root = TempDir::new().unwrap();
    let path = root.path().join("chart.png");
    std::fs::write(&path, PNG).unwrap();
    let path_text = path.display().to_string();
    let asked = path_text.clone();
    // The scripted model asks for the image until a request carries one, then says what it saw.
    let server = TestServer::start(Script::rule(move |body| {
        match rvbbit_testkit::image_urls(body).first() {
            Some(url) => Reply::text(format!("saw {}", &url[..url.find(',').unwrap_or(0)])),
            None => Reply::tool_call("c1", "read_image", json!({"path": asked})),
        }
    }))
    .await;
    let h = Harness::new().await;
    let engine = h
        .llm_engine(&server.base_url())
        .with_roots(vec![root.path().to_path_buf()]);
    let cascade = yaml(
        "cascade_id: vision\ncells:\n  - name: look\n    instructions: Describe the chart.\n    traits: [read_image]\n    use_native_tools: true\n    rules:\n      max_turns: 2\n",
    );
    let out = h.run(&engine, cascade, json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.output, json!("saw data:image/png;base64"));
    let expected = format!(
        "data:image/png;base64,{}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, PNG)
    );
    // The first request had no image; the one after the tool call carries it once (later requests
    // repeat the conversation, image included).
    let bodies = server.bodies();
    assert!(rvbbit_testkit::image_urls(&bodies[0]).is_empty());
    assert_eq!(rvbbit_testkit::image_urls(&bodies[1]), vec![expected.clone()]);
    assert!(server.images().iter().all(|u| *u == expected));
    // The tool result the model read describes the image without repeating its bytes.
    let tool_message = bodies[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap();
    let text = tool_message["content"].as_str().unwrap();
    assert!(text.contains("image/png") && !text.contains("base64"), "{text}");
}

/// A deterministic cell reading `path` with `limits`, under `root`.
async fn read(h: &Harness, root: &TempDir, path: &str, limits: LimitsConfig) -> rvbbit_engine::Outcome {
    let engine = h
        .engine()
        .with_limits(limits)
        .with_roots(vec![root.path().to_path_buf()]);
    let path = serde_json::to_string(path).unwrap();
    h.run(
        &engine,
        yaml(&format!(
            "cascade_id: read\ncells:\n  - name: img\n    tool: read_image\n    inputs:\n      path: {path}\n"
        )),
        json!({}),
    )
    .await
}

fn failure(out: &rvbbit_engine::Outcome) -> (String, String) {
    let e = out.error.as_ref().expect("the cell failed");
    (e.code().code.to_owned(), e.to_string())
}

#[tokio::test]
async fn outside_the_roots_too_big_and_not_an_image_are_coded_errors() {
    let h = Harness::new().await;
    let root = TempDir::new().unwrap();
    let outside = TempDir::new().unwrap();
    std::fs::write(outside.path().join("secret.png"), PNG).unwrap();
    // A link inside the root to a file outside it is followed before the check.
    std::os::unix::fs::symlink(outside.path().join("secret.png"), root.path().join("link.png")).unwrap();
    std::fs::write(root.path().join("big.png"), [PNG, &[0u8; 4096]].concat()).unwrap();
    std::fs::write(root.path().join("notes.png"), "just text").unwrap();
    std::fs::write(root.path().join("ok.png"), PNG).unwrap();

    let inside = |name: &str| root.path().join(name).display().to_string();
    for (path, expected) in [
        (
            outside.path().join("secret.png").display().to_string(),
            "is outside the directories rvbbit may read",
        ),
        (inside("link.png"), "is outside the directories rvbbit may read"),
        (inside("big.png"), "is larger than limits.image_bytes = 1024"),
        (inside("notes.png"), "its bytes are not PNG, JPEG, GIF or WebP"),
    ] {
        let limits = LimitsConfig {
            image_bytes: 1024,
            ..LimitsConfig::default()
        };
        let out = read(&h, &root, &path, limits).await;
        assert_eq!(out.status, SessionStatus::Failed, "{path}");
        let (code, message) = failure(&out);
        assert_eq!(code, "RVB-T001", "{message}");
        assert!(message.contains(expected), "{message}");
        // Errors name the path as given, never where a link led.
        assert!(
            !message.contains(&outside.path().display().to_string()) || path.contains("secret"),
            "{message}"
        );
    }
    let out = read(&h, &root, &inside("ok.png"), LimitsConfig::default()).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.output["content_type"], "image/png");
    assert_eq!(out.output["bytes"], PNG.len());
}
