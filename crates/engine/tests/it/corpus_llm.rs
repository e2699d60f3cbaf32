//! More LLM corpus cascades against the testkit server: route, outputs, LLM calls and events.

use std::sync::Arc;

use rvbbit_core::{EventKind, SessionStatus};
use rvbbit_llm::{Client, ProviderSettings};
use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::{Value, json};

use crate::support::{Harness, corpus};

fn texts(body: &Value) -> Vec<String> {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().map(str::to_owned).unwrap_or_default())
        .collect()
}

/// Run a corpus file with scripted text replies; check the path, the number of LLM calls and that every
/// call and cell is in the store.
async fn run_corpus(
    file: &str,
    input: Value,
    replies: &[&str],
    path: &[&str],
) -> (rvbbit_engine::Outcome, Vec<Value>) {
    let server = TestServer::start(Script::sequence(replies.iter().map(|r| Reply::text(*r)))).await;
    let h = Harness::new().await;
    let out = h
        .run(&h.llm_engine(&server.base_url()), corpus(file), input)
        .await;
    assert_eq!(out.status, SessionStatus::Completed, "{file}: {:?}", out.error);
    assert_eq!(out.path, path, "{file}");
    assert_eq!(out.llm_calls as usize, replies.len(), "{file}");
    assert_eq!(server.requests() as usize, replies.len(), "{file}");
    assert_eq!(
        h.count(&out.session_id, EventKind::LlmResponse).await,
        replies.len(),
        "{file}"
    );
    assert_eq!(
        h.count(&out.session_id, EventKind::CellComplete).await,
        path.len(),
        "{file}"
    );
    assert_eq!(out.output, json!(replies.last().unwrap()), "{file}");
    let bodies = server.bodies();
    server.shutdown().await;
    (out, bodies)
}

#[tokio::test]
async fn corpus_simple_yaml_test_renders_the_input() {
    let (_, bodies) = run_corpus(
        "simple_yaml_test.yaml",
        json!({"topic": "tides"}),
        &["Tides are..."],
        &["explain"],
    )
    .await;
    assert!(texts(&bodies[0])[0].contains("**Topic:** tides"));
}

#[tokio::test]
async fn corpus_thinking_models_send_the_reasoning_suffix_as_reasoning() {
    for file in ["thinking_quick_test.yaml", "thinking_effort_levels.yaml"] {
        let cell = if file.starts_with("thinking_quick") {
            "calculate"
        } else {
            "reason"
        };
        let (_, bodies) = run_corpus(
            file,
            json!({"num1": 6, "num2": 7, "question": "why?"}),
            &["42"],
            &[cell],
        )
        .await;
        assert_eq!(bodies[0]["model"], "anthropic/claude-sonnet-4", "{file}");
        assert_eq!(bodies[0]["reasoning"]["effort"], "high", "{file}");
    }
}

#[tokio::test]
async fn corpus_context_basic_test_injects_only_the_named_cell() {
    let (out, bodies) = run_corpus(
        "context_basic_test.yaml",
        json!({}),
        &[
            "Hello from Phase A! The secret code is ALPHA-123.",
            "Hello from Phase B! The secret code is BETA-456.",
            "I only see code: ALPHA-123",
        ],
        &["phase_a", "phase_b", "phase_c_selective"],
    )
    .await;
    let third = texts(&bodies[2]).join("\n");
    assert!(
        third.contains("Hello from Phase A") && !third.contains("Hello from Phase B"),
        "{third}"
    );
    assert!(!third.contains("## Input"), "include_input: false");
    assert_eq!(
        out.state["output_phase_b"],
        "Hello from Phase B! The secret code is BETA-456."
    );
}

#[tokio::test]
async fn corpus_model_override_test_uses_each_cells_model_then_the_default() {
    let (_, bodies) = run_corpus(
        "model_override_test.yaml",
        json!({"task": "plan"}),
        &["overview", "details", "summary"],
        &["fast_analysis", "detailed_processing", "default_model_phase"],
    )
    .await;
    let models: Vec<&str> = bodies.iter().map(|b| b["model"].as_str().unwrap()).collect();
    assert_eq!(
        models,
        [
            "x-ai/grok-4.1-fast:free",
            "anthropic/claude-3.5-sonnet",
            "test/model"
        ]
    );
}

