//! `create_artifact`, `create_chart`, `create_vega_lite` and `create_plotly` (issue 19) through `rvbbit
//! run`: each publishes an `artifact` event of the session (charts drawn as SVG when they can be), an
//! LLM cell's bad figure is a tool error the model sees, and a body over `limits.artifact_bytes` fails
//! the cell naming the setting with nothing recorded.

use std::process::{Command, Output};

use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::run_command::{JsonOutcome, write};
use crate::rvbbit;

const PUBLISH: &str = r#"
cascade_id: artifacts
cells:
  - name: page
    tool: create_artifact
    inputs:
      html: "<h1>Q4</h1><p>Sales rose.</p>"
      title: Sales Analysis Report
      artifact_type: dashboard
      description: The quarter at a glance.
  - name: bars
    tool: create_chart
    inputs:
      chart_type: bar
      data: '[{"region": "north", "total": 40}, {"region": "south", "total": 20}, {"region": "east <&>", "total": 35}]'
      x: region
      y: total
      title: Sales by region
  - name: trend
    tool: create_vega_lite
    inputs:
      spec: '{"$schema": "https://vega.github.io/schema/vega-lite/v5.json", "title": "Trend", "mark": "line", "encoding": {"x": {"field": "day"}, "y": {"field": "n"}}, "data": {"values": [{"day": 1, "n": 2}, {"day": 2, "n": 5}, {"day": 3, "n": 4}]}}'
  - name: layered
    tool: create_vega_lite
    inputs:
      spec: '{"layer": [{"mark": "bar"}, {"mark": "rule"}]}'
      title: Layers
  - name: explain
    traits: [create_plotly]
    rules:
      max_turns: 2
    instructions: "Chart the sales with create_plotly."
"#;

fn with_provider<'a>(cmd: &'a mut Command, base_url: &str) -> &'a mut Command {
    cmd.env("RVBBIT_PROVIDER_BASE_URL", base_url)
        .env("OPENROUTER_API_KEY", "test-key")
        .env("RVBBIT_DEFAULT_MODEL", "test/model")
        .args(["--set", "provider.max_retries=0"])
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn explain(out: &Output) -> String {
    format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The `artifact` events of `session`, by cell, from the project's store.
fn artifacts(dir: &std::path::Path, session: &str) -> Vec<(String, Value)> {
    let db = rusqlite::Connection::open(dir.join(".rvbbit/rvbbit.db")).unwrap();
    let mut stmt = db
        .prepare(
            "SELECT cell_name, content FROM events WHERE session_id = ?1 AND kind = 'artifact' ORDER BY seq",
        )
        .unwrap();
    stmt.query_map([session], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })
    .unwrap()
    .map(|r| {
        let (cell, content) = r.unwrap();
        (cell, serde_json::from_str(&content).unwrap())
    })
    .collect()
}

fn call(arguments: &Value) -> Reply {
    Reply::text(format!(
        "```json\n{}\n```",
        json!({"tool": "create_plotly", "arguments": arguments})
    ))
}

