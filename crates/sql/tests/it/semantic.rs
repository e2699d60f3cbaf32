//! Semantic SQL with the user's own operator files (`cascades/` of the working directory): seen by the
//! next session, overriding a built-in, skipped with a warning when broken, refused when a symbolic
//! link leads outside the folder, bounded by the file and byte limits. The built-in operators are
//! tested as data in `tests/slt/semantic.slt`.

use std::path::Path;
use std::process::Command;

use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::Value;

use crate::support::{Harness, column};

/// Answers by the prompt's first word: `Spam?` → `yes` when the text has `win`; `Always` → `yes`;
/// the built-in matcher (`Decide …`) → `false`.
async fn llm() -> TestServer {
    TestServer::start(Script::rule(|body: &Value| {
        let prompt = body["messages"][0]["content"].as_str().unwrap_or_default();
        let text = prompt
            .lines()
            .find_map(|l| l.strip_prefix("Text: "))
            .unwrap_or_default();
        let answer = match prompt.split_whitespace().next().unwrap_or_default() {
            "Spam?" => {
                if text.contains("win") {
                    "yes"
                } else {
                    "no"
                }
            }
            "Always" => "yes",
            _ => "false",
        };
        Reply::text(answer).cost(0.001)
    }))
    .await
}

/// An operator file: `name` taking `text` (and `other` when `infix`), returning `returns`.
fn operator_file(name: &str, returns: &str, shape: &str, operators: &str, prompt: &str) -> String {
    format!(
        "cascade_id: {name}\nsql_function:\n  args: [{{name: text}}, {{name: other, optional: true}}]\n  \
         returns: {returns}\n  shape: {shape}\n  operators: {operators}\ncells:\n  - name: answer\n    \
         instructions: |-\n      {prompt}\n      Text: {{{{ input.text }}}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_operator_file_works_in_the_next_session_and_overrides_a_builtin() {
    let server = llm().await;
    let h = Harness::new(&server.base_url(), 4).await;
    let before = h.runtime.session();
    let r = before.execute("SELECT 'abc' MEANS 'zzz'").await.unwrap();
    assert_eq!(column(&r, 0), [Some("false".to_owned())], "the built-in answers");
    assert!(before.execute("SELECT is_spam('win now')").await.is_err());

    h.write(
        "cascades/semantic_sql/spam.yaml",
        &operator_file(
            "is_spam",
            "BOOLEAN",
            "SCALAR",
            "['{{ text }} IS_SPAM']",
            "Spam? Answer yes or no.",
        ),
    );
    h.write(
        "cascades/semantic_sql/matches.yaml",
        &operator_file(
            "semantic_matches",
            "BOOLEAN",
            "ROW",
            "['{{ text }} MEANS {{ other }}']",
            "Always yes.",
        ),
    );
    let after = h.runtime.session();
    let r = after
        .execute("SELECT 'abc' MEANS 'zzz', 'win now' IS_SPAM, 'hello' IS_SPAM, is_spam('win')")
        .await
        .unwrap();
    let row: Vec<Option<String>> = (0..4).map(|c| column(&r, c)[0].clone()).collect();
    assert_eq!(row, ["true", "true", "false", "true"].map(|v| Some(v.to_owned())));
    assert!(r.notices.is_empty(), "{:?}", r.notices);
    let r = after
        .execute("SELECT name, shape, source FROM rvbbit_functions WHERE name IN ('is_spam', 'semantic_matches') ORDER BY name")
        .await
        .unwrap();
    assert_eq!(
        column(&r, 2),
        [
            Some("cascades/semantic_sql/spam.yaml".to_owned()),
            Some("cascades/semantic_sql/matches.yaml".to_owned())
        ]
    );
    assert_eq!(column(&r, 1), [Some("SCALAR".to_owned()), Some("ROW".to_owned())]);
    // The session opened before the files keeps its functions.
    let r = before.execute("SELECT 'abc' MEANS 'zzz'").await.unwrap();
    assert_eq!(column(&r, 0), [Some("false".to_owned())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_user_files_are_skipped_with_a_warning_and_the_others_load() {
    let server = llm().await;
    let h = Harness::new(&server.base_url(), 4).await;
    let good = operator_file("is_spam", "BOOLEAN", "SCALAR", "['{{ text }} IS_SPAM']", "Spam?");
    h.write("cascades/semantic_sql/good.yaml", &good);
    h.write(
        "cascades/semantic_sql/bad_template.yaml",
        &operator_file("t1", "BOOLEAN", "SCALAR", "['{{ text }} >= {{ other }}']", "x"),
    );
    h.write(
        "cascades/semantic_sql/bad_shape.yaml",
        &operator_file(
            "t2",
            "BOOLEAN",
            "SCALARISH",
            "['{{ text }} FOO {{ other }}']",
            "x",
        ),
    );
    h.write(
        "cascades/semantic_sql/bad_arg.yaml",
        &operator_file("t3", "BOOLEAN", "SCALAR", "['{{ text }} BAR {{ nope }}']", "x"),
    );
    h.write("cascades/semantic_sql/bad_yaml.yaml", "sql_function: [\n");
    // An ordinary cascade beside them is not a function and says nothing.
    h.write(
        "cascades/plain.yaml",
        "cascade_id: plain\ncells:\n  - name: a\n    instructions: hi\n",
    );
    let session = h.runtime.session();
    let r = session.execute("SELECT 'win' IS_SPAM").await.unwrap();
    assert_eq!(column(&r, 0), [Some("true".to_owned())]);
    let notices = r.notices.join("\n");
    for (file, code, position) in [
        ("cascades/semantic_sql/bad_template.yaml", "RVB-V013", "line 6"),
        ("cascades/semantic_sql/bad_shape.yaml", "RVB-V005", "line 5"),
        ("cascades/semantic_sql/bad_arg.yaml", "RVB-V005", "line 6"),
        ("cascades/semantic_sql/bad_yaml.yaml", "RVB-V001", "line"),
    ] {
        let line = r
            .notices
            .iter()
            .find(|n| n.contains(file))
            .unwrap_or_else(|| panic!("no notice for {file} in {notices}"));
        assert!(line.contains(code) && line.contains(position), "{line}");
        assert!(line.contains("is skipped"), "{line}");
    }
    assert_eq!(r.notices.len(), 4, "{notices}");
    // Reported once, with the session's first statement.
    let again = session.execute("SELECT 1").await.unwrap();
    assert!(again.notices.is_empty(), "{:?}", again.notices);
    let r = session
        .execute("SELECT count(*) FROM rvbbit_functions WHERE name IN ('t1', 't2', 't3')")
        .await
        .unwrap();
    assert_eq!(column(&r, 0), [Some("0".to_owned())]);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symbolic_link_leading_outside_the_folder_is_refused() {
    let server = llm().await;
    let h = Harness::new(&server.base_url(), 4).await;
    let outside = tempfile::TempDir::new().unwrap();
    let target = outside.path().join("escaped.yaml");
    std::fs::write(
        &target,
        operator_file("escaped", "BOOLEAN", "SCALAR", "['{{ text }} ESCAPES']", "Always"),
    )
    .unwrap();
    std::fs::create_dir_all(h.path("cascades")).unwrap();
    std::os::unix::fs::symlink(&target, h.path("cascades/escaped.yaml")).unwrap();
    std::os::unix::fs::symlink(outside.path(), h.path("cascades/elsewhere")).unwrap();
    let session = h.runtime.session();
    let r = session
        .execute("SELECT count(*) FROM rvbbit_functions WHERE name = 'escaped'")
        .await
        .unwrap();
    assert_eq!(column(&r, 0), [Some("0".to_owned())]);
    for link in ["cascades/escaped.yaml", "cascades/elsewhere"] {
        assert!(
            r.notices
                .iter()
                .any(|n| n.contains("RVB-Q005") && n.contains(link) && n.contains("outside")),
            "{link}: {:?}",
            r.notices
        );
    }
    assert!(session.execute("SELECT escaped('x')").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_and_byte_limits_stop_loading_with_a_warning() {
    let server = llm().await;
    let h = Harness::configured(&server.base_url(), 4, &[], |s| s.limits.operator_files = 2).await;
    for name in ["f1", "f2", "f3"] {
        h.write(
            &format!("cascades/{name}.yaml"),
            &operator_file(name, "VARCHAR", "SCALAR", "[]", "Always"),
        );
    }
    let r = h
        .runtime
        .session()
        .execute("SELECT name FROM rvbbit_functions WHERE name LIKE 'f_' ORDER BY name")
        .await
        .unwrap();
    assert_eq!(column(&r, 0), [Some("f1".to_owned()), Some("f2".to_owned())]);
    assert!(
        r.notices.iter().any(|n| n.contains("RVB-Q006")
            && n.contains("limits.sql_operator_files")
            && n.contains("cascades/f3.yaml")),
        "{:?}",
        r.notices
    );

    let h = Harness::configured(&server.base_url(), 4, &[], |s| s.limits.operator_bytes = 400).await;
    for name in ["f1", "f2"] {
        h.write(
            &format!("cascades/{name}.yaml"),
            &operator_file(name, "VARCHAR", "SCALAR", "[]", "Always"),
        );
    }
    let r = h
        .runtime
        .session()
        .execute("SELECT name FROM rvbbit_functions WHERE name LIKE 'f_'")
        .await
        .unwrap();
    assert_eq!(column(&r, 0), [Some("f1".to_owned())]);
    assert!(
        r.notices
            .iter()
            .any(|n| n.contains("RVB-Q006") && n.contains("limits.sql_operator_bytes")),
        "{:?}",
        r.notices
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_aggregate_operator_file_runs_once_per_group_on_its_values() {
    let server = llm().await;
    let h = Harness::new(&server.base_url(), 4).await;
    h.write(
        "cascades/semantic_sql/gist.yaml",
        &operator_file(
            "gist",
            "VARCHAR",
            "AGGREGATE",
            "['GIST({{ text }})']",
            "Always answer yes.",
        ),
    );
    let session = h.runtime.session();
    let listed = session
        .execute("SELECT shape FROM rvbbit_functions WHERE name = 'gist'")
        .await
        .unwrap();
    assert_eq!(column(&listed, 0), [Some("AGGREGATE".to_owned())]);
    let r = session
        .execute(
            "SELECT g, GIST(x) FROM (VALUES (1, 'a'), (1, NULL), (1, 'b'), (2, 'c'), (3, NULL)) AS t(g, x) \
             GROUP BY g ORDER BY g",
        )
        .await
        .unwrap();
    assert_eq!(
        column(&r, 1),
        [Some("yes".to_owned()), Some("yes".to_owned()), None]
    );
    // One call per group with values; NULL values are skipped, a group of none is NULL without a call.
    let mut texts: Vec<String> = server
        .bodies()
        .iter()
        .filter_map(|b| {
            let prompt = b["messages"][0]["content"].as_str()?;
            prompt
                .lines()
                .find_map(|l| l.strip_prefix("Text: "))
                .map(str::to_owned)
        })
        .collect();
    texts.sort();
    assert_eq!(texts, [r#"["a","b"]"#, r#"["c"]"#]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_function_called_as_a_scalar_says_where_it_goes() {
    let server = llm().await;
    let h = Harness::new(&server.base_url(), 4).await;
    h.write(
        "cascades/semantic_sql/buckets.yaml",
        &operator_file("buckets", "TABLE", "PIPELINE", "['THEN BUCKETS {{ text }}']", "x"),
    );
    let session = h.runtime.session();
    let err = session
        .execute("SELECT buckets(x) FROM (VALUES ('a'), ('b')) AS t(x)")
        .await
        .unwrap_err();
    assert_eq!(err.code().code, "RVB-Q001", "{err}");
    assert!(
        err.to_string().contains(
            "`buckets` is a PIPELINE stage: write it after a query (`SELECT … THEN BUCKETS {{ text }}`)"
        ),
        "{err}"
    );
    assert_eq!(server.requests(), 0);
}

/// A value longer than the whole budget is cut to it (at a character boundary), with a notice; the group
/// is still answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_over_the_context_budget_is_cut_with_a_notice() {
    let server = crate::slt::semantic_model().await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session = h.runtime.session();
    session
        .execute("SET rvbbit.semantic_context_bytes = 300")
        .await
        .unwrap();
    let r = session
        .execute("SELECT summarize(x) FROM (VALUES (repeat('é', 1000))) AS t(x)")
        .await
        .unwrap();
    let answer = column(&r, 0)[0].clone().unwrap_or_default();
    // 300 bytes of JSON array: brackets, quotes and 148 two-byte characters.
    assert_eq!(answer, format!("1 items: {}", "é".repeat(148)));
    assert!(
        r.notices
            .iter()
            .any(|n| n.contains("1 value(s) longer than rvbbit.semantic_context_bytes = 300")),
        "{:?}",
        r.notices
    );
    assert_eq!(server.requests(), 1);
}

/// 10,000 rows in 3 groups under a 4 KiB budget: every prompt's values fit the budget, so each group is
/// answered map (one call per chunk) then reduce (one call on the partial answers); the scripted
/// SUMMARIZE (`slt::semantic_reply`) adds up the partial counts, so each group's answer names its size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summarize_over_10000_rows_keeps_every_prompt_under_the_context_budget() {
    const BUDGET: usize = 4096;
    // The rest of summarize.yaml's prompt around its `Texts:` value (about 300 bytes).
    const TEMPLATE_OVERHEAD: usize = 512;
    let server = crate::slt::semantic_model().await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session = h.runtime.session();
    session
        .execute(
            "CREATE TABLE big AS SELECT value % 3 AS g, 'note number ' || value || ' about the service' AS body \
             FROM generate_series(1, 10000)",
        )
        .await
        .unwrap();
    session
        .execute(&format!("SET rvbbit.semantic_context_bytes = {BUDGET}"))
        .await
        .unwrap();
    let sql = "SELECT g, summarize(body) FROM big GROUP BY g ORDER BY g";
    let r = session.execute(sql).await.unwrap();
    let answers = column(&r, 1);
    let sizes = [3333, 3334, 3333];
    for (answer, size) in answers.iter().zip(sizes) {
        let answer = answer.as_deref().unwrap_or_default();
        assert!(
            answer.starts_with(&format!("{size} items: note number ")),
            "{answer}"
        );
    }
    assert_eq!(answers.len(), 3);

    let (mut map, mut reduce) = (0, 0);
    for body in server.bodies() {
        let prompt = body["messages"][0]["content"].as_str().unwrap_or_default();
        let texts = prompt
            .lines()
            .find_map(|l| l.strip_prefix("Texts: "))
            .unwrap_or_default();
        assert!(texts.len() <= BUDGET, "{} bytes of values", texts.len());
        assert!(
            prompt.len() <= BUDGET + TEMPLATE_OVERHEAD,
            "{} bytes of prompt",
            prompt.len()
        );
        let items: Vec<String> = serde_json::from_str(texts).unwrap();
        if items.iter().all(|i| i.contains(" items: ")) {
            reduce += 1;
        } else {
            map += 1;
        }
    }
    assert_eq!(reduce, 3, "one final reduce call per group");
    assert!(map >= 3 * 25, "{map} map calls: ~120 KB per group in 4 KB chunks");

    let before = server.requests();
    let again = session.execute(sql).await.unwrap();
    assert_eq!(column(&again, 1), answers);
    assert_eq!(server.requests(), before, "the rerun is served from the cache");
}

/// The delegate of sqlparser's `Dialect` trait is generated: a sqlparser with a new trait method fails
/// here until `scripts/gen-dialect-delegate.py` is run again.
#[test]
fn the_dialect_delegate_forwards_every_method_of_the_trait() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("python3")
        .arg("scripts/gen-dialect-delegate.py")
        .arg("--check")
        .current_dir(&root)
        .output()
        .expect("python3 runs the generator");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_semantic_join_condition_runs_on_joined_rows_and_an_equi_condition_stays_a_hash_join() {
    let server = llm().await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session = h.runtime.session();
    let sql = "SELECT t.id FROM (VALUES (1, 'a', 'x'), (2, 'b', 'y')) AS t(id, k, body) \
               JOIN (VALUES ('a', 'z'), ('b', 'w')) AS u(k, kind) ON t.k = u.k AND t.body SAME_AS u.kind";
    let r = session.execute(&format!("EXPLAIN {sql}")).await.unwrap();
    let plan = column(&r, 1).into_iter().flatten().collect::<Vec<_>>().join("\n");
    assert!(plan.contains("HashJoinExec"), "{plan}");
    assert!(!plan.contains("NestedLoopJoinExec"), "{plan}");
    let join_at = plan.find("HashJoinExec").unwrap();
    let filter_at = plan.find("FilterExec").expect("a filter above the join");
    assert!(
        filter_at < join_at,
        "the semantic condition is a filter above the join: {plan}"
    );
    assert_eq!(server.requests(), 0, "EXPLAIN asks nothing");
    session
        .execute("SET rvbbit.semantic_batch_size = 1")
        .await
        .unwrap();
    session.execute(sql).await.unwrap();
    assert_eq!(
        server.requests(),
        2,
        "one question per joined pair, none per unjoined one"
    );
}
