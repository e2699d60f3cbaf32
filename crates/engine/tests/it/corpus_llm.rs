//! More LLM corpus cascades against the testkit server: route, outputs, LLM calls and events.

use rvbbit_core::{EventKind, SessionStatus};
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