#[test]
fn artifacts_and_charts_are_published_as_events_of_the_session_and_a_bad_figure_is_a_tool_error() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let figure = json!({"data": [{"type": "bar", "x": ["north", "south"], "y": [40, 20], "name": "sales"}],
                        "layout": {"title": {"text": "Sales"}}});
    let server = rt.block_on(TestServer::start(Script::sequence([
        call(&json!({"figure": {"data": [{"type": "teapot"}]}})),
        call(&json!({"figure": figure.to_string(), "title": "Sales (Plotly)"})),
        Reply::text("Charted."),
    ])));
    let dir = TempDir::new().unwrap();
    let file = write(dir.path(), "artifacts.yaml", PUBLISH);
    let out = with_provider(&mut rvbbit(dir.path()), &server.base_url())
        .args(["--output", "json", "run", &file])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(0), "{}", explain(&out));
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    let page = &doc.outputs["page"];
    assert_eq!(page["status"], "published");
    assert!(
        page["artifact_id"].as_str().unwrap().starts_with("art_"),
        "{page}"
    );
    assert_eq!(doc.outputs["layered"]["rendered"], false);
    assert_eq!(doc.output, "Charted.");
    // The model saw why its first figure was refused.
    let bodies = server.bodies();
    assert!(bodies[1].to_string().contains("teapot"), "{}", bodies[1]);

    let found = artifacts(dir.path(), &doc.session_id);
    let cells: Vec<&str> = found.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(cells, ["page", "bars", "trend", "layered", "explain"]);
    let (_, page_event) = &found[0];
    assert_eq!(page_event["artifact_id"], page["artifact_id"]);
    assert_eq!(page_event["body"], "<h1>Q4</h1><p>Sales rose.</p>");
    assert_eq!(page_event["content_type"], "text/html; charset=utf-8");
    assert_eq!(page_event["kind"], "dashboard");
    assert_eq!(page_event["description"], "The quarter at a glance.");
    // The bar chart: one bar per row, labels escaped, no script.
    let svg = found[1].1["svg"].as_str().unwrap();
    assert_eq!(svg.matches("<rect x=").count(), 3, "{svg}");
    assert!(
        svg.contains("east &lt;&amp;&gt;") && svg.contains("Sales by region"),
        "{svg}"
    );
    assert!(!svg.contains("<script"));
    assert_eq!(found[1].1["rendered"], true);
    // The Vega-Lite line chart is drawn with its own title; the layered spec is stored with the reason.
    assert_eq!(found[2].1["title"], "Trend");
    assert!(found[2].1["svg"].as_str().unwrap().contains("<polyline"));
    assert!(found[3].1.get("svg").is_none());
    assert!(
        found[3].1["not_rendered_because"]
            .as_str()
            .unwrap()
            .contains("layer")
    );
    assert_eq!(found[3].1["content_type"], "application/vnd.vegalite.v5+json");
    // The model's Plotly figure, kept as sent and drawn.
    let plotly = &found[4].1;
    assert_eq!(plotly["title"], "Sales (Plotly)");
    assert_eq!(
        serde_json::from_str::<Value>(plotly["body"].as_str().unwrap()).unwrap(),
        figure
    );
    assert_eq!(plotly["svg"].as_str().unwrap().matches("<rect x=").count(), 2);
    rt.block_on(server.shutdown());

    // `rvbbit sessions artifacts` lists them, and writes them out by id.
    let out = rvbbit(dir.path())
        .args(["--output", "json", "sessions", "artifacts", "last"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(0), "{}", explain(&out));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let titles: Vec<&str> = listed["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        [
            "Sales Analysis Report",
            "Sales by region",
            "Trend",
            "Layers",
            "Sales (Plotly)"
        ]
    );
    let out = rvbbit(dir.path())
        .args(["sessions", "artifacts", &doc.session_id, "--save", "saved"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(0), "{}", explain(&out));
    let id = page["artifact_id"].as_str().unwrap();
    let html = std::fs::read_to_string(dir.path().join(format!("saved/{id}.html"))).unwrap();
    assert_eq!(html, "<h1>Q4</h1><p>Sales rose.</p>");
    let bars = found[1].1["artifact_id"].as_str().unwrap();
    let drawn = std::fs::read_to_string(dir.path().join(format!("saved/{bars}.svg"))).unwrap();
    assert!(drawn.starts_with("<svg"));
    assert!(dir.path().join(format!("saved/{bars}.json")).is_file());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Sales by region") && text.contains("not drawn"),
        "{text}"
    );
    let out = rvbbit(dir.path())
        .args(["sessions", "artifacts", "no-such-session"])
        .output()
        .unwrap();
    assert_ne!(code(&out), Some(0), "{}", explain(&out));
}

const TOO_BIG: &str = r#"
cascade_id: too_big
cells:
  - name: page
    tool: create_artifact
    inputs:
      html: "{{ 'x' * 5000 }}"
      title: Big
"#;

const BAD_TITLE: &str = r#"
cascade_id: bad_title
cells:
  - name: page
    tool: create_artifact
    inputs:
      html: "<p>hi</p>"
      title: "{{ 'a' * 201 }}"
"#;

#[test]
fn an_artifact_over_the_limit_or_with_a_bad_title_fails_its_cell_and_nothing_is_recorded() {
    let dir = TempDir::new().unwrap();
    let file = write(dir.path(), "big.yaml", TOO_BIG);
    let out = rvbbit(dir.path())
        .args([
            "--set",
            "limits.artifact_bytes=4096",
            "--output",
            "json",
            "run",
            &file,
        ])
        .output()
        .unwrap();
    assert_ne!(code(&out), Some(0), "{}", explain(&out));
    let text = explain(&out);
    assert!(
        text.contains("5000 bytes, more than limits.artifact_bytes = 4096"),
        "{text}"
    );
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    assert!(artifacts(dir.path(), &doc.session_id).is_empty());
    // Within the default limit, the same file publishes.
    let out = rvbbit(dir.path())
        .args(["--output", "json", "run", &file])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(0), "{}", explain(&out));
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(artifacts(dir.path(), &doc.session_id).len(), 1);

    let file = write(dir.path(), "title.yaml", BAD_TITLE);
    let out = rvbbit(dir.path())
        .args(["--output", "json", "run", &file])
        .output()
        .unwrap();
    assert_ne!(code(&out), Some(0), "{}", explain(&out));
    assert!(
        explain(&out).contains("`title` must be 1-200 characters"),
        "{}",
        explain(&out)
    );
}