/// Corpus cascades that only use supported features: each runs to completion with scripted replies,
/// along the expected path, with one LLM call per turn, and every call and cell recorded.
#[tokio::test]
async fn corpus_plain_llm_cascades_follow_their_handoffs() {
    let cases: &[(&str, Value, &[&str], usize)] = &[
        (
            "code_reviewer.yaml",
            json!({"code": "x=1", "language": "python"}),
            &["security_review", "quality_review"],
            2,
        ),
        ("context_demo_child.yaml", json!({}), &["child_step"], 1),
        (
            "context_inject_demo.yaml",
            json!({}),
            &["original_design", "feedback", "revision", "compare"],
            4,
        ),
        (
            "context_messages_demo.yaml",
            json!({}),
            &["research_phase", "summarize", "detailed_analysis"],
            3,
        ),
        (
            "context_selective_demo.yaml",
            json!({"topic": "bees"}),
            &[
                "generate_ideas",
                "add_context",
                "selective_analysis",
                "final_summary",
            ],
            4,
        ),
        (
            "context_sugar_demo.yaml",
            json!({}),
            &["original_problem", "brainstorm", "draft", "review", "final"],
            5,
        ),
        (
            "context_system_test.yaml",
            json!({}),
            &["phase_a", "phase_b", "phase_c", "phase_d", "phase_e"],
            5,
        ),
        ("nested_child.yaml", json!({}), &["sub_greet"], 1),
        (
            "thinking_combined_test.yaml",
            json!({"riddle": "?"}),
            &["solve_with_budget", "solve_with_effort"],
            2,
        ),
        (
            "thinking_mode_test.yaml",
            json!({"problem": "?"}),
            &["think_high", "think_medium_budget"],
            2,
        ),
        (
            "thinking_token_budget.yaml",
            json!({"puzzle": "?"}),
            &["solve"],
            1,
        ),
        (
            "turn_prompt_code_review.yaml",
            json!({"language": "rust", "problem": "sum"}),
            &["solve_problem"],
            3,
        ),
        (
            "turn_prompt_demo.yaml",
            json!({"requirements": "short", "topic": "owls"}),
            &["write_content"],
            3,
        ),
        (
            "auto_context_comparison_WITHOUT.yaml",
            json!({}),
            &["research", "analysis", "synthesis"],
            3,
        ),
    ];
    for (file, input, path, calls) in cases {
        let replies: Vec<String> = (0..*calls).map(|i| format!("reply {i} of {file}")).collect();
        let refs: Vec<&str> = replies.iter().map(String::as_str).collect();
        let (out, _) = run_corpus(file, input.clone(), &refs, path).await;
        for (cell, expected) in path.iter().zip(out.lineage.iter()) {
            assert_eq!(expected.cell, *cell, "{file}");
        }
    }
}

/// All message texts of a request body, joined.
fn all_text(body: &Value) -> String {
    texts(body).join("\n")
}

#[tokio::test]
async fn corpus_contact_extractor_reasks_with_the_schema_error_then_confirms() {
    let (out, bodies) = run_corpus(
        "contact_extractor_flow.yaml",
        json!({"text": "Call Ada Lovelace on 555-0100 or write to ada@example.org"}),
        &[
            // Not an email: the schema's pattern fails, the cell re-asks with its retry_instructions.
            r#"{"name": "Ada Lovelace", "email": "ada at example", "phone": "555-0100"}"#,
            r#"{"name": "Ada Lovelace", "email": "ada@example.org", "phone": "555-0100"}"#,
            "Contact confirmed.",
        ],
        &["extract_contact", "confirm"],
    )
    .await;
    let retry = all_text(&bodies[1]);
    assert!(retry.contains("Schema Error"), "{retry}");
    assert!(retry.contains("Attempt 2/3"), "{retry}");
    assert!(
        retry.contains("email"),
        "the error names the failing field: {retry}"
    );
    let confirm = all_text(&bodies[2]);
    assert!(confirm.contains("- Email: ada@example.org"), "{confirm}");
    assert!(confirm.contains("- Phone: 555-0100"), "{confirm}");
    assert_eq!(out.state["validated_output"]["name"], "Ada Lovelace");
}

#[tokio::test]
async fn corpus_product_catalog_validates_nested_objects_and_fenced_json() {
    let (out, bodies) = run_corpus(
        "product_catalog_flow.yaml",
        json!({"product_description": "a brass desk lamp"}),
        &[
            // specifications.material missing: a nested required key.
            r#"{"product_name": "Desk Lamp", "category": "Lighting", "price": 49.5, "in_stock": true,
                "specifications": {"dimensions": "40cm", "weight": "1kg"}, "tags": ["brass"]}"#,
            "Here it is:\n```json\n{\"product_name\": \"Desk Lamp\", \"category\": \"Lighting\", \"price\": 49.5, \
             \"in_stock\": true, \"specifications\": {\"dimensions\": \"40cm\", \"weight\": \"1kg\", \
             \"material\": \"brass\"}, \"tags\": [\"brass\"]}\n```",
            "Ready.",
        ],
        &["create_catalog_entry", "summary"],
    )
    .await;
    let retry = all_text(&bodies[1]);
    assert!(retry.contains("Product Schema Validation Failed"), "{retry}");
    assert!(retry.contains("material"), "{retry}");
    let summary = all_text(&bodies[2]);
    assert!(summary.contains("Product: Desk Lamp"), "{summary}");
    assert!(summary.contains("Price: $49.5"), "{summary}");
    assert_eq!(
        out.state["validated_output"]["specifications"]["material"],
        "brass"
    );
}

