//! Cell-level candidates (takes, soundings): concurrent branches, the evaluator, the pre-filter,
//! multi-model branches, mutations, costs and events, against the testkit server.

use std::time::Duration;

use rvbbit_core::{Event, EventKind, MicroUsd, SessionStatus};
use rvbbit_testkit::{Options, Reply, Script, TestServer};
use serde_json::{Value, json};

use crate::support::{Harness, corpus, yaml, yaml_allowing};

/// Every message text of a request body, in order.
pub fn texts(body: &Value) -> Vec<String> {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().map(str::to_owned).unwrap_or_default())
        .collect()
}

pub fn all_text(body: &Value) -> String {
    texts(body).join("\n")
}

pub fn is_evaluator(body: &Value) -> bool {
    all_text(body).contains("## Attempt ")
}

/// The branch index a prompt names with `take N`.
pub fn take_of(body: &Value) -> usize {
    let t = all_text(body);
    t.match_indices("take ")
        .find_map(|(at, _)| {
            t[at + 5..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()
        })
        .expect("a branch prompt")
}

async fn events_of(h: &Harness, out: &rvbbit_engine::Outcome, kind: EventKind) -> Vec<Event> {
    h.events(&out.session_id)
        .await
        .into_iter()
        .map(|e| e.event)
        .filter(|e| e.kind == kind)
        .collect()
}

const THREE_TAKES: &str = r#"
cascade_id: takes_demo
cells:
  - name: write
    instructions: "Write a haiku, take {{ candidate_index }} of {{ candidate_factor }} ({{ is_candidate }}/{{ take_index }}/{{ sounding_index }})"
    candidates:
      factor: 3
      mutate: false
      evaluator_instructions: "Pick the most vivid haiku."
"#;

#[tokio::test]
async fn takes_run_concurrently_and_the_evaluator_picks_the_scripted_winner() {
    let server = TestServer::start_with(
        Options::new(Script::rule(|body| {
            if is_evaluator(body) {
                Reply::text(r#"{"winner": 2, "reason": "most vivid"}"#).cost(0.001)
            } else {
                Reply::text(format!("haiku {}", take_of(body))).cost(0.002)
            }
        }))
        .latency(Duration::from_millis(300)),
    )
    .await;
    let h = Harness::new().await;
    let out = h
        .run(&h.llm_engine(&server.base_url()), yaml(THREE_TAKES), json!({}))
        .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    // Attempt 2 is candidate index 1.
    assert_eq!(out.output, json!("haiku 1"));
    assert_eq!(out.state["output_write"], json!("haiku 1"));
    // Three branches in flight at once (max_parallel defaults to 3), then the evaluator.
    assert_eq!(server.max_concurrency(), 3);
    assert_eq!(server.requests(), 4);
    assert_eq!(out.llm_calls, 4);
    // Every branch's cost and the evaluator's are in the session cost.
    assert_eq!(out.cost, MicroUsd::from_micros(3 * 2000 + 1000));
    let bodies = server.bodies();
    let prompts: Vec<String> = bodies.iter().filter(|b| !is_evaluator(b)).map(all_text).collect();
    for i in 0..3 {
        assert!(
            prompts
                .iter()
                .any(|p| p.contains(&format!("take {i} of 3 (True/{i}/{i})"))),
            "{prompts:?}"
        );
    }
    let judge = bodies.iter().find(|b| is_evaluator(b)).unwrap();
    let judge_text = all_text(judge);
    assert!(
        judge_text.starts_with("Pick the most vivid haiku."),
        "{judge_text}"
    );
    for (n, out) in [(1, "haiku 0"), (2, "haiku 1"), (3, "haiku 2")] {
        assert!(
            judge_text.contains(&format!("## Attempt {n}\nResult: {out}")),
            "{judge_text}"
        );
    }
    // The evaluator defaults to the cell's model (Proposed §4.6).
    assert_eq!(judge["model"], "test/model");

    // Events: branch calls carry their index; the winner and its reason are recorded.
    let responses = events_of(&h, &out, EventKind::LlmResponse).await;
    let mut indexed: Vec<i32> = responses.iter().filter_map(|e| e.candidate_index).collect();
    indexed.sort_unstable();
    assert_eq!(indexed, [0, 1, 2]);
    assert_eq!(
        responses.iter().filter(|e| e.candidate_index.is_none()).count(),
        1
    );
    assert_eq!(events_of(&h, &out, EventKind::CandidateStart).await.len(), 3);
    let eval = events_of(&h, &out, EventKind::Evaluation).await;
    assert_eq!(eval.len(), 1);
    assert_eq!(eval[0].metadata["winner_index"], 1);
    assert_eq!(eval[0].metadata["reason"], "most vivid");
    let complete = events_of(&h, &out, EventKind::CandidateComplete).await;
    let winners: Vec<(Option<i32>, bool)> = complete
        .iter()
        .map(|e| (e.candidate_index, e.metadata["is_winner"].as_bool().unwrap()))
        .collect();
    assert_eq!(winners, [(Some(0), false), (Some(1), true), (Some(2), false)]);
    assert_eq!(complete[1].content, json!("haiku 1"));
    assert_eq!(complete[0].metadata["cost_micro_usd"], 2000);
    server.shutdown().await;
}

#[tokio::test]
async fn takes_respect_max_parallel() {
    let server = TestServer::start_with(
        Options::new(Script::rule(|body| {
            if is_evaluator(body) {
                Reply::text("4")
            } else {
                Reply::text(format!("draft {}", take_of(body)))
            }
        }))
        .latency(Duration::from_millis(150)),
    )
    .await;
    let h = Harness::new().await;
    let c = yaml(
        r#"
cascade_id: bounded
cells:
  - name: write
    instructions: "Draft, take {{ take_index }}"
    candidates: {factor: 4, max_parallel: 2, mutate: false, evaluator_instructions: "Pick one."}
"#,
    );
    let out = h.run(&h.llm_engine(&server.base_url()), c, json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(server.max_concurrency(), 2);
    assert_eq!(server.requests(), 5);
    // A bare number is read as the winner (Observed protocol, kept as the fallback).
    assert_eq!(out.output, json!("draft 3"));
    server.shutdown().await;
}

#[tokio::test]
async fn branch_state_is_private_and_only_the_winners_state_is_kept() {
    // Each branch calls set_state(pick, i) and then answers; the winner is attempt 3.
    let server = TestServer::start(Script::rule(|body| {
        if is_evaluator(body) {
            return Reply::text(r#"{"winner": 3, "reason": "third"}"#);
        }
        let i = take_of(body);
        if all_text(body).contains("Tool Result (set_state)") {
            Reply::text(format!("stored {i}"))
        } else {
            Reply::text(format!(
                "```json\n{{\"tool\": \"set_state\", \"arguments\": {{\"key\": \"pick\", \"value\": {i}}}}}\n```"
            ))
        }
    }))
    .await;
    let h = Harness::new().await;
    let c = yaml(
        r#"
cascade_id: state_race
cells:
  - name: choose
    instructions: "Store your pick, take {{ candidate_index }}"
    traits: [set_state]
    candidates: {factor: 3, mutate: false, evaluator_instructions: "Pick one."}
  - name: after
    tool: set_state
    inputs: {key: seen, value: "{{ state.pick }}"}
"#,
    );
    let out = h.run(&h.llm_engine(&server.base_url()), c, json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.outputs["choose"], json!("stored 2"));
    assert_eq!(out.state["pick"], json!(2));
    assert_eq!(out.state["seen"], json!("2"));
    // Tool calls of every branch are counted (3 set_state) plus the deterministic cell.
    assert_eq!(out.tool_calls, 4);
    assert_eq!(server.requests(), 7);
    server.shutdown().await;
}

#[tokio::test]
async fn the_prefilter_validator_keeps_invalid_branches_from_the_judge() {
    let server = TestServer::start(Script::rule(|body| {
        if is_evaluator(body) {
            let t = all_text(body);
            assert!(t.contains("## Attempt 1") && t.contains("## Attempt 3"), "{t}");
            assert!(!t.contains("## Attempt 2"), "{t}");
            return Reply::text("Attempt 3 is better than attempt 1.");
        }
        match take_of(body) {
            1 => Reply::text("bad answer"),
            i => Reply::text(format!("GOOD answer {i}")),
        }
    }))
    .await;
    let h = Harness::new().await;
    let c = yaml(
        r#"
cascade_id: prefilter
cells:
  - name: solve
    instructions: "Solve, take {{ candidate_index }}"
    candidates:
      factor: 3
      mutate: false
      evaluator_instructions: "Pick the best."
      validator:
        python: |
          result = {"valid": "GOOD" in content, "reason": "must say GOOD"}
"#,
    );
    let out = h.run(&h.llm_engine(&server.base_url()), c, json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.output, json!("GOOD answer 2"));
    assert_eq!(server.requests(), 4);
    let eval = events_of(&h, &out, EventKind::Evaluation).await;
    assert_eq!(eval[0].metadata["judged"], json!([0, 2]));
    let complete = events_of(&h, &out, EventKind::CandidateComplete).await;
    assert_eq!(complete[1].metadata["valid"], false);
    assert_eq!(complete[1].metadata["validation_reason"], "must say GOOD");
    // One validation event per branch, each on its branch.
    let validations = events_of(&h, &out, EventKind::Validation).await;
    assert_eq!(validations.len(), 3);
    assert!(validations.iter().all(|v| v.candidate_index.is_some()));
    server.shutdown().await;
}

#[tokio::test]
async fn a_single_branch_left_wins_without_a_judge_call() {
    let server = TestServer::start(Script::rule(|body| {
        assert!(!is_evaluator(body), "no judge call expected");
        match take_of(body) {
            0 => Reply::error(400, "bad request"),
            1 => Reply::text("only GOOD one"),
            _ => Reply::text("bad"),
        }
    }))
    .await;
    let h = Harness::new().await;
    let c = yaml(
        r#"
cascade_id: one_left
cells:
  - name: solve
    instructions: "Solve, take {{ candidate_index }}"
    candidates:
      factor: 3
      mutate: false
      evaluator_instructions: "Pick the best."
      validator:
        bash: 'case "$CONTENT" in *GOOD*) echo "{\"valid\": true, \"reason\": \"ok\"}";; *) echo "{\"valid\": false, \"reason\": \"no\"}";; esac'
"#,
    );
    let out = h.run(&h.llm_engine(&server.base_url()), c, json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.output, json!("only GOOD one"));
    assert_eq!(server.requests(), 3);
    let complete = events_of(&h, &out, EventKind::CandidateComplete).await;
    assert!(complete[0].error.is_some(), "the failed branch records its error");
    assert_eq!(complete[1].metadata["is_winner"], true);
    assert_eq!(h.count(&out.session_id, EventKind::LlmError).await, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn multi_model_takes_send_each_branch_its_model_and_settings() {
    let server = TestServer::start(Script::rule(|body| {
        if is_evaluator(body) {
            Reply::text(r#"{"winner": 3, "reason": "b is best"}"#)
        } else {
            Reply::text(format!("from {}", body["model"].as_str().unwrap()))
        }
    }))
    .await;
    let h = Harness::new().await;
    let c = yaml(
        r#"
cascade_id: multi
cells:
  - name: gen
    model: cell/model
    instructions: "Go, take {{ candidate_index }}"
    candidates:
      factor: 9
      mutate: false
      evaluator_instructions: "Pick one."
      models:
        a/one: {factor: 2, temperature: 0.25}
        b/two: {max_tokens: 50}
"#,
    );
    let out = h.run(&h.llm_engine(&server.base_url()), c, json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    let bodies = server.bodies();
    // The map's factors decide the count (the top `factor` is ignored); the candidate model beats the
    // cell's model (§10.3), and the evaluator uses the cell's model.
    let mut branch: Vec<(usize, String)> = bodies
        .iter()
        .filter(|b| !is_evaluator(b))
        .map(|b| (take_of(b), b["model"].as_str().unwrap().to_owned()))
        .collect();
    branch.sort();
    assert_eq!(
        branch,
        [(0, "a/one".into()), (1, "a/one".into()), (2, "b/two".into())]
    );
    for b in bodies.iter().filter(|b| b["model"] == "a/one") {
        assert_eq!(b["temperature"], 0.25);
    }
    let two = bodies.iter().find(|b| b["model"] == "b/two").unwrap();
    assert_eq!(two["max_tokens"], 50);
    assert!(two.get("temperature").is_none());
    let judge = bodies.iter().find(|b| is_evaluator(b)).unwrap();
    assert_eq!(judge["model"], "cell/model");
    assert_eq!(out.output, json!("from b/two"));
    let starts = events_of(&h, &out, EventKind::CandidateStart).await;
    assert!(
        starts
            .iter()
            .any(|e| e.model_requested.as_deref() == Some("b/two"))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_model_list_is_assigned_round_robin() {
    let server = TestServer::start(Script::rule(|body| {
        if is_evaluator(body) {
            Reply::text("1")
        } else {
            Reply::text("ok")
        }
    }))
    .await;
    let h = Harness::new().await;
    let c = yaml(
        r#"
cascade_id: rr
cells:
  - name: gen
    instructions: "Go, take {{ candidate_index }}"
    candidates:
      factor: 3
      mutate: false
      evaluator_instructions: "Pick one."
      evaluator_model: judge/model
      models: [x/one, y/two]
"#,
    );
    let out = h.run(&h.llm_engine(&server.base_url()), c, json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    let bodies = server.bodies();
    let mut branch: Vec<(usize, String)> = bodies
        .iter()
        .filter(|b| !is_evaluator(b))
        .map(|b| (take_of(b), b["model"].as_str().unwrap().to_owned()))
        .collect();
    branch.sort();
    assert_eq!(
        branch,
        [(0, "x/one".into()), (1, "y/two".into()), (2, "x/one".into())]
    );
    assert_eq!(
        bodies.iter().find(|b| is_evaluator(b)).unwrap()["model"],
        "judge/model"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_unreadable_evaluator_is_asked_again_then_fails_with_a_code() {
    let server = TestServer::start(Script::rule(|body| {
        if is_evaluator(body) {
            Reply::text("They are all lovely in their own way.")
        } else {
            Reply::text("draft")
        }
    }))
    .await;
    let h = Harness::new().await;
    let c = yaml(THREE_TAKES);
    let out = h.run(&h.llm_engine(&server.base_url()), c, json!({})).await;
    assert_eq!(out.status, SessionStatus::Failed);
    let err = out.error.as_ref().unwrap();
    assert_eq!(err.code().code, "RVB-E011", "{err}");
    assert!(err.to_string().contains("1, 2, 3"), "{err}");
    assert!(!err.hint().is_empty());
    // Three branches, the evaluator, and one re-ask that names the format.
    assert_eq!(server.requests(), 5);
    let reask = server.bodies().pop().unwrap();
    assert!(all_text(&reask).contains("did not name one of the attempts (1, 2, 3)"));
    // The branches' costs and calls are still counted.
    assert_eq!(out.llm_calls, 5);
    server.shutdown().await;
}

#[tokio::test]
async fn a_reask_that_names_a_winner_succeeds() {
    let server = TestServer::start(Script::rule(|body| {
        if is_evaluator(body) {
            if all_text(body).contains("did not name one") {
                Reply::text(r#"{"winner": 1, "reason": "fine"}"#)
            } else {
                Reply::text("Hmm, hard to say.")
            }
        } else {
            Reply::text(format!("draft {}", take_of(body)))
        }
    }))
    .await;
    let h = Harness::new().await;
    let out = h
        .run(&h.llm_engine(&server.base_url()), yaml(THREE_TAKES), json!({}))
        .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.output, json!("draft 0"));
    assert_eq!(server.requests(), 5);
    server.shutdown().await;
}

#[tokio::test]
async fn when_every_branch_fails_the_cell_fails_with_the_first_error() {
    let server = TestServer::start(Script::rule(|_| Reply::error(400, "bad request"))).await;
    let h = Harness::new().await;
    let out = h
        .run(&h.llm_engine(&server.base_url()), yaml(THREE_TAKES), json!({}))
        .await;
    assert_eq!(out.status, SessionStatus::Failed);
    let err = out.error.as_ref().unwrap();
    assert!(err.code().code.starts_with("RVB-L"), "{err}");
    assert!(err.to_string().contains("cell `write`"), "{err}");
    assert_eq!(server.requests(), 3, "no evaluator call");
    assert_eq!(h.count(&out.session_id, EventKind::LlmError).await, 3);
    let complete = events_of(&h, &out, EventKind::CandidateComplete).await;
    assert_eq!(complete.len(), 3);
    assert!(complete.iter().all(|e| e.error.is_some()));
    assert_eq!(h.count(&out.session_id, EventKind::CellError).await, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn approach_and_augment_mutations_vary_branches_after_the_first() {
    for (mode, check) in [
        ("approach", "**Variation Strategy**: Be brief."),
        ("augment", "Be brief.\n\nWrite, take 1"),
    ] {
        let server = TestServer::start(Script::rule(|body| {
            if is_evaluator(body) {
                Reply::text("1")
            } else {
                Reply::text("x")
            }
        }))
        .await;
        let h = Harness::new().await;
        let c = yaml(&format!(
            r#"
cascade_id: mutations
cells:
  - name: w
    instructions: "Write, take {{{{ candidate_index }}}}"
    candidates:
      factor: 3
      mutation_mode: {mode}
      mutations: ["Be brief.", "Be long."]
      evaluator_instructions: "Pick one."
"#
        ));
        let out = h.run(&h.llm_engine(&server.base_url()), c, json!({})).await;
        assert_eq!(out.status, SessionStatus::Completed, "{mode}: {:?}", out.error);
        let bodies = server.bodies();
        let by_take = |i: usize| {
            bodies
                .iter()
                .filter(|b| !is_evaluator(b))
                .find(|b| take_of(b) == i)
                .map(all_text)
                .unwrap()
        };
        assert_eq!(
            by_take(0),
            "Write, take 0",
            "{mode}: the first branch is the baseline"
        );
        assert!(by_take(1).contains(check), "{mode}: {}", by_take(1));
        assert!(by_take(2).contains("Be long."), "{mode}: {}", by_take(2));
        assert_eq!(server.requests(), 4, "{mode}: no rewrite calls");
        server.shutdown().await;
    }
}

#[tokio::test]
async fn rewrite_mutations_cost_one_extra_call_per_varied_branch() {
    let server = TestServer::start(Script::rule(|body| {
        let t = all_text(body);
        if is_evaluator(body) {
            Reply::text("2")
        } else if t.contains("You rewrite prompts") {
            // The rewritten prompt keeps the branch marker and adds braces the engine must not render.
            let take = take_of(body);
            Reply::text(format!("Rewritten {{{{ not a template }}}}, take {take}")).cost(0.0005)
        } else {
            Reply::text(format!("answer {}", take_of(body)))
        }
    }))
    .await;
    let h = Harness::new().await;
    let c = yaml(
        r#"
cascade_id: rewrites
cells:
  - name: w
    instructions: "Write, take {{ candidate_index }}"
    candidates: {factor: 3, evaluator_instructions: "Pick one."}
"#,
    );
    let out = h.run(&h.llm_engine(&server.base_url()), c, json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(server.requests(), 6, "2 rewrites, 3 branches, 1 evaluator");
    assert_eq!(out.cost, MicroUsd::from_micros(1000));
    let bodies = server.bodies();
    assert!(
        bodies
            .iter()
            .any(|b| all_text(b) == "Rewritten {{ not a template }}, take 1")
    );
    assert!(bodies.iter().any(|b| all_text(b) == "Write, take 0"));
    assert_eq!(out.output, json!("answer 1"));
    server.shutdown().await;
}

#[tokio::test]
async fn a_factor_template_is_rendered_and_unreadable_means_one() {
    let server = TestServer::start(Script::rule(|body| {
        if is_evaluator(body) {
            Reply::text("2")
        } else {
            Reply::text(format!("n{}", take_of(body)))
        }
    }))
    .await;
    let h = Harness::new().await;
    let c = |factor: &str| {
        yaml(&format!(
            r#"
cascade_id: dyn
cells:
  - name: w
    instructions: "Go, take {{{{ candidate_index }}}} ({{{{ is_candidate }}}})"
    candidates: {{factor: "{factor}", mutate: false, evaluator_instructions: "Pick."}}
"#
        ))
    };
    let engine = h.llm_engine(&server.base_url());
    let out = h.run(&engine, c("{{ input.n }}"), json!({"n": 2})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.output, json!("n1"));
    assert_eq!(server.requests(), 3);
    // Unreadable → 1 → no branches: the plain cell (index 0, not a candidate), no evaluator.
    let out = h.run(&engine, c("{{ input.missing }}"), json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.output, json!("n0"));
    assert_eq!(server.requests(), 4);
    assert!(all_text(&server.bodies()[3]).contains("(False)"));
    assert_eq!(h.count(&out.session_id, EventKind::CandidateStart).await, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn reforge_refines_the_winner_in_rounds_until_the_threshold_passes() {
    let server = TestServer::start(Script::rule(|body| {
        let t = all_text(body);
        if is_evaluator(body) {
            // Initial round: "Pick one." → attempt 2; refinement rounds: the override → attempt 1.
            if t.starts_with("Pick the sharpest.") {
                Reply::text(r#"{"winner": 1, "reason": "sharper"}"#)
            } else {
                Reply::text(r#"{"winner": 2, "reason": "better start"}"#)
            }
        } else if t.contains("## Current Best Output\ndraft 1") {
            Reply::text("refined once")
        } else if t.contains("## Current Best Output\nrefined once") {
            Reply::text("refined twice FINAL")
        } else {
            Reply::text(format!("draft {}", take_of(body)))
        }
    }))
    .await;
    let h = Harness::new().await;
    let c = yaml(
        r#"
cascade_id: reforge
cells:
  - name: w
    instructions: "Draft, take {{ candidate_index }}"
    candidates:
      factor: 2
      mutate: false
      evaluator_instructions: "Pick one."
      reforge:
        steps: 3
        factor_per_step: 2
        model: r/model
        honing_prompt: "Make it sharper."
        evaluator_override: "Pick the sharpest."
        threshold:
          validator: {python: "result = {'valid': 'FINAL' in content, 'reason': 'not final'}"}
"#,
    );
    let out = h.run(&h.llm_engine(&server.base_url()), c, json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.output, json!("refined twice FINAL"));
    // 2 + judge, then two steps of 2 + judge; the threshold passes after step 2 of 3.
    assert_eq!(server.requests(), 9);
    let bodies = server.bodies();
    let refinements: Vec<&Value> = bodies
        .iter()
        .filter(|b| !is_evaluator(b) && all_text(b).contains("## Refinement Instructions\nMake it sharper."))
        .collect();
    assert_eq!(refinements.len(), 4);
    assert!(refinements.iter().all(|b| b["model"] == "r/model"));
    assert!(all_text(refinements[0]).starts_with("Draft, take 0\n\n## Current Best Output\n"));
    let steps: Vec<Value> = events_of(&h, &out, EventKind::Evaluation)
        .await
        .into_iter()
        .map(|e| e.metadata["reforge_step"].clone())
        .collect();
    assert_eq!(steps, [Value::Null, json!(1), json!(2)]);
    assert_eq!(h.count(&out.session_id, EventKind::CandidateStart).await, 6);
    server.shutdown().await;
}

#[tokio::test]
async fn unsupported_candidate_options_are_refused_with_e003() {
    let server = TestServer::start(Script::echo()).await;
    let h = Harness::new().await;
    let c = yaml_allowing(
        r#"
cascade_id: pareto
cells:
  - name: w
    instructions: "Go"
    candidates:
      factor: 2
      evaluator_instructions: "Pick."
      pareto_frontier: {enabled: true}
"#,
        &["RVB-E003"],
    );
    let out = h.run(&h.llm_engine(&server.base_url()), c, json!({})).await;
    assert_eq!(out.status, SessionStatus::Failed);
    let err = out.error.unwrap();
    assert_eq!(err.code().code, "RVB-E003");
    assert!(err.to_string().contains("candidates.pareto_frontier"), "{err}");
    assert_eq!(server.requests(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn aggregate_mode_concatenates_without_aggregator_instructions() {
    let server = TestServer::start(Script::rule(|body| {
        Reply::text(format!("idea {}", take_of(body)))
    }))
    .await;
    let h = Harness::new().await;
    let c = yaml(
        r#"
cascade_id: agg
cells:
  - name: w
    instructions: "Idea, take {{ candidate_index }}"
    candidates: {factor: 2, mode: aggregate, mutate: false}
"#,
    );
    let out = h.run(&h.llm_engine(&server.base_url()), c, json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(
        out.output,
        json!("## Output 1 (Model: test/model)\nidea 0\n\n---\n\n## Output 2 (Model: test/model)\nidea 1")
    );
    assert_eq!(server.requests(), 2);
    server.shutdown().await;
}

// ---- corpus cascades ------------------------------------------------------------------------------

#[tokio::test]
async fn corpus_soundings_fanout_demo_gives_each_branch_its_topic_then_aggregates() {
    let server = TestServer::start(Script::rule(|body| {
        let t = all_text(body);
        if t.contains("You have received research summaries") {
            Reply::text("REPORT")
        } else {
            let topic = ["rust", "zig", "go"]
                .into_iter()
                .find(|w| t.contains(&format!("**{w}**")))
                .expect("a topic");
            Reply::text(format!("summary of {topic}"))
        }
    }))
    .await;
    let h = Harness::new().await;
    let out = h
        .run(
            &h.llm_engine(&server.base_url()),
            corpus("soundings_fanout_demo.yaml"),
            json!({"topics": ["rust", "zig", "go"]}),
        )
        .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.path, ["research_topics"]);
    assert_eq!(out.output, json!("REPORT"));
    assert_eq!(server.requests(), 4);
    let merge = server
        .bodies()
        .into_iter()
        .find(|b| all_text(b).contains("REPORT") || all_text(b).contains("You have received"))
        .unwrap();
    let merge = all_text(&merge);
    for (n, topic) in [(1, "rust"), (2, "zig"), (3, "go")] {
        assert!(
            merge.contains(&format!("## Output {n} (Model: test/model)\nsummary of {topic}")),
            "{merge}"
        );
    }
    assert_eq!(h.count(&out.session_id, EventKind::CandidateComplete).await, 3);
    assert_eq!(h.count(&out.session_id, EventKind::Evaluation).await, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn corpus_test_dynamic_soundings_renders_the_factor_from_a_cell_output() {
    let server = TestServer::start(Script::rule(|body| {
        let t = all_text(body);
        if t.contains("Combine all") {
            Reply::text(r#"[{"item": "apple"}, {"item": "banana"}, {"item": "cherry"}]"#)
        } else if t.contains("Create a summary report") {
            Reply::text("3 items")
        } else {
            let item = ["apple", "banana", "cherry"]
                .into_iter()
                .find(|w| t.contains(&format!("The item is: {w}")))
                .expect("an item");
            Reply::text(format!("{{\"item\": \"{item}\"}}"))
        }
    }))
    .await;
    let h = Harness::new().await;
    let out = h
        .run(
            &h.llm_engine(&server.base_url()),
            corpus("test_dynamic_soundings.yaml"),
            json!({}),
        )
        .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.path, ["generate_list", "process_items", "report"]);
    assert_eq!(out.output, json!("3 items"));
    // 3 branches (factor = the length of generate_list's result), the aggregator, the report.
    assert_eq!(server.requests(), 5);
    let bodies = server.bodies();
    for n in 1..=3 {
        assert!(
            bodies
                .iter()
                .any(|b| all_text(b).contains(&format!("You are processing item {n} of 3."))),
            "item {n}"
        );
    }
    let merge = bodies
        .iter()
        .find(|b| all_text(b).contains("Combine all"))
        .unwrap();
    assert!(
        all_text(merge).contains("Combine all 3 sounding results"),
        "{}",
        all_text(merge)
    );
    assert_eq!(h.count(&out.session_id, EventKind::CandidateStart).await, 3);
    server.shutdown().await;
}

#[tokio::test]
async fn corpus_multi_model_per_model_factors_runs_seven_branches_over_three_models() {
    let server = TestServer::start_with(
        Options::new(Script::rule(|body| {
            let t = all_text(body);
            if is_evaluator(body) {
                Reply::text(r#"{"winner": 5, "reason": "complete"}"#).cost(0.01)
            } else if t.contains("You rewrite prompts") {
                Reply::text("Complete this task, differently: write a limerick").cost(0.001)
            } else {
                Reply::text(format!("by {}", body["model"].as_str().unwrap())).cost(0.002)
            }
        }))
        .latency(Duration::from_millis(50)),
    )
    .await;
    let h = Harness::new().await;
    let out = h
        .run(
            &h.llm_engine(&server.base_url()),
            corpus("multi_model_per_model_factors.yaml"),
            json!({"task": "write a limerick"}),
        )
        .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.path, ["generate"]);
    // 7 branches, 6 rewrites (mutate defaults to true, mode rewrite), 1 evaluator.
    assert_eq!(server.requests(), 14);
    assert_eq!(out.llm_calls, 14);
    assert_eq!(out.cost, MicroUsd::from_micros(7 * 2000 + 6 * 1000 + 10_000));
    assert_eq!(server.max_concurrency(), 3, "max_parallel defaults to 3");
    let bodies = server.bodies();
    let mut models: Vec<String> = bodies
        .iter()
        .filter(|b| {
            let t = all_text(b);
            !is_evaluator(b) && !t.contains("You rewrite prompts")
        })
        .map(|b| b["model"].as_str().unwrap().to_owned())
        .collect();
    models.sort();
    assert_eq!(
        models,
        [
            "anthropic/claude-sonnet-4.5",
            "anthropic/claude-sonnet-4.5",
            "google/gemini-2.5-flash-lite",
            "google/gemini-2.5-flash-lite",
            "google/gemini-2.5-flash-lite",
            "x-ai/grok-4.1-fast",
            "x-ai/grok-4.1-fast",
        ]
    );
    // Branches are ordered by model name (the map's order): attempt 5 is the third gemini branch.
    assert_eq!(out.output, json!("by google/gemini-2.5-flash-lite"));
    let eval = events_of(&h, &out, EventKind::Evaluation).await;
    assert_eq!(eval[0].metadata["winner_index"], 4);
    assert_eq!(eval[0].metadata["candidates"], 7);
    server.shutdown().await;
}

#[tokio::test]
async fn corpus_soundings_approach_flow_picks_an_opening_then_develops_it() {
    let server = TestServer::start(Script::rule(|body| {
        let t = all_text(body);
        if is_evaluator(body) {
            Reply::text(r#"{"winner": 2, "reason": "best hook"}"#)
        } else if t.contains("Continue the story") {
            Reply::text("the story continues")
        } else if t.contains("**Variation Strategy**") {
            Reply::text(format!("varied opening {}", t.len()))
        } else {
            Reply::text("baseline opening")
        }
    }))
    .await;
    let h = Harness::new().await;
    let out = h
        .run(
            &h.llm_engine(&server.base_url()),
            corpus("soundings_approach_flow.yaml"),
            json!({"theme": "lighthouses"}),
        )
        .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.path, ["draft_opening", "develop_story"]);
    // 3 branches + evaluator + develop_story's 2 turns (approach adds no calls).
    assert_eq!(server.requests(), 6);
    let winner = out.outputs["draft_opening"].as_str().unwrap().to_owned();
    assert!(winner.starts_with("varied opening"), "{winner}");
    let develop = server
        .bodies()
        .into_iter()
        .find(|b| all_text(b).contains("Continue the story"))
        .unwrap();
    assert!(all_text(&develop).contains(&winner));
    assert_eq!(out.output, json!("the story continues"));
    server.shutdown().await;
}

/// The number after `word ` in `text` (`analysis 2` → 2).
fn tag_after(text: &str, word: &str) -> Option<usize> {
    text.match_indices(word).find_map(|(at, _)| {
        text[at + word.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .ok()
    })
}

#[tokio::test]
async fn corpus_cascade_soundings_test_runs_the_whole_cascade_three_times_and_adopts_the_winner() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let runs = AtomicUsize::new(0);
    let server = TestServer::start(Script::rule(move |body| {
        let t = all_text(body);
        if is_evaluator(body) {
            // Pick the run whose first analysis arrived second, whatever its attempt number.
            let n = t
                .split("## Attempt ")
                .skip(1)
                .find(|a| a.contains("validated 2"))
                .and_then(|a| tag_after(a, ""))
                .unwrap();
            return Reply::text(format!("{{\"winner\": {n}, \"reason\": \"most thorough\"}}")).cost(0.01);
        }
        if t.contains("Review your solution") {
            let n = tag_after(&t, "solution ").unwrap();
            Reply::text(format!("validated {n}")).cost(0.001)
        } else if t.contains("provide a complete solution") {
            let n = tag_after(&t, "analysis ").unwrap();
            Reply::text(format!("solution {n}")).cost(0.001)
        } else {
            let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
            Reply::text(format!("analysis {n}")).cost(0.001)
        }
    }))
    .await;
    let h = Harness::new().await;
    let out = h
        .run(
            &h.llm_engine(&server.base_url()),
            corpus("cascade_soundings_test.yaml"),
            json!({"problem": "route 3 trucks"}),
        )
        .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    // 3 runs × 3 cells, then the evaluator.
    assert_eq!(server.requests(), 10);
    assert_eq!(out.llm_calls, 10);
    assert_eq!(out.cost, MicroUsd::from_micros(9 * 1000 + 10_000));
    // The parent adopts the winner's path, outputs, lineage and final output.
    assert_eq!(out.path, ["analyze", "solve", "validate"]);
    assert_eq!(out.output, json!("validated 2"));
    assert_eq!(out.outputs["analyze"], json!("analysis 2"));
    assert_eq!(out.state["output_solve"], json!("solution 2"));
    assert_eq!(out.lineage.len(), 3);
    // Each run is its own session `<sid>_sounding_<i>`, linked from the parent's events.
    let children: Vec<String> = events_of(&h, &out, EventKind::ChildStart)
        .await
        .into_iter()
        .map(|e| e.content.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        children,
        (0..3)
            .map(|i| format!("{}_sounding_{i}", out.session_id))
            .collect::<Vec<_>>()
    );
    for child in &children {
        let sid: rvbbit_core::SessionId = child.parse().unwrap();
        assert_eq!(h.count(&sid, EventKind::CellComplete).await, 3, "{child}");
        assert_eq!(h.count(&sid, EventKind::CascadeComplete).await, 1, "{child}");
    }
    let eval = events_of(&h, &out, EventKind::Evaluation).await;
    assert_eq!(eval.len(), 1);
    assert_eq!(eval[0].metadata["reason"], "most thorough");
    let winner = eval[0].metadata["winner_session_id"].as_str().unwrap().to_owned();
    let complete = events_of(&h, &out, EventKind::CandidateComplete).await;
    assert_eq!(complete.len(), 3);
    let won: Vec<&Event> = complete
        .iter()
        .filter(|e| e.metadata["is_winner"] == true)
        .collect();
    assert_eq!(won.len(), 1);
    assert_eq!(won[0].metadata["child_session_id"], json!(winner));
    assert_eq!(won[0].content, json!("validated 2"));
    // The parent itself ran no cell.
    assert_eq!(h.count(&out.session_id, EventKind::CellStart).await, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn cascade_level_candidates_fail_with_the_first_runs_error_when_all_fail() {
    let server = TestServer::start(Script::rule(|_| Reply::error(400, "bad request"))).await;
    let h = Harness::new().await;
    let c = yaml(
        r#"
cascade_id: all_fail
candidates: {factor: 2, mutate: false, evaluator_instructions: "Pick."}
cells:
  - name: only
    instructions: "Go"
"#,
    );
    let out = h.run(&h.llm_engine(&server.base_url()), c, json!({})).await;
    assert_eq!(out.status, SessionStatus::Failed);
    assert!(out.error.as_ref().unwrap().code().code.starts_with("RVB-L"));
    assert_eq!(server.requests(), 2);
    assert_eq!(h.count(&out.session_id, EventKind::CandidateComplete).await, 2);
    server.shutdown().await;
}

#[tokio::test]
async fn cascade_level_reforge_is_refused_with_e003() {
    let server = TestServer::start(Script::echo()).await;
    let h = Harness::new().await;
    let c = yaml_allowing(
        r#"
cascade_id: cascade_reforge
candidates:
  factor: 2
  evaluator_instructions: "Pick."
  reforge: {steps: 1, honing_prompt: "Improve."}
cells:
  - name: only
    instructions: "Go"
"#,
        &["RVB-E003"],
    );
    let out = h.run(&h.llm_engine(&server.base_url()), c, json!({})).await;
    let err = out.error.unwrap();
    assert_eq!(err.code().code, "RVB-E003");
    assert!(
        err.to_string()
            .contains("candidates.reforge on cascade-level candidates"),
        "{err}"
    );
    assert_eq!(server.requests(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn candidates_on_a_deterministic_cell_run_once_at_factor_one_and_are_refused_above() {
    let h = Harness::new().await;
    let c = |factor: u32| {
        yaml(&format!(
            r#"
cascade_id: det_takes
cells:
  - name: s
    tool: set_state
    inputs: {{key: k, value: v}}
    candidates: {{factor: {factor}, evaluator_instructions: "Pick."}}
"#
        ))
    };
    let out = h.run(&h.engine(), c(1), json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.state["k"], json!("v"));
    let out = h.run(&h.engine(), c(2), json!({})).await;
    let err = out.error.unwrap();
    assert_eq!(err.code().code, "RVB-E003");
    assert!(err.to_string().contains("not an LLM cell"), "{err}");
}