#[tokio::test]
async fn corpus_api_response_flow_passes_the_validated_output_to_the_next_cell() {
    let (out, bodies) = run_corpus(
        "api_response_flow.yaml",
        json!({"endpoint": "/users", "data": "two users"}),
        &[
            r#"{"status": "success", "code": 200, "message": "two users found", "data": {"n": 2},
                "timestamp": "2026-11-23T12:00:00Z"}"#,
            "Semantically correct: 2xx with success.",
        ],
        &["generate_response", "validate_semantics"],
    )
    .await;
    let second = all_text(&bodies[1]);
    assert!(second.contains("Response code: 200"), "{second}");
    assert!(second.contains("Status: success"), "{second}");
    // context.from: [previous] puts the first cell's output into the conversation.
    assert!(second.contains("two users found"), "{second}");
    assert_eq!(out.state["validated_output"]["code"], 200);
}

#[tokio::test]
async fn corpus_scratchpad_demo_extracts_reasoning_into_state() {
    let (out, bodies) = run_corpus(
        "scratchpad_demo.yaml",
        json!({"problem": "split 10 apples among 3"}),
        &[
            "<scratchpad>3 each, 1 left over: cut it in thirds</scratchpad>\nApproach: divide.",
            "Each gets 3 and 1/3 apples.",
            "Verified: reasoning and solution both visible.",
        ],
        &["think", "solve", "verify"],
    )
    .await;
    assert_eq!(out.state["reasoning"], "3 each, 1 left over: cut it in thirds");
    let solve = all_text(&bodies[1]);
    assert!(
        solve.contains("Based on this reasoning:\n\n3 each, 1 left over"),
        "{solve}"
    );
    // context.from: [all] shows both earlier outputs to the last cell.
    let verify = all_text(&bodies[2]);
    assert!(
        verify.contains("Approach: divide.") && verify.contains("Each gets 3 and 1/3 apples."),
        "{verify}"
    );
}

#[tokio::test]
async fn corpus_template_flow_loads_its_instructions_from_a_j2_file() {
    let (_, bodies) = run_corpus(
        "template_flow.yaml",
        json!({"phrase": "I love rainy days", "fruit": "quince"}),
        &["I love rainy days", "Positive; and you like quince."],
        &["echo_phase", "analyze_phase"],
    )
    .await;
    let first = all_text(&bodies[0]);
    assert!(first.contains("Repeat the following phrase exactly: 'I love rainy days'"));
    let second = all_text(&bodies[1]);
    assert!(second.contains("You are a sentiment analyzer."), "{second}");
    assert!(
        second.contains("The user just said: \"I love rainy days\""),
        "{second}"
    );
    assert!(second.contains("their favorite fruit is quince"), "{second}");
}

#[tokio::test]
async fn corpus_test_ollama_routes_the_ollama_prefix_to_the_local_endpoint() {
    let remote = TestServer::start(Script::sequence([Reply::text("wrong endpoint")])).await;
    let local = TestServer::start(Script::sequence([Reply::text(
        "Rayleigh scattering. (running locally on GPU)",
    )]))
    .await;
    let h = Harness::new().await;
    let mut settings = ProviderSettings::new(remote.base_url()).with_api_key("test-key");
    settings.retry.max_retries = 0;
    settings.ollama_base_url = local.base_url();
    let engine = h
        .engine()
        .with_provider(Arc::new(Client::new(settings).unwrap()))
        .with_default_model("test/model");
    let out = h
        .run(
            &engine,
            corpus("test_ollama.yaml"),
            json!({"question": "why is the sky blue?"}),
        )
        .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.output, "Rayleigh scattering. (running locally on GPU)");
    assert_eq!((remote.requests(), local.requests()), (0, 1));
    let body = &local.bodies()[0];
    assert_eq!(body["model"], "gpt-oss:20b", "the ollama/ prefix is stripped");
    assert!(all_text(body).contains("Answer this question concisely: why is the sky blue?"));
    assert_eq!(h.count(&out.session_id, EventKind::LlmResponse).await, 1);
}

#[tokio::test]
async fn corpus_validator_cascade_renders_its_input() {
    let (_, bodies) = run_corpus("validator.yaml", json!({"text": "HELLO"}), &["YES"], &["check"]).await;
    assert!(all_text(&bodies[0]).contains("Check if 'HELLO' is all uppercase."));
    assert_eq!(bodies[0]["model"], "test/model");
}
