//! The error-code table: every user-facing error has a stable code, and the code decides the exit code.
//!
//! This table is the single source for `docs/errors/<CODE>.md`, `docs/exit-codes.md` and
//! `rvbbit explain CODE`; a test regenerates the docs and fails when they drift.

use std::fmt;

use serde::{Serialize, Serializer};

/// What kind of failure a code belongs to; each kind has one process exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ExitClass {
    /// Success.
    Ok,
    /// The cascade (or other input) is invalid: fix the file.
    Validation,
    /// The run failed while executing (a cell error, a schema never satisfied, an unsupported feature).
    Execution,
    /// A tool failed or timed out.
    Tool,
    /// An LLM provider failed after retries and fallbacks.
    Llm,
    /// The event store failed.
    Storage,
    /// Configuration or command-line usage is wrong.
    Configuration,
    /// The run stopped to wait for a human answer; the session stays `waiting` and can be resumed.
    Waiting,
    /// A batch ended with some inputs failed (the others completed).
    BatchPartial,
    /// A batch ended with every input failed.
    BatchFailed,
    /// The run was interrupted with Ctrl-C (SIGINT).
    Interrupted,
    /// The run was terminated with SIGTERM.
    Terminated,
}

impl ExitClass {
    /// Every class, in exit-code order.
    pub const ALL: [ExitClass; 12] = [
        ExitClass::Ok,
        ExitClass::Validation,
        ExitClass::Execution,
        ExitClass::Tool,
        ExitClass::Llm,
        ExitClass::Storage,
        ExitClass::Configuration,
        ExitClass::Waiting,
        ExitClass::BatchPartial,
        ExitClass::BatchFailed,
        ExitClass::Interrupted,
        ExitClass::Terminated,
    ];

    /// The process exit code for this class.
    pub const fn exit_code(self) -> u8 {
        match self {
            ExitClass::Ok => 0,
            ExitClass::Validation => 1,
            ExitClass::Execution => 2,
            ExitClass::Tool => 3,
            ExitClass::Llm => 4,
            ExitClass::Storage => 5,
            ExitClass::Configuration => 6,
            ExitClass::Waiting => 10,
            ExitClass::BatchPartial => 11,
            ExitClass::BatchFailed => 12,
            ExitClass::Interrupted => 130,
            ExitClass::Terminated => 143,
        }
    }

    /// A one-line description for the exit-code table.
    pub const fn meaning(self) -> &'static str {
        match self {
            ExitClass::Ok => {
                "Success: the command did what was asked (validation found no errors; the run completed)."
            }
            ExitClass::Validation => {
                "Validation: a cascade, input or other file is invalid. Fix the file; the diagnostics say where."
            }
            ExitClass::Execution => {
                "Execution: the run started but failed (a cell error, an output schema never satisfied, an \
                 unsupported feature, an internal bug)."
            }
            ExitClass::Tool => "Tool: a tool failed or timed out and the cell had no `on_error` route.",
            ExitClass::Llm => {
                "LLM: a provider call failed after retries and fallbacks (auth, rate limit, outage)."
            }
            ExitClass::Storage => {
                "Storage: the event store could not be opened, migrated or written, records were spilled \
                 (replay them with `rvbbit db replay`) or lost, or the command's output could not be written."
            }
            ExitClass::Configuration => {
                "Configuration: `rvbbit.toml`, an `RVBBIT_*` variable or a command-line flag is wrong."
            }
            ExitClass::Waiting => {
                "Waiting: the run stopped at a human-in-the-loop cell; the session is `waiting`. Answer with \
                 `rvbbit signal send SESSION NAME --value JSON`, then continue with `rvbbit resume SESSION`."
            }
            ExitClass::BatchPartial => {
                "Batch partial: `rvbbit batch` ran every input it could, and some failed or were not run (the \
                 summary names them). Running the same command again reruns only those: completed inputs come from the cache at $0. \
                 Also a spending limit that refused new work (RVB-B030), for `rvbbit run` too."
            }
            ExitClass::BatchFailed => {
                "Batch failed: `rvbbit batch` found that every input failed or was not run."
            }
            ExitClass::Interrupted => {
                "Interrupted by Ctrl-C (SIGINT): the run was cancelled and its events flushed."
            }
            ExitClass::Terminated => "Terminated by SIGTERM: the run was cancelled and its events flushed.",
        }
    }
}

/// One entry of the error-code table.
#[derive(Debug, PartialEq, Eq)]
pub struct ErrorCode {
    /// The stable code, such as `RVB-V004`.
    pub code: &'static str,
    /// What kind of failure this is, which fixes the exit code.
    pub class: ExitClass,
    /// A short title.
    pub title: &'static str,
    /// What happened, in a sentence or two.
    pub what: &'static str,
    /// Usual causes.
    pub causes: &'static [&'static str],
    /// How to fix it.
    pub fix: &'static str,
}

impl ErrorCode {
    /// The process exit code this error leads to.
    pub const fn exit_code(&self) -> u8 {
        self.class.exit_code()
    }

    /// The documentation page for this code, relative to the repository root.
    pub fn doc_path(&self) -> String {
        format!("docs/errors/{}.md", self.code)
    }

    /// Render the Markdown documentation page for this code.
    pub fn render_markdown(&self) -> String {
        let mut out = format!("# {}: {}\n\n", self.code, self.title);
        out.push_str(&format!(
            "Exit code **{}** ({}).\n\n## What happened\n\n{}\n\n## Usual causes\n\n",
            self.exit_code(),
            class_name(self.class),
            self.what
        ));
        for cause in self.causes {
            out.push_str(&format!("- {cause}\n"));
        }
        out.push_str(&format!("\n## How to fix it\n\n{}\n", self.fix));
        out.push_str("\n<!-- Generated from crates/core/src/codes.rs; edit the table, not this file. -->\n");
        out
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code)
    }
}

fn class_name(class: ExitClass) -> &'static str {
    match class {
        ExitClass::Ok => "ok",
        ExitClass::Validation => "validation",
        ExitClass::Execution => "execution",
        ExitClass::Tool => "tool",
        ExitClass::Llm => "LLM",
        ExitClass::Storage => "storage",
        ExitClass::Configuration => "configuration",
        ExitClass::Waiting => "waiting",
        ExitClass::BatchPartial => "batch partial",
        ExitClass::BatchFailed => "batch failed",
        ExitClass::Interrupted => "interrupted",
        ExitClass::Terminated => "terminated",
    }
}

macro_rules! codes {
    ($( $(#[$meta:meta])* $name:ident = $code:literal, $class:ident, $title:literal, $what:literal,
        [$($cause:literal),* $(,)?], $fix:literal; )*) => {
        $(
            $(#[$meta])*
            pub const $name: &ErrorCode = &ErrorCode {
                code: $code,
                class: ExitClass::$class,
                title: $title,
                what: $what,
                causes: &[$($cause),*],
                fix: $fix,
            };
        )*
        /// Every error code, in table order.
        pub const ALL: &[&ErrorCode] = &[$($name),*];
    };
}

codes! {
    // ---- Validation (exit 1) -------------------------------------------------------------------------
    /// The file is not well-formed YAML or JSON.
    V_SYNTAX = "RVB-V001", Validation, "Syntax error",
        "The file could not be parsed as YAML or JSON. The diagnostic points at the position the parser stopped.",
        ["A tab used for indentation (YAML allows only spaces).", "An unclosed quote, bracket or brace.",
         "A `key: value` line whose value contains `: ` without quotes."],
        "Fix the syntax at the reported line and column. Quote values that contain `: `, `#` or start with `{`, `[`, `*` or `&`.";
    /// The document has the wrong overall shape.
    V_SHAPE = "RVB-V002", Validation, "Not a cascade",
        "The document is empty or its top level is not a mapping, so it cannot be a cascade or tool definition.",
        ["An empty file.", "A file that is a list of cells without the `cascade_id:` / `cells:` wrapper.",
         "A file that is not a cascade at all (a README, a data file)."],
        "A cascade is a mapping with at least `cascade_id` and `cells`. See `examples/` for complete files.";
    /// A required key is absent.
    V_MISSING_KEY = "RVB-V003", Validation, "Missing required key",
        "A key that rvbbit needs is absent: `cascade_id` and `cells` at the top level, `name` on every cell.",
        ["A cell written without `name:`.", "`cells:` misspelled (it is then also reported as an unknown key)."],
        "Add the key. The example fix in the diagnostic shows the shape.";
    /// A key is not part of the cascade language.
    V_UNKNOWN_KEY = "RVB-V004", Validation, "Unknown key",
        "A key is not part of the cascade language at that place. RVBBIT ignored such keys silently, so a typo changed behaviour without warning; rvbbit reports it (a warning, an error with `--strict`).",
        ["A typo (`max_turn` for `max_turns`, `handoff` for `handoffs`).", "A key placed at the wrong level (`max_turns` directly on a cell instead of under `rules`).",
         "A key from a newer version of the language."],
        "Use the suggested spelling, or move the key to where it belongs. `rvbbit schema export` gives your editor the full list of keys.";
    /// A value has the wrong type or is not one of the allowed choices.
    V_TYPE = "RVB-V005", Validation, "Wrong type or value",
        "A value has the wrong type (a string where a number is expected) or is not one of the allowed choices.",
        ["A number written as a word (`max_turns: three`).", "A misspelled choice (`mode: blocking_hard`).",
         "A single value where a list is expected."],
        "Write the value in the expected form; the diagnostic names the expected type or lists the allowed choices.";
    /// Two cells share a name.
    V_DUPLICATE_CELL = "RVB-V006", Validation, "Duplicate cell name",
        "Two cells have the same `name`. Routing and `outputs.<name>` would be ambiguous (RVBBIT silently used the first).",
        ["A cell copied and pasted without renaming."],
        "Give every cell a unique name and update handoffs that should point at the copy.";
    /// A cell has no primary kind, or more than one.
    V_CELL_KIND = "RVB-V007", Validation, "Cell kind is ambiguous",
        "A cell must have exactly one of `instructions` (an LLM cell), `tool` (a deterministic cell) or `for_each_row`, or only `htmx`/`hitl` (a screen).",
        ["A cell with both `instructions` and `tool`.", "A cell with neither (a misspelled `instruction:`)."],
        "Keep exactly one primary key. To run a tool and then ask the LLM about it, use two cells.";
    /// A routing target names no cell.
    V_UNKNOWN_TARGET = "RVB-V008", Validation, "Unknown cell reference",
        "A `handoffs`, `routing`, `on_error` or `context.from` entry names a cell that does not exist in this cascade.",
        ["A typo in the cell name.", "A cell that was renamed or removed."],
        "Use one of the cell names listed in the diagnostic.";
    /// A tool name is not registered.
    V_UNKNOWN_TOOL = "RVB-V009", Validation, "Unknown tool",
        "A tool named in `traits`/`tackle`/`skills` or `tool` is neither a built-in tool, a tool definition or a cascade in the tool directories, nor provided by a cascade key such as `memory` or `rag`.",
        ["A typo in the tool name.", "A tool from RVBBIT that rvbbit does not provide.",
         "A cascade tool whose file is not in a `traits/`, `tackle/`, `skills/` or `cascades/` directory next to the cascade or under a configured root."],
        "Use one of the listed tools, or put the tool's definition where rvbbit looks for tools. A deterministic cell's `tool:` that nobody provides is an error (a run refuses the cell with RVB-E003); a tool offered to a model in `traits` is a warning (the cell runs without it, and only a call to it fails).";
    /// A validator name resolves to nothing.
    V_UNKNOWN_VALIDATOR = "RVB-V010", Validation, "Unknown validator",
        "A validator named in `loop_until`, `wards` or `candidates.validator` is not an inline validator, a tool, or a cascade. RVBBIT treated such validators as passing; rvbbit refuses to run them.",
        ["A typo.", "A validator cascade that is not in a tool directory."],
        "Define it under the cascade's `validators:` key, or add a validator cascade to `traits/`.";
    /// Handoffs form a loop with no way out.
    V_HANDOFF_CYCLE = "RVB-V011", Validation, "Handoff cycle never exits",
        "The cells listed form a cycle of handoffs from which no path reaches a cell that ends the cascade, so the run could only end by error or cancellation.",
        ["Two cells that hand off to each other with no third way out."],
        "Add a handoff from one of the cells to a cell that ends the run, or give a cell in the cycle no handoffs.";
    /// `output_schema` is not a valid JSON Schema.
    V_OUTPUT_SCHEMA = "RVB-V012", Validation, "Invalid output_schema",
        "The cell's `output_schema` is not a valid JSON Schema, so no output could ever be checked against it.",
        ["A misspelled type (`type: strng`).", "`required` written as a string instead of a list."],
        "Fix the schema at the reported place; JSON Schema draft 7 and 2020-12 keywords are accepted.";
    /// A Jinja template does not parse.
    V_TEMPLATE_SYNTAX = "RVB-V013", Validation, "Template syntax error",
        "A template field (`instructions`, `inputs`, `turn_prompt`, `retry_instructions`, `loop_until_prompt`, `htmx`, ...) is not valid Jinja.",
        ["An unclosed `{{` or `{%`.", "A `{% for %}` without `{% endfor %}`.", "Literal `{{` in text (escape it as `{{ '{{' }}`)."],
        "Fix the template at the reported position.";
    /// A template refers to a cell that does not exist.
    V_TEMPLATE_REF = "RVB-V014", Validation, "Template refers to an unknown cell",
        "A template reads `outputs.<name>` or `state.output_<name>` for a cell that is not in this cascade, so it would always render empty.",
        ["A typo in the cell name.", "A renamed cell."],
        "Use one of the cell names listed in the diagnostic.";
    /// Two spellings of one key from different eras are both given.
    V_ALIAS_CONFLICT = "RVB-V015", Validation, "Conflicting key spellings",
        "Two era spellings of the same key are present (for example `traits` and `tackle`), so it is unclear which one is meant.",
        ["A file migrated halfway between eras."],
        "Keep one spelling; rvbbit reads `phases`/`cells`, `tackle`/`traits`/`skills` and `soundings`/`candidates`/`takes` alike.";
    /// An `@path` include could not be read.
    V_INCLUDE = "RVB-V016", Validation, "Include failed",
        "A value of the form `@path` names a file that could not be read, or that escapes the cascade's directory.",
        ["A wrong relative path (paths are relative to the cascade file's directory).", "A missing file."],
        "Fix the path, or inline the text.";
    /// A mapping repeats a key.
    V_DUPLICATE_KEY = "RVB-V017", Validation, "Duplicate key",
        "A mapping lists the same key twice; YAML parsers disagree on which one wins, so rvbbit refuses to guess.",
        ["Two `rules:` blocks in one cell.", "A merge of two edits."],
        "Keep one occurrence and merge their contents.";
    /// The file could not be read.
    V_READ = "RVB-V018", Validation, "File cannot be read",
        "The path does not exist, is not a regular readable file, is not UTF-8 text, or is larger than the size rvbbit reads.",
        ["A typo in the path.", "A binary file.", "A generated file over the 8 MiB limit."],
        "Pass the path of a cascade file (`.yaml`, `.yml` or `.json`) or a directory containing them.";
    /// More than one YAML document in one file.
    V_MULTI_DOCUMENT = "RVB-V019", Validation, "Several YAML documents",
        "The file holds more than one YAML document (separated by `---`); only the first is the cascade.",
        ["Notes or a second draft appended after `---`."],
        "Move the other documents to their own files, or turn them into comments.";
    /// A sub-cascade or cascade reference does not resolve.
    V_UNKNOWN_CASCADE = "RVB-V020", Validation, "Unknown cascade reference",
        "A `sub_cascades`/`async_cascades` `ref`, `for_each_row.cascade` or validator cascade file could not be found.",
        ["A relative path that is resolved against the referring file's directory, not the working directory."],
        "Fix the path relative to the file that refers to it, or put the cascade under a configured root.";
    /// An inline validator has the wrong shape.
    V_VALIDATOR_SHAPE = "RVB-V021", Validation, "Inline validator has the wrong shape",
        "An inline validator must have exactly one of `python`, `javascript`, `sql`, `clojure`, `bash`, or `tool`.",
        ["An empty validator object.", "Two languages in one validator."],
        "Keep exactly one language key.";
    /// A cascade has no cells.
    V_NO_CELLS = "RVB-V022", Validation, "No cells",
        "`cells` is empty, so the cascade would do nothing.",
        ["A cascade under construction."],
        "Add at least one cell.";
    /// A tool definition file is invalid.
    V_TOOL_DEFINITION = "RVB-V023", Validation, "Invalid tool definition",
        "A declarative tool file (with `tool_id`) lacks what its `type` needs, such as `command` for a shell tool or `url` for an HTTP tool.",
        ["A shell tool without `command`.", "An unknown `type`."],
        "Add the missing key; the diagnostic lists what the type needs.";
    /// A cascade file exceeds a size, depth or alias-expansion limit.
    V_TOO_LARGE = "RVB-V024", Validation, "File exceeds a limit",
        "The file was refused before it was expanded: it has more alias references, more nodes after alias expansion, or deeper nesting than the `limits.yaml_*` settings allow. Such files (\"billion laughs\") grow exponentially when aliases are expanded.",
        ["A YAML file whose anchors refer to anchors that refer to anchors, many times each.",
         "A generated file nested hundreds of levels deep."],
        "Write the repeated part once (use a sub-cascade or `@path` include), or raise the named `limits.yaml_*` setting in `rvbbit.toml` if the file is legitimate.";
    /// A shell command interpolates input without quoting it.
    V_UNQUOTED_SHELL = "RVB-V025", Validation, "Unquoted input in a shell command",
        "A shell command template inserts a value that comes from the run's input or an earlier cell's output without the `shell_quote` (alias `q`) filter, so a value such as `x'; id; echo '` runs commands of its own.",
        ["`command: echo {{ input.name }}` in a `linux_shell` cell or shell tool."],
        "Quote every interpolated value: `echo {{ input.name | q }}`. The filter quotes for POSIX shells, including quotes, spaces and newlines.";

    // ---- Execution (exit 2) --------------------------------------------------------------------------
    /// A cell failed.
    E_CELL_FAILED = "RVB-E001", Execution, "Cell failed",
        "A cell raised an error and had no `on_error` route, so the cascade stopped.",
        ["A template that renders invalid input for a tool.", "A post ward in blocking mode rejected the output."],
        "Read the cell's error event (`rvbbit sessions show ID`), then fix the cell or add `on_error`.";
    /// The output schema was never satisfied.
    E_SCHEMA_UNSATISFIED = "RVB-E002", Execution, "Output schema never satisfied",
        "The model's output failed `output_schema` on every attempt.",
        ["A schema stricter than the instructions describe.", "Too few `rules.max_attempts`."],
        "Describe the expected JSON in the instructions, or raise `rules.max_attempts`.";
    /// A feature that parses but does not run yet.
    E_UNSUPPORTED = "RVB-E003", Execution, "Feature not supported",
        "The cascade uses a feature that rvbbit parses and validates but cannot execute yet.",
        ["An advanced key from RVBBIT such as `browser` or `narrator`."],
        "Remove the key, or check the release notes for when it is supported.";
    /// Nesting too deep.
    E_MAX_DEPTH = "RVB-E004", Execution, "Nesting too deep",
        "Sub-cascades or validator cascades nested deeper than the limit.",
        ["A cascade that calls itself."],
        "Break the recursion.";
    /// A ward in blocking mode rejected a cell's input or output.
    E_WARD_BLOCKED = "RVB-E005", Execution, "Blocked by ward",
        "A `wards` entry in `blocking` mode judged the cell's input (pre ward), a turn (turn ward) or its output (post ward) invalid, so the cascade stopped. The cell's `on_error` does not apply: a blocking ward is a hard stop.",
        ["The input or the model's output really broke the rule the ward checks.",
         "A validator that is too strict, or that fails on valid content (check its reason in the `ward` event)."],
        "Read the ward's reason in the error or in the `ward` event (`rvbbit debug trace SESSION`). Fix the input, relax the validator, or use `mode: retry` (re-ask the model) or `mode: advisory` (warn only).";
    /// A child cascade (sub-cascade, async cascade, cascade tool, validator cascade) could not be loaded.
    E_CHILD_INVALID = "RVB-E006", Execution, "Invalid child cascade",
        "A cascade referenced at run time (a `sub_cascades` or `async_cascades` `ref`, a cascade used as a tool, a validator cascade) could not be found, leaves the project directory, or is not a valid cascade. Nothing of the child ran.",
        ["A `ref` path with a typo, or relative to the wrong directory (refs are relative to the referring cascade file and its parents).",
         "A `ref` that climbs out of the project (`../../etc/passwd`) or a symlink that points outside it.",
         "A child cascade with validation errors."],
        "Run `rvbbit validate` on the child file named in the message and fix it, or correct the `ref`.";
    /// The conversation does not fit the token budget.
    E_TOKEN_BUDGET = "RVB-E010", Execution, "Token budget exceeded",
        "Before a model call, the cell's conversation (estimated at 4 characters a token) was larger than the cascade's `token_budget.max_total` minus `reserve_for_output`, and the budget's `strategy` is `fail` or pruning old messages could not make it fit.",
        ["A large tool result or injected context with `strategy: fail`.", "A single message (the task itself) larger than the budget."],
        "Raise `token_budget.max_total`, lower `reserve_for_output`, or use `strategy: sliding_window`, `prune_oldest` or `summarize`.";
    /// The candidates' evaluator named no winner.
    E_EVALUATOR_UNREADABLE = "RVB-E011", Execution, "Evaluator reply unreadable",
        "The evaluator of a cell's `candidates` (takes, soundings) replied without a valid attempt number, and again when asked once more for `{\"winner\": n, \"reason\": ...}`.",
        ["A model that ignores the answer format.", "Evaluator instructions that ask for something other than picking one attempt."],
        "Ask for the attempt number in `evaluator_instructions`, or set `candidates.evaluator_model` to a model that follows instructions.";
    /// A template rendering ran out of its budget.
    E_TEMPLATE_LIMIT = "RVB-E012", Execution, "Template limit exceeded",
        "Rendering a Jinja template executed more instructions than `limits.template_fuel` allows, or produced more bytes than `limits.template_output_bytes`, so it was stopped. Without these limits a loop such as three nested `range(10000)` runs for many minutes.",
        ["Nested loops over large ranges or large inputs.", "A template that repeats a large value many times."],
        "Do heavy computation in a code or SQL cell and render only the result, or raise the named `limits.template_*` setting.";
    /// The run was stopped by Ctrl-C, SIGTERM or `rvbbit sessions cancel`.
    E_INTERRUPTED = "RVB-E013", Interrupted, "Run interrupted",
        "The run was stopped before it finished: Ctrl-C (SIGINT, exit 130), SIGTERM (exit 143) or `rvbbit sessions cancel`. The session is marked `cancelled` and every event recorded so far is flushed; nothing failed.",
        ["Ctrl-C in the terminal.", "A supervisor (systemd, Kubernetes, `timeout`) sent SIGTERM.", "`rvbbit sessions cancel ID` or `rvbbit sessions kill-all` from another shell."],
        "Run the cascade again to finish it (`rvbbit sessions show ID` shows the cells that completed); give long runs more time before a supervisor sends SIGTERM.";
    /// The process running a session died without ending it.
    E_ORPHANED = "RVB-E014", Execution, "Run orphaned",
        "The session was `running`, but the process running it stopped sending heartbeats (it was killed, crashed or lost its machine), so `rvbbit doctor --repair` or `rvbbit sessions cleanup` marked it `failed` with this code.",
        ["`kill -9` or the out-of-memory killer.", "A machine or container that stopped mid-run.", "A closed terminal that killed the process group."],
        "Run the cascade again; `rvbbit sessions show ID` shows what completed before the process died.";
    /// A broken invariant: a bug in rvbbit.
    INTERNAL = "RVB-I001", Execution, "Internal error",
        "rvbbit reached a state its authors believed impossible. This is a bug.",
        ["A bug in rvbbit."],
        "Report it with the command you ran and the output of `rvbbit --version`.";

    // ---- Tool (exit 3) -------------------------------------------------------------------------------
    /// A tool failed.
    T_FAILED = "RVB-T001", Tool, "Tool failed",
        "A tool returned an error and the cell had no `on_error` route.",
        ["A shell command that exited non-zero.", "Invalid SQL."],
        "See the tool's error in the session trace; add `on_error` to route failures.";
    /// A tool timed out.
    T_TIMEOUT = "RVB-T002", Tool, "Tool timed out",
        "A tool ran longer than the cell's `timeout`.",
        ["A command waiting for input.", "A timeout set too low."],
        "Raise `timeout` on the cell or make the tool faster.";

    // ---- LLM (exit 4) --------------------------------------------------------------------------------
    /// The provider could not be reached.
    L_UNREACHABLE = "RVB-L001", Llm, "Provider unreachable",
        "The LLM provider could not be reached (connection refused, DNS failure, TLS failure, timeout) after retries.",
        ["No network.", "A wrong `RVBBIT_PROVIDER_BASE_URL`.", "A local server (Ollama, vLLM) that is not running."],
        "Check the base URL with `rvbbit config show` and that the server is up.";
    /// The provider rejected the credentials.
    L_AUTH = "RVB-L002", Llm, "Provider rejected the API key",
        "The provider answered 401 or 403.",
        ["`OPENROUTER_API_KEY` (or the configured key variable) unset, expired or for another provider."],
        "Set OPENROUTER_API_KEY (or the provider's key variable) to a valid key.";
    /// Rate limited beyond the retry budget.
    L_RATE_LIMITED = "RVB-L003", Llm, "Rate limited",
        "The provider kept answering 429 after every retry.",
        ["Too much concurrency for the account's limits."],
        "Lower concurrency or requests/tokens per minute in `rvbbit.toml`, or raise the account's limits.";
    /// The model is unknown to the provider.
    L_UNKNOWN_MODEL = "RVB-L004", Llm, "Unknown model",
        "The provider does not know the requested model.",
        ["A typo in the model id.", "A model id from another provider."],
        "Use a model id the provider lists; the diagnostic suggests close matches when it can.";
    /// The provider rejected the request.
    L_BAD_REQUEST = "RVB-L005", Llm, "Provider rejected the request",
        "The provider answered with a 4xx error other than auth, rate limit or unknown model.",
        ["A context longer than the model allows.", "A tool schema the provider does not accept."],
        "Read the provider's message in the error event; shorten the context or fix the tool definitions.";
    /// The provider failed.
    L_PROVIDER_ERROR = "RVB-L006", Llm, "Provider error",
        "The provider answered 5xx, sent a malformed or truncated response, or timed out, on every retry and fallback.",
        ["A provider outage."],
        "Retry later, or configure a fallback chain (`model: [a, b]`).";
    /// A replay file has no answer for a request.
    L_REPLAY_MISS = "RVB-L007", Llm, "No recorded response",
        "The replay provider found no recorded response for a request.",
        ["The cascade or its input changed since the recording was made."],
        "Record again with `--record FILE`.";
    /// The circuit breaker is open.
    L_CIRCUIT_OPEN = "RVB-L008", Llm, "Provider circuit open",
        "Calls to this endpoint are paused after repeated failures; the breaker will try again after its cool-down.",
        ["A provider outage."],
        "Wait for the cool-down, or configure a fallback model on another endpoint.";
    /// A record/replay file cannot be read or written.
    L_RECORDING_FILE = "RVB-L009", Llm, "Record/replay file unusable",
        "The file given to `--record` or `--replay` could not be opened, read, written or parsed.",
        ["A path in a directory that does not exist.", "A recording written by another tool, or truncated."],
        "Check the path and its permissions; record again with `--record FILE` if the file is damaged.";
    /// The mock provider's scripted answers cannot be used.
    L_MOCK_ANSWERS = "RVB-L010", Llm, "Mock answers unusable",
        "The file given to `--mock-answers` (or `provider.mock_answers`) could not be read, or is not a mapping of cell names to `answers`, `routes`, `verdicts` and `winners` lists.",
        ["A path that does not exist.", "A misspelt key, such as `answer:` for `answers:`."],
        "Fix the file as the message says; the format is in docs/llm.md, \"Offline: the mock provider\".";

    // ---- Storage (exit 5) ----------------------------------------------------------------------------
    /// The store could not be opened or reached.
    S_UNAVAILABLE = "RVB-S001", Storage, "Store unavailable",
        "The event store could not be opened or reached.",
        ["A read-only or full disk.", "A database server that is down.", "A wrong `store.url`.",
         "The ClickHouse events sink (`store.events.url`) is down or refuses the credentials (only `rvbbit db replay` fails for it; runs go on and spill its events)."],
        "Check `rvbbit health` and `rvbbit doctor`; events of an interrupted run wait in `.rvbbit/spill/` (the events sink's in `.rvbbit/spill/events-sink/`) for `rvbbit db replay`.";
    /// A migration failed.
    S_MIGRATION = "RVB-S002", Storage, "Migration failed",
        "The store's schema could not be brought to the version this rvbbit needs.",
        ["A store written by a newer rvbbit.", "A manual change to the store's tables."],
        "Run `rvbbit db status`; restore from `rvbbit db backup` if the store was changed by hand.";
    /// Events were spilled to files because the store failed mid-run.
    S_SPILLED = "RVB-S003", Storage, "Events spilled",
        "The run finished, but the store failed while it was writing (locked too long, read-only, full or gone), so some events were written to JSONL files under `.rvbbit/spill/` instead.",
        ["A read-only or full disk.", "Another process holding the SQLite database locked longer than `busy_timeout`."],
        "Fix the store (`rvbbit health`, `rvbbit doctor`), then run `rvbbit db replay`: it loads every spill file exactly once.";
    /// A stored row cannot be read back.
    S_CORRUPT = "RVB-S004", Storage, "Unreadable store row",
        "A row in the store could not be decoded (an unknown kind or status, malformed JSON).",
        ["A manual change to the store's tables.", "A store written by a newer rvbbit."],
        "Back the store up with `rvbbit db backup --to DIR`, then fix or delete the row.";
    /// A session (or other record) was not found.
    S_NOT_FOUND = "RVB-S005", Storage, "Not found in the store",
        "The session (or other record) named on the command line is not in the store.",
        ["A typo in the id.", "A session removed by `rvbbit sessions cleanup`.", "Another `store.url`."],
        "List sessions with `rvbbit sessions list`.";
    /// A request conflicts with the record's state.
    S_CONFLICT = "RVB-S006", Storage, "Not possible in this state",
        "The request cannot be done in the record's current state, such as cancelling a session that already finished.",
        ["The session finished before the request arrived."],
        "Check the session with `rvbbit sessions show ID`.";
    /// A spill, backup or export file could not be read or written.
    S_FILE = "RVB-S007", Storage, "Store file cannot be read or written",
        "A spill, backup or export file or directory could not be read or written, or a spill line is damaged.",
        ["A read-only or full disk.", "A spill file edited by hand."],
        "Check the path exists and is writable; a damaged spill line can be removed by hand.";
    /// Events could neither be stored nor spilled.
    S_LOST = "RVB-S008", Storage, "Events lost",
        "Records of the run could not be written to the store and could not be spilled to a file either, so they are lost. The command fails and says how many records were lost and why; the run's outcome cannot be trusted as recorded.",
        ["A full disk.", "A `.rvbbit/` folder or working directory that is not writable.", "A store file that is read-only."],
        "Free disk space or fix the permissions (`rvbbit doctor` says which file), then run again.";
    /// The command's output could not be written.
    S_OUTPUT = "RVB-S009", Storage, "Output cannot be written",
        "The command could not write its result to standard output (other than the reader closing the pipe, which ends the command quietly), so the result is incomplete or missing.",
        ["Output redirected to a file on a full disk (`> out.json`).", "Output redirected to `/dev/full` or a read-only file."],
        "Free disk space or redirect the output elsewhere, then run the command again; with `rvbbit run` the run itself is in the store (`rvbbit sessions show ID`).";

    /// The session was cancelled, so it can no longer be answered or resumed.
    S_CANCELLED = "RVB-S010", Storage, "Session cancelled",
        "The session named on the command line was cancelled, so its questions cannot be answered and it cannot be resumed. A waiting session (stopped at a human-in-the-loop cell, with no process running it) is cancelled at once by `rvbbit sessions cancel`: its pending checkpoints and waiting signals are closed with it.",
        ["`rvbbit sessions cancel ID` or `rvbbit sessions kill-all` before the answer was sent.", "Ctrl-C while the run waited for an answer."],
        "Check what it did with `rvbbit sessions show ID`; start a new run with `rvbbit run`.";

    /// The job queue could not be reached.
    S_QUEUE_UNAVAILABLE = "RVB-S011", Storage, "Queue unavailable",
        "The job queue (`queue.url`, a NATS server with JetStream) could not be reached, or it failed a request: `rvbbit submit`, `rvbbit worker` and `rvbbit queue` need it.",
        ["The NATS server is not running, or runs at another host or port.", "The server runs without JetStream (start it with `nats-server -js`).",
         "Wrong credentials in `queue.url`.", "A firewall between this machine and the server."],
        "Check that `nats-server -js` runs at the host and port of `queue.url` (or `--queue`, `RVBBIT_QUEUE_URL`) and that this machine reaches it; then run the command again.";
    /// The queue server does not hold the stream or consumer as configured.
    S_QUEUE_CONFIG = "RVB-S012", Storage, "Queue configuration refused",
        "rvbbit created or updated the job queue's stream or consumer, read back the configuration the server holds, and found a setting that differs from what it asked for. Older NATS servers drop settings they do not know without an error, and an existing stream or consumer may have been made with other settings.",
        ["A NATS server older than 2.9.", "The stream or consumer was created by hand, or by an rvbbit with other `[queue]` settings, and the server refused the change.",
         "Two sets of workers sharing one server with different `queue.stream` settings."],
        "Use NATS server 2.9 or newer; give every worker and submitter the same `[queue]` settings, or delete the stream (`nats stream rm NAME`) when no job in it is needed, then run again.";
    /// A job could not be read or found.
    S_QUEUE_JOB = "RVB-S013", Storage, "Queue job not usable",
        "A job on the queue could not be used: `rvbbit queue retry-dead` was given a submission id with no dead letter, or a message on the queue is not a job `rvbbit submit` wrote.",
        ["A typo in the submission id.", "The dead letter was already retried.", "Something other than rvbbit published to the queue's subject."],
        "List dead letters with `rvbbit queue status --output json`; enqueue runs only with `rvbbit submit`.";
    /// The artifact store could not be reached or refused the request.
    S_ARTIFACTS_UNAVAILABLE = "RVB-S020", Storage, "Artifact store unavailable",
        "The artifact store (`artifacts.url`: an S3 bucket or a `file://` directory) could not be reached, refused the credentials, or failed a request, so a bundle or run output could not be read or written.",
        ["The S3 endpoint is down, or `artifacts.endpoint` names the wrong host or port.", "Wrong or missing credentials (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` or `artifacts.access_key_id`/`secret_access_key`).",
         "The bucket does not exist.", "A `file://` directory that is not writable."],
        "Check `artifacts.url`, `artifacts.endpoint` and the credentials; `rvbbit config show` prints them with secrets masked. Then run the command again.";
    /// A bundle name, version or hash is not in the artifact store.
    S_BUNDLE_NOT_FOUND = "RVB-S021", Storage, "Bundle not found",
        "The bundle named by `registry:NAME[:VERSION]` or `registry:sha256:HASH` is not in the artifact store (`artifacts.url`).",
        ["A typo in the name or version.", "The bundle was pushed to another artifact store.", "A job submitted against another `artifacts.url` than the worker's."],
        "Push it with `rvbbit cascade push FILE --name NAME:VERSION`, or point `artifacts.url` at the store it was pushed to.";
    /// A bundle is over one of the `[artifacts]` limits.
    S_BUNDLE_LIMIT = "RVB-S022", Storage, "Bundle over a limit",
        "A bundle has more files or bytes than `artifacts.max_bundle_files` or `artifacts.max_bundle_bytes` allow; nothing was read, uploaded or unpacked past the check.",
        ["A tool directory (`traits/`, `cascades/`) next to the cascade holding many or large files.", "A bundle pushed by a machine with higher limits."],
        "Move unrelated files out of the tool directories, or raise the limit named in the message in `[artifacts]`.";
    /// A bundle's file was refused: outside its directory, a link, a bad path or a wrong hash.
    S_BUNDLE_REFUSED = "RVB-S023", Storage, "Bundle file refused",
        "A file of a bundle was refused: when pushing, a file the cascade references resolves (after symlinks) outside the directories it may come from; when fetching, a manifest path is absolute, climbs with `..` or names a link, or a file's content does not match its SHA-256.",
        ["A symlink in `traits/` pointing outside the project.", "A manifest or blob changed in the object store by hand or by another program."],
        "Copy the file into the project instead of linking it; for a fetched bundle, push it again from its source.";
    /// The name and version already name other content.
    S_BUNDLE_NAME_TAKEN = "RVB-S024", Storage, "Bundle version taken",
        "`rvbbit cascade push --name NAME:VERSION` would change what an existing NAME:VERSION names. Versions other than `latest` are immutable, so every machine running NAME:VERSION runs the same content.",
        ["A file changed after its version was pushed.", "Two projects pushing under one name."],
        "Push under a new version (`--name NAME:VERSION+1`), or pass `--force` to move the version to the new content.";
    /// `distributed = true` (or `rvbbit.distributed`) without a queue or a store to gather from.
    S_DIST_NO_QUEUE = "RVB-S030", Storage, "Distributed SQL has no queue",
        "A SQL statement asked to run its rows as jobs on the queue (`RVBBIT MAP … WITH (distributed = true)`, or `SET rvbbit.distributed = on`), but this process has no job queue configured (`queue.url`), or no store to gather the results from. Nothing was enqueued.",
        ["`[queue] url` is not set in the configuration of the process running the SQL (`rvbbit sql`, `rvbbit serve sql`).",
         "The store could not be opened, so results written by the workers cannot be read."],
        "Set `[queue] url = \"nats://HOST:4222\"` (or `RVBBIT_QUEUE_URL`) and a store every worker shares (`[store] url`), start `rvbbit worker`s, and run the statement again; or drop `distributed = true` / `SET rvbbit.distributed = off` to run the rows here.";
    /// A distributed statement would enqueue more row jobs than allowed.
    S_DIST_ROWS = "RVB-S031", Storage, "Too many rows to distribute",
        "A distributed SQL statement would enqueue more row jobs than `rvbbit.distributed_max_rows` allows (rows answered by the result cache and duplicate rows do not count). It was refused before any job was enqueued.",
        ["A USING query or table larger than intended.", "A `WITH (limit = n)` raised past the distributed cap."],
        "Narrow the query with WHERE or LIMIT, or raise the cap with `SET rvbbit.distributed_max_rows = n`.";
    /// A distributed row job was not gathered in time.
    S_DIST_TIMEOUT = "RVB-S032", Storage, "Distributed rows not gathered in time",
        "A distributed SQL statement waited longer than `rvbbit.distributed_timeout` seconds for a row job's outcome to appear in the shared store. The statement failed; jobs already enqueued stay on the queue, and their results are gathered into the result cache by the next run of the statement.",
        ["No `rvbbit worker` is running on the queue, or the workers use another store.",
         "The workers are busy with a long queue of other jobs.", "A row's cascade runs longer than the timeout."],
        "Start workers (`rvbbit worker`) that share this process's store and `[queue]` settings; check `rvbbit queue status`; or raise `SET rvbbit.distributed_timeout = seconds`.";
    /// A distributed row job was given up by the queue.
    S_DIST_DEAD = "RVB-S033", Storage, "Distributed row job given up",
        "A row job of a distributed SQL statement was moved to the queue's dead-letter stream after its last delivery, so the row has no result (NULL, with the reason in `errors = 'column'`).",
        ["The workers could not start the cascade (it does not validate on the workers, a tool it names is missing there).",
         "Every worker that took the job died or hung."],
        "Read the reason in the message or `rvbbit queue status`; fix it on the workers, then run the statement again (rows already answered come from the cache).";

    // ---- SQL (exit 2) --------------------------------------------------------------------------------
    /// A SQL statement does not parse or plan.
    Q_SYNTAX = "RVB-Q001", Execution, "SQL statement invalid",
        "The SQL statement could not be parsed or planned: a syntax error, an unknown table, column or function, or arguments of the wrong type. The message gives the line and column when the parser reports one.",
        ["A typo in a keyword or identifier.", "A table that was never registered in this session.",
         "A string written with double quotes (an identifier in SQL) instead of single quotes."],
        "When the message gives a line and column, fix the statement there; otherwise it names the unknown table, column or function. `SHOW TABLES` lists the tables; `rvbbit_udf(instructions, value [, model [, options]])` and `rvbbit_run(cascade, inputs_json [, field])` are rvbbit's functions.";
    /// A SQL statement failed while executing.
    Q_EXECUTION = "RVB-Q002", Execution, "SQL statement failed",
        "The statement planned, but failed while it ran (a cast that cannot succeed, a division by zero, a file that cannot be read).",
        ["A value that cannot be cast to the requested type.", "A data file that was moved or is unreadable."],
        "Read the message: it names the failing expression or file. Fix the data or the statement.";
    /// An rvbbit SQL function call failed and `rvbbit.udf_errors = 'raise'` is set.
    Q_FUNCTION_FAILED = "RVB-Q003", Execution, "rvbbit SQL function failed",
        "A call of `rvbbit_udf` (or an alias) failed and the session asked for failures to raise (`SET rvbbit.udf_errors = 'raise'`), so the whole statement failed. By default a failed call returns NULL, the error is recorded in the store and the statement goes on.",
        ["The LLM provider failed after its retries (see the RVB-L code in the message).", "A missing API key or a wrong base URL."],
        "Fix the provider problem named in the message, or `SET rvbbit.udf_errors = 'null'` to get NULL for the failed rows and keep the others. `rvbbit sessions list --caller sql-…` shows every call of the statement.";
    /// An rvbbit SQL function got an argument or setting it cannot use.
    Q_ARGUMENT = "RVB-Q004", Execution, "Invalid rvbbit SQL argument or setting",
        "An rvbbit SQL function got an argument it cannot use (an options value that is not a JSON object, an unknown option), or a `SET rvbbit.…` setting has a value outside its choices.",
        ["`SET rvbbit.udf_errors = 'rais'` (a typo).", "An options argument such as `'{temperature: 0}'` that is not valid JSON."],
        "Use one of the values listed in the message. See docs/sql.md for every function, option and setting.";
    /// A network SQL door refused a file, URL or write.
    Q_REFUSED = "RVB-Q005", Execution, "SQL file access refused",
        "A statement sent to a network door (`rvbbit serve`'s `POST /api/v1/sql` or `rvbbit serve sql`) named a file outside the server's working directory and cascade roots, a remote URL, or asked to write files on the server (`COPY … TO`, `INSERT INTO` an external table). Those doors read only local files under the allowed folders, so a client cannot read the server's other files or write a cascade and run it. `rvbbit sql` on the command line has no such rule.",
        ["`SELECT * FROM read_csv('/etc/passwd')` or `read_csv('../other/data.csv')` over the wire.",
         "`CREATE EXTERNAL TABLE t … LOCATION 'https://…'` over the wire.",
         "`COPY (SELECT …) TO 'out.csv'` over the wire."],
        "Put the data under the working directory or a configured root and name it relatively, or register it (local or remote) in `[sql.tables]` of `rvbbit.toml`, which the operator controls. Run writes with `rvbbit sql` on the server.";
    /// A SQL statement exceeds a size, depth or count limit.
    Q_LIMIT = "RVB-Q006", Execution, "SQL limit exceeded",
        "The SQL text was refused before planning: an expression nests deeper than `limits.sql_expression_depth`, the request holds more statements than `limits.sql_statements`, or its text is longer than `limits.sql_query_bytes`. Deeply nested expressions would exhaust the planner's stack. The server keeps serving other statements and connections.",
        ["A generated query with hundreds of terms in one `a + b + …` or `x AND y AND …` chain.",
         "Thousands of statements sent in one message."],
        "Use `IN (…)` lists, a join against a table of values or several smaller statements; or raise the named `limits.sql_*` setting in `rvbbit.toml`.";
    /// A statement has too many or too long `-- @` annotations.
    Q_ANNOTATION_LIMIT = "RVB-Q007", Execution, "SQL annotation limit exceeded",
        "The statement's `-- @` annotation lines (options and text for its semantic function calls) are over a limit: more lines than `rvbbit.max_annotations` (default 64), or one line longer than `rvbbit.max_annotation_bytes` (default 2048). Nothing was planned or asked.",
        ["A generated statement that repeats an annotation for every row or call.",
         "A long document pasted into a `-- @` line as the prompt's text."],
        "Annotate fewer calls or shorten the text (put long context into a table and pass it as an argument), or raise the setting named in the message with `SET rvbbit.max_annotations = n` or `SET rvbbit.max_annotation_bytes = n`.";
    /// A statement's own `WITH (…)` options are refused.
    Q_STATEMENT_OPTION = "RVB-Q008", Execution, "SQL statement option refused",
        "A query ended with a `WITH (key = value, …)` clause of statement options (semantic SQL: `cascade` for a cheap model first, `cheap_threshold`, `batch_size`, `cache`) that could not be used: an unknown option, an option given twice, a clause that is not `key = value` pairs, or a value out of range or longer than 256 bytes. Nothing was planned or asked.",
        ["A typo in an option name (`WITH (casacde = 'm')`).", "`cheap_threshold` outside 0 to 1, `batch_size` outside 1 to 1000, or `cache` that is not true, false or a lifetime such as '1h'."],
        "Use the options and values the message lists (docs/semantic-sql.md, \"Statement options\"), or drop the clause to use the session's `SET rvbbit.…` settings.";
    /// `THEN` pipeline stages in a position where they cannot run.
    Q_STAGE_POSITION = "RVB-Q009", Execution, "Pipeline stage not allowed here",
        "A statement has `THEN …` pipeline stages (semantic SQL) where they cannot run: after the query of a view (a view is read again each time, stages run once), after a statement that makes no table of the stages' result (only a query, `CREATE TABLE name AS` and `INSERT INTO name` do), in a parenthesised subquery under `EXPLAIN` (the subquery's stages would have to run), or in a subquery that names the outer query's columns or the statement's CTEs (a subquery with stages runs on its own, before the statement). Nothing was asked.",
        ["`CREATE VIEW v AS SELECT … THEN FILTER 'x'`.", "`EXPLAIN SELECT * FROM (SELECT … THEN ENRICH 'x') s`.", "`WITH a AS (…) SELECT * FROM (SELECT * FROM a THEN FILTER 'x') s`."],
        "Make a table of the result (`CREATE TABLE t AS SELECT … THEN …`) and use it; EXPLAIN the subquery on its own; or move the stages to the end of the statement.";

    // ---- Configuration (exit 6) ----------------------------------------------------------------------
    /// A config file does not parse.
    C_SYNTAX = "RVB-C001", Configuration, "Config file syntax error",
        "`rvbbit.toml` (or `rvbbit.yaml`) is not valid TOML (or YAML).",
        ["An unquoted string value.", "A missing closing bracket in a table header."],
        "Fix the syntax at the reported line and column.";
    /// Unknown config key.
    C_UNKNOWN_KEY = "RVB-C002", Configuration, "Unknown configuration key",
        "A key in the config file or an `RVBBIT_*` environment variable is not a setting rvbbit knows.",
        ["A typo.", "A setting placed in the wrong table."],
        "Use the suggested key; `rvbbit config show` lists every setting with its source.";
    /// Invalid config value.
    C_INVALID = "RVB-C003", Configuration, "Invalid configuration value",
        "A setting has a value of the wrong type or out of range.",
        ["A number written as text.", "A URL without a scheme."],
        "Write the value in the expected form; the message names it.";
    /// A config file named explicitly is missing.
    C_NOT_FOUND = "RVB-C004", Configuration, "Config file not found",
        "The file passed with `--config` (or `RVBBIT_CONFIG`) does not exist or cannot be read.",
        ["A typo in the path."],
        "Pass an existing file, or omit `--config` to use `rvbbit.toml` in the current directory.";
    /// Bad command-line usage.
    C_USAGE = "RVB-C005", Configuration, "Invalid command line",
        "The command line could not be parsed: an unknown flag, a missing argument or an invalid value.",
        ["A typo in a flag."],
        "Run `rvbbit help <command>` for the accepted flags.";
    /// Bad `--input`.
    C_INPUT = "RVB-C006", Configuration, "Invalid input",
        "The value passed with `--input` is neither a readable JSON file nor valid JSON.",
        ["A JSON object written without quotes around keys.", "An `@file` that does not exist."],
        "Pass a JSON object (`--input '{\"name\": \"x\"}'`) or `@path/to/input.json`.";
    /// An answer to a human-in-the-loop question does not fit the question.
    C_ANSWER = "RVB-C007", Configuration, "Answer does not fit the question",
        "The value given for a waiting human-in-the-loop cell (`--value`, or a terminal answer) is valid JSON but not an answer of the kind the cell asked for.",
        ["A choice that is not one of the cell's `options`.", "Text given to a confirmation (use `true`/`false` or `{\"confirmed\": true}`).",
         "A number where free text was asked."],
        "Answer with the shape the question asks: confirmation `true`/`false` or `{\"confirmed\": bool, \"comment\"?: str}`, choice one of the option values or `{\"selected\": value}`, text a string or `{\"text\": str}`. `rvbbit signal list --session ID` shows the question.";
    /// A remote LLM endpoint needs an API key and none is configured.
    C_NO_API_KEY = "RVB-C009", Configuration, "No API key",
        "An LLM call needed the configured remote provider (OpenRouter by default), but its API key is not set, so the call was not attempted. Nothing was retried: a missing key cannot fix itself.",
        ["`OPENROUTER_API_KEY` (or the variable named by `provider.api_key_env`) is not exported in this shell.",
         "A cascade run on a machine that only has recordings."],
        "Export the key (`export OPENROUTER_API_KEY=...`), or run from a recording with `--replay FILE`, or set `RVBBIT_PROVIDER_BASE_URL` to a local OpenAI-compatible server (loopback servers need no key).";

    /// `rvbbit init` would overwrite files that already exist.
    C_INIT_EXISTS = "RVB-C010", Configuration, "Scaffold would overwrite files",
        "`rvbbit init` writes a starter project (a cascade, a recording of its model calls and `rvbbit.toml`), but some of those files already exist in the target folder, so nothing was written.",
        ["`rvbbit init` run twice in the same folder.", "`rvbbit init` in an existing project that already has an `rvbbit.toml`."],
        "Pass another folder (`rvbbit init my-project`), or `--force` to overwrite the listed files (other files are never touched).";

    /// `rvbbit init` could not write a scaffold file.
    C_INIT_WRITE = "RVB-C011", Configuration, "Scaffold cannot be written",
        "`rvbbit init` could not create the target folder or write one of the scaffold files. Files written before the failure stay.",
        ["The folder is read-only, or belongs to another user.", "A file of the same name as the folder already exists."],
        "Pass a folder you can write to, or fix its permissions, then run `rvbbit init` again (with `--force` if some files were written).";

    // ---- Batches (exit 11 and 12) ---------------------------------------------------------------------
    /// Some inputs of a batch failed.
    B_SOME_FAILED = "RVB-B001", BatchPartial, "Some inputs of the batch failed",
        "`rvbbit batch` ran the batch to its end, and some inputs did not complete: their runs failed, their input could not be read, or the batch's budget stopped them before they started. The others completed, and their outputs are written.",
        ["A cell failed for some inputs (each failed input's error is in the summary and in `error.json` under its output folder).",
         "A malformed JSONL line or CSV row, or an input file that cannot be read.",
         "`--budget-dollars` was reached: the inputs not started are `skipped`."],
        "Read the summary (`--output json` lists each input's status, code and session); fix what failed, then run the same command again: completed inputs come from the result cache at $0 and only the failed ones run.";
    /// Every input of a batch failed.
    B_ALL_FAILED = "RVB-B002", BatchFailed, "Every input of the batch failed",
        "`rvbbit batch` ran the batch to its end, and no input completed.",
        ["A cascade that fails on every input (a missing tool, a provider that refuses every call).", "Inputs that are all malformed."],
        "Run one input with `rvbbit run CASCADE --input ...` to see the error, fix it, and run the batch again.";
    /// A batch has no inputs to run.
    B_NO_INPUTS = "RVB-B003", Configuration, "No inputs to run",
        "`rvbbit batch --inputs` found nothing to run, or more inputs than allowed: a glob that matches no file, an empty JSONL or CSV file, a list file that cannot be read, or more inputs than `batch.max_inputs`.",
        ["A glob quoted wrongly, or relative to another directory.", "A JSONL file with only blank lines.", "More inputs than `batch.max_inputs`."],
        "Check the pattern with `ls`, pass a file with at least one row, or raise `batch.max_inputs` (or split the batch).";
    /// One input of a batch cannot be used.
    B_BAD_INPUT = "RVB-B004", Validation, "An input cannot be used",
        "One input of a batch could not be turned into a cascade input: its file cannot be read or is larger than `batch.max_input_bytes`, its JSONL line is not valid JSON, or its CSV row does not have the header's columns. Only that input fails; the others run.",
        ["A file without read permission.", "A truncated or hand-edited JSONL line.", "A CSV row with a missing or extra field."],
        "Fix the input named in the summary (file and line), then run the same batch command again (completed inputs come from the cache at $0).";
    /// The batch's budget stopped an input from starting.
    B_BUDGET = "RVB-B005", BatchPartial, "Batch budget reached",
        "`--budget-dollars` would have been exceeded by starting this input, so it was not started (`skipped`). A new input starts only when the cost so far, plus the most any input has cost, for each input in flight and the new one, fits the budget; the first input runs alone so that its cost is known.",
        ["A budget smaller than the inputs need.", "Inputs that cost more than the first ones."],
        "Raise `--budget-dollars`, or run the same batch command again later: completed inputs come from the cache at $0 and only the skipped and failed ones run.";
    /// A recorded batch cannot be used as asked.
    B_UNKNOWN = "RVB-B006", Configuration, "Batch not usable",
        "`rvbbit batch status` or `rvbbit batch retry` named a batch the store does not hold, or one that cannot be retried: it is still running (or was killed before it ended), or its record lacks its cascade or inputs.",
        ["A mistyped batch id, or one recorded in another store (`store.url`).", "A batch pruned by `rvbbit db prune`.", "Retrying a batch that has not ended."],
        "List the batches with `rvbbit batch list`; wait for a running batch to end, or start it again with `rvbbit batch CASCADE --inputs …`.";

    // ---- The sandbox of code and shell cells (docs/sandbox.md) -----------------------------------------
    /// The sandbox is required but cannot be used.
    B_SANDBOX_UNAVAILABLE = "RVB-B010", Configuration, "Sandbox unavailable",
        "Code and shell cells run in a sandbox (bubblewrap) for `rvbbit batch`, `rvbbit worker`, and `rvbbit run` when `sandbox.run` is true or `--sandbox` is given. The sandbox was required, but `bwrap` is not installed (or not at `sandbox.bwrap`), or it could not start (the kernel refused the namespaces it needs). Nothing ran unsandboxed.",
        ["The Debian package `bubblewrap` is not installed.", "`sandbox.bwrap` names a path that does not exist.",
         "A container that forbids new namespaces (unprivileged user namespaces turned off, or a seccomp profile that blocks `unshare`)."],
        "Install it (`apt-get install bubblewrap`, or `scripts/test-deps.sh`), or point `sandbox.bwrap` at it; to run without the sandbox on purpose, set `sandbox.batch = false` / `sandbox.worker = false` / `sandbox.run = false`, or pass `--no-sandbox` to `rvbbit batch`.";
    /// A sandbox limit asked for is above its ceiling (or zero).
    B_SANDBOX_CEILING = "RVB-B011", Configuration, "Sandbox limit above its ceiling",
        "A sandbox limit was asked for (a cell's `sandbox:` block, or a `--sandbox-*` flag of `rvbbit batch`) above the ceiling the configuration allows, or as zero. The message names the limit, the value and the setting of its ceiling (`sandbox.max_memory_mib`, `sandbox.max_processes`, `sandbox.max_cpus`, `sandbox.max_wall_seconds`, `sandbox.max_output_kb`).",
        ["A cell asking for `sandbox: {memory_mib: 8192}` on a machine whose `sandbox.max_memory_mib` is 4096.", "A typo that added a digit."],
        "Ask for no more than the ceiling, or raise the ceiling in `rvbbit.toml` (`[sandbox] max_memory_mib = 8192`).";
    /// A sandboxed script ran out of memory.
    B_SANDBOX_MEMORY = "RVB-B012", Tool, "Sandbox memory limit reached",
        "A code or shell cell's process asked for more memory than the sandbox allows (the address-space limit, 512 MiB unless raised): an allocation failed (Python's `MemoryError`, `Cannot allocate memory`) or the process died of SIGSEGV, SIGABRT or SIGKILL. Only that cell (that input of a batch) failed.",
        ["A script that loads a large file into memory at once.", "A runaway allocation (a list that grows forever).",
         "A program that reserves much address space up front (a JVM, some multi-threaded libraries)."],
        "Use less memory, or raise the limit for the cell (`sandbox: {memory_mib: 2048}`) or the batch (`--sandbox-memory-mib 2048`), up to `sandbox.max_memory_mib`.";
    /// A sandboxed script ran longer than its wall-clock limit.
    B_SANDBOX_WALL = "RVB-B013", Tool, "Sandbox time limit reached",
        "A code or shell cell's process ran longer than the sandbox's wall-clock limit (300 s unless raised), so the whole sandbox was killed. Only that cell (that input of a batch) failed.",
        ["An infinite loop.", "A script waiting on input that never comes.", "Work larger than the limit allows."],
        "Make the script finish sooner, or raise the limit for the cell (`sandbox: {wall_seconds: 900}`) or the batch (`--sandbox-wall-seconds 900`), up to `sandbox.max_wall_seconds`.";
    /// A sandboxed script could not start more processes.
    B_SANDBOX_PROCESSES = "RVB-B014", Tool, "Sandbox process limit reached",
        "A code or shell cell's process tried to start more processes (or threads) than the sandbox allows (64 unless raised), and `fork` failed. Only that cell (that input of a batch) failed.",
        ["A fork bomb.", "A script that starts one background job per line of a large file.", "A library that starts many threads."],
        "Start fewer processes, or raise the limit for the cell (`sandbox: {processes: 256}`) or the batch (`--sandbox-processes 256`), up to `sandbox.max_processes`.";
    /// A sandboxed script's output cut off its result.
    B_SANDBOX_OUTPUT = "RVB-B015", Tool, "Sandbox output limit cut the result",
        "The sandbox keeps the first 100 KB (unless raised) of a process's stdout and of its stderr and flags the result `truncated`; a `python_data`/`run_code` cell prints its result after what the code printed, so output past the limit cut the result off.",
        ["Python code that prints a lot before assigning `result`.", "A result larger than the output limit."],
        "Print less, or raise the limit for the cell (`sandbox: {output_kb: 1024}`) or the batch (`--sandbox-output-kb 1024`), up to `sandbox.max_output_kb`.";
    /// An input of a batch on the queue's workers did not end in time.
    B_QUEUE_TIMEOUT = "RVB-B023", BatchPartial, "Queued input not done in time",
        "The batch ran on the queue's workers (`queue.url` is configured), and this input's job did not end within `batch.queue_timeout_seconds` (3600 s unless changed): no worker took it, or its run is still going. Only that input failed; the job may still run later.",
        ["No `rvbbit worker` is running on the queue (`rvbbit queue status` lists them).", "Workers busy with other jobs, or a run longer than the timeout."],
        "Start workers (`rvbbit worker`), or raise `batch.queue_timeout_seconds`; then run the same batch command again (completed inputs come from the cache at $0). `--local` runs a batch in this process instead.";
    /// The queue gave up on an input's job.
    B_QUEUE_DEAD = "RVB-B024", BatchPartial, "Queued input dead-lettered",
        "The batch ran on the queue's workers, and the queue gave up on this input's job after `queue.max_deliveries` deliveries (workers lost or crashing on it), or a worker refused it (an unusable job). The message quotes the reason.",
        ["Workers killed while running it, again and again.", "A job no worker can run (its cascade does not validate there)."],
        "Read the reason (`rvbbit queue dead-letters`), fix it, and run the same batch command again; or run it here with `--local`.";

    // ---- Spending limits (docs/costs.md) ---------------------------------------------------------------
    /// A spending limit refused new work.
    B_SPEND_LIMIT = "RVB-B030", BatchPartial, "Spending limit reached",
        "A spending limit set with `rvbbit costs limit set` (for everything, a caller or a tenant, per UTC day or month) is used up: what was spent since the start of the period (LLM and compute cost, from the recorded events) is at or above the limit, so no new run was started. A batch that reaches a limit mid-way starts no more inputs (they are `skipped` with this code); the inputs already running finish. Runs already going are never stopped.",
        ["A limit smaller than the day's or month's work.", "Another process (a batch, a server, a worker) spent the rest of the period's limit.", "A cascade that costs more than expected (`rvbbit costs by-cascade`)."],
        "See the limits and what each has spent with `rvbbit costs limit list`; raise the limit with `rvbbit costs limit set AMOUNT/PERIOD` (with the same `--caller` or `--tenant`), remove it with `rvbbit costs limit remove`, or wait for the next UTC day or month.";
    /// A spending limit or its arguments cannot be used.
    B_SPEND_LIMIT_USAGE = "RVB-B031", Configuration, "Spending limit not usable",
        "`rvbbit costs limit set` or `rvbbit costs limit remove` was given something that is not a limit: the amount and period must read `AMOUNT/PERIOD` with a dollar amount between 0 and 1,000,000,000 (at most six decimals) and a period of `day` or `month`; a caller or tenant name must be 1 to 128 letters, digits, `_`, `.` or `-`; and `remove` must name a limit that exists.",
        ["`-5/day` (a negative amount), `abc` (no period), `1e99/month` (not a plain decimal, or too large).", "`50/week` (only `day` and `month`).", "Removing a limit with another `--caller`/`--tenant` than it was set with."],
        "Write the limit as `50/month` or `2.5/day` (`rvbbit costs limit set 50/month --tenant acme`); `rvbbit costs limit list` shows the limits that exist.";

    // ---- Scripts run by `rvbbit exec` (docs/exec.md) ---------------------------------------------------
    /// A script run by `rvbbit exec` (the `run_script` tool) exited with a non-zero code.
    B_EXEC_SCRIPT = "RVB-B020", Tool, "The script failed",
        "The script exited with a non-zero code. The message quotes the end of its stderr; with `--batch`, only that input failed and the others ran.",
        ["An exception or error in the script (Python's traceback is in the message).", "A file argument the script cannot parse.", "A module the script imports that is not in its `requirements.txt`."],
        "Read the end of stderr in the message (all of it: `rvbbit sessions show SESSION`), fix the script or its input, and run the same command again: inputs that completed come from the cache at $0.";
    /// The files a script left in its work directory pass `exec.max_output_files` or `exec.max_output_bytes`.
    B_EXEC_FILES = "RVB-B021", Tool, "Too many or too large output files",
        "Every file a script leaves in its work directory is collected as an output, up to `exec.max_output_files` files and `exec.max_output_bytes` bytes in all (1,000 files and 8 MiB unless raised); past either, that run failed and nothing was collected.",
        ["A script that writes large intermediate files in its work directory.", "A script that writes one file per record of a large input."],
        "Write temporary files under `/tmp` (private to the sandbox, not collected), keep only the results in the work directory, or raise `exec.max_output_files` / `exec.max_output_bytes` in rvbbit.toml ([exec]).";
    /// A script's environment could not be prepared: its interpreter is missing or its requirements do not install.
    B_EXEC_SETUP = "RVB-B022", Configuration, "The script's environment cannot be prepared",
        "Before anything runs, `rvbbit exec` finds the script's interpreter and, for a Python script with a `requirements.txt` beside it, installs those requirements into a virtual environment cached by their hash. That failed: the interpreter is not installed, or `pip install -r requirements.txt` failed (the message quotes its output).",
        ["`node` (for a `.js` script) or `python3-venv` is not installed.", "A requirement that does not exist, or an index that cannot be reached (installs run outside the sandbox, with the network).", "`pip` ran longer than `exec.install_timeout_seconds`."],
        "Install the interpreter (`apt-get install nodejs`, `apt-get install python3-venv`), fix `requirements.txt`, or run `pip install -r requirements.txt` yourself to see the whole error; then run the same command again.";

    // ---- Waiting (exit 10) ---------------------------------------------------------------------------
    /// The run waits for a human.
    H_WAITING = "RVB-H001", Waiting, "Waiting for a human answer",
        "The run reached a human-in-the-loop cell (`human_input`, a screen, or the `ask_human` tool), nobody answered in this process, and it stopped with the session `waiting`. Nothing is lost: the completed cells, the state and the cost so far are saved in a checkpoint.",
        ["`rvbbit run` was not attached to a terminal and no answer arrived within `--wait` (or the cell's timeout).", "`--detach` was given."],
        "Answer with `rvbbit signal send SESSION NAME --value JSON` (the message prints the exact command), then continue with `rvbbit resume SESSION`; or run `rvbbit resume SESSION --value JSON` in one step.";
    /// A server would be reachable from other machines without authentication.
    C_UNSAFE_BIND = "RVB-C008", Configuration, "Unauthenticated network bind",
        "`rvbbit serve` was asked to listen on an address other than loopback, but no API key exists. Anyone who can reach the port could then read every session and spend money on runs.",
        ["`--host 0.0.0.0` (or a LAN address) on a machine where `rvbbit keys create` was never run.",
         "Every API key was revoked."],
        "Create a key with `rvbbit keys create --name NAME` and give it to the clients (`Authorization: Bearer KEY`), or bind to `127.0.0.1` (the default).";

    // ---- HTTP API (answered to clients; exit 6 when the CLI reports one) -----------------------------
    /// The HTTP request is malformed.
    A_BAD_REQUEST = "RVB-A001", Configuration, "Bad request",
        "The HTTP API could not use the request: its JSON body does not parse, a field has the wrong type, or a query parameter is invalid.",
        ["A body that is not JSON, or JSON without the required fields.", "A query parameter such as `limit=abc`.",
         "A `Content-Type` other than `application/json` on a JSON endpoint."],
        "Read the `message` of the error; the OpenAPI document at `/api/v1/openapi.json` gives every endpoint's shape.";
    /// The request needs an API key.
    A_UNAUTHORIZED = "RVB-A002", Configuration, "API key required",
        "The server listens beyond loopback, so every API request needs a valid API key, and this one had none, an unknown one, or a revoked one.",
        ["No `Authorization: Bearer KEY` (or `X-API-Key: KEY`) header.", "A key that was revoked with `rvbbit keys revoke`.",
         "A key created for another store."],
        "Send `Authorization: Bearer KEY` with a key from `rvbbit keys create` (it is shown once, when created).";
    /// The thing asked for does not exist.
    A_NOT_FOUND = "RVB-A003", Configuration, "Not found",
        "The route, session or cascade asked for does not exist.",
        ["A mistyped session id or cascade path.", "A session recorded in another store.", "A route that is not part of `/api/v1`."],
        "List what exists (`GET /api/v1/sessions`, `GET /api/v1/cascades`); the OpenAPI document lists the routes.";
    /// A path points outside the configured roots.
    A_PATH_REFUSED = "RVB-A004", Configuration, "Path outside the allowed roots",
        "A file path in the request is refused (HTTP 400): it is absolute, contains `..`, a backslash, a control character or a `%` left after URL decoding, is over 1024 bytes, or resolves outside every configured cascade root through a symbolic link. The server only reads files under its roots.",
        ["A path starting with `/` or containing `..` (also URL-encoded, `%2e%2e`, or double-encoded, `%252e%252e`).",
         "A Windows-style path with backslashes.", "A symbolic link inside a root that points outside it."],
        "Name cascades by their path relative to a root, as `GET /api/v1/cascades` lists them; add roots with the `roots` setting.";
    /// The request body is too large.
    A_TOO_LARGE = "RVB-A005", Configuration, "Request too large",
        "The request body is larger than the server accepts.",
        ["A cascade or input of several megabytes posted to the API."],
        "Keep bodies under the limit (8 MiB); put large data in files the cascade reads.";
    /// The request's Host header names neither loopback nor a configured name.
    A_HOST = "RVB-A006", Configuration, "Host not allowed",
        "A server listening without API keys answers only requests whose `Host` header is a loopback name (`localhost`, `127.0.0.1`, `[::1]`) or a name in `server.allowed_hosts`. A web page on another site could otherwise reach it through DNS rebinding.",
        ["A browser opened the server through a custom host name.", "A reverse proxy that passes its own host name."],
        "Open the server as `http://127.0.0.1:PORT`, add the name to `server.allowed_hosts`, or require API keys.";
    /// A session's cascade cannot be run again from the Studio.
    A_RERUN = "RVB-A007", Configuration, "Session cannot be re-run",
        "The Studio's Re-run runs the cascade text recorded on a session again, with the same input, as a new session (HTTP 409 when it cannot). This session recorded no cascade text, or that text no longer validates (a tool or sub-cascade it uses is gone, or the server's roots changed).",
        ["A session recorded by an older rvbbit, or by a door that does not keep the cascade text.",
         "A sub-cascade or tool file the cascade names was moved or deleted since the run."],
        "Run the cascade from its page under Cascades (or `rvbbit run FILE --input JSON`); the message names the first validation error when there is one.";

    // ---- Agents (conversations; answered to clients over HTTP, exit 6 when the CLI reports one) ------
    /// No agent has that name.
    G_UNKNOWN_AGENT = "RVB-G001", Configuration, "Unknown agent",
        "A message or conversation request named an agent that is not defined. Agents are `agents/NAME.yaml` files in the served directory (HTTP 404).",
        ["A typo in the agent name of the URL.", "The agent file is in another directory than the one `rvbbit serve` serves.",
         "The agent file does not parse or its cascade does not validate (the server logs why when it starts)."],
        "List the agents in `agents/` of the served directory; see docs/agents.md for the file's shape.";
    /// A message is larger than the agents accept.
    G_MESSAGE_TOO_LARGE = "RVB-G002", Configuration, "Message too large",
        "A message text (or its attachments) is larger than the agent's `limits.max_message_bytes` (default 16384 bytes); it is refused before it reaches the conversation (HTTP 413).",
        ["A whole document pasted into a chat message.", "Attachments sent inline instead of by reference."],
        "Send shorter messages, pass large content by reference (an attachment URL), or raise `limits.max_message_bytes` of the agent.";
    /// A conversation field is missing, too long or malformed.
    G_BAD_FIELD = "RVB-G003", Configuration, "Bad conversation field",
        "The tenant, agent, interlocutor or channel of a message is empty, longer than 256 bytes, or contains a control character; or there are more attachments than the agent's `limits.max_attachments` (default 8). These make up the conversation key `tenant:agent:interlocutor:channel` (HTTP 400).",
        ["An empty `interlocutor`.", "A channel name with a newline.", "Dozens of attachments on one message."],
        "Send a short printable `interlocutor` and `channel` (such as `web`, `sms`, `whatsapp`, `email`, `voice`), and at most the allowed attachments.";
    /// A conversation has too many messages waiting.
    G_BUSY = "RVB-G004", Configuration, "Conversation busy",
        "A conversation already holds the agent's `limits.max_pending_messages` (default 64) messages not yet answered; the newest is refused instead of growing the queue without bound (HTTP 429).",
        ["A client retrying in a loop without an `Idempotency-Key`.", "A model so slow that messages pile up behind one turn."],
        "Wait for the pending turns to finish and send again; raise `limits.max_pending_messages` of the agent if the traffic is real.";
    /// An agent definition is invalid.
    G_BAD_DEFINITION = "RVB-G005", Configuration, "Invalid agent definition",
        "An agent file (`agents/NAME.yaml`) does not parse, has an unknown key, a window setting out of range, an unknown tool policy, or names a cascade that does not load and validate.",
        ["A `cascade:` path that does not exist relative to the agent file.", "A tool policy other than `pure`, `idempotent`, `compensatable` or `irreversible`.",
         "`min_ms` above `max_ms` in the window settings."],
        "Fix the file; the message names the key and the allowed values. docs/agents.md has a complete example.";
    /// The agents are shutting down.
    G_UNAVAILABLE = "RVB-G006", Configuration, "Agents shutting down",
        "The message arrived while the server was stopping its conversations; it was not accepted (HTTP 503).",
        ["A message sent during a restart or deploy."],
        "Send it again once the server is back (with the same `Idempotency-Key`).";

    // ---- Channels (Slack, Mattermost, webhooks, chat control; exit 6 when the CLI reports one) ------
    /// A `[channels.NAME]` integration is misconfigured.
    K_CONFIG = "RVB-K001", Configuration, "Channel integration misconfigured",
        "A `[channels.NAME]` table of rvbbit.toml lacks a key its kind needs (Slack: `signing_secret`, `token`, `outbound_url`; Mattermost: `token`, `outbound_url`; webhook: `secret`, `outbound_url`; web: `agent`), has an empty secret, a bad URL, a rate of 0, neither an `agent` nor `control = true`, a web setting out of range (`max_message_bytes` above 65536, `max_streams` of 0, an `allowed_origins` entry that is not an origin), an allowlist entry `@NAME` naming no group of `groups` (or more than 100 groups, or a group of more than 1000 members), a `status_interval_seconds` above 3600, or a Mattermost integration with both or neither of `outbound_url` and `api_url` + `bot_token`. There are no default secrets.",
        ["A new integration copied without its secret.", "A secret meant to come from the environment that is not set.", "`outbound_url` without `http://` or `https://`."],
        "Add the key the message names to `[channels.NAME]` (docs/channels.md lists every key per kind), and check with `rvbbit config show` (secrets are masked).";
    /// An inbound request's signature, token or timestamp did not verify.
    K_UNVERIFIED = "RVB-K002", Configuration, "Inbound request not verified",
        "A request to `POST /hooks/{kind}/{integration}` did not prove it came from the platform (HTTP 401): the Slack signature (`X-Slack-Signature` over `v0:{timestamp}:{body}`) or the webhook's `X-Rvbbit-Signature` did not match, the timestamp was more than 5 minutes away from the server's clock, or the Mattermost `token` field was wrong. Nothing ran.",
        ["The signing secret or token in rvbbit.toml is not the one the platform shows.", "A proxy that rewrites the body (the signature covers the exact bytes).", "A server clock far off (check NTP)."],
        "Copy the secret again from the platform's app settings into `[channels.NAME]`, keep the body unchanged on the way, and keep the clock in sync.";
    /// No integration has that name and kind.
    K_UNKNOWN = "RVB-K003", Configuration, "Unknown integration",
        "`POST /hooks/{kind}/{integration}` (or `/chat/{integration}`) named an integration that is not configured, or one configured with another kind (HTTP 404).",
        ["A typo in the URL given to the platform.", "`kind = \"slack\"` in rvbbit.toml while the URL says `/hooks/mattermost/...`.", "A server started without the rvbbit.toml that defines the integration."],
        "Use `/hooks/KIND/NAME` with the name and kind of a `[channels.NAME]` table; `rvbbit config show` lists them.";
    /// The inbound body is not what the platform sends.
    K_BAD_REQUEST = "RVB-K004", Configuration, "Bad inbound request",
        "The body of a verified inbound request could not be read as the platform's payload (HTTP 400): not JSON or form data, or without the user and text fields.",
        ["A Slack event type that carries no message.", "A hand-made request missing `user` or `text`."],
        "Send the platform's own payload; for the generic webhook, a JSON object with `user`, `text` and optionally `channel_id` (docs/channels.md).";
    /// A chat command was refused by argument validation.
    K_REFUSED = "RVB-K005", Configuration, "Chat command refused",
        "A chat command (`!run`, `!status`, ...) was refused before anything ran: an unknown command, a cascade name outside `[A-Za-z0-9_./-]`, with `..`, starting with `/` or outside the cascade roots, a JSON input that is not an object or is over 64 KiB, or a control character in the message.",
        ["`!run ../../etc/passwd` or a name with `;`.", "A JSON input pasted with a trailing comma.", "A 1 MB input (pass large data by reference)."],
        "Read the reply: it names the rule. `!help` lists the commands and `!list` the cascades `!run` accepts.";
    /// The user may not run that chat command.
    K_DENIED = "RVB-K006", Configuration, "Chat command denied",
        "The user is not in the integration's `allow_users` (or `command_users.COMMAND`) list, so the command was not run. The attempt is recorded as a `command.denied` event.",
        ["A new team member not yet added to the allowlist.", "A Slack user id (`U…`) expected where a user name was listed (or the reverse)."],
        "Add the user's id or name to `allow_users` (or `command_users.COMMAND`) of `[channels.NAME]` and restart `rvbbit serve`.";
    /// The user sent commands faster than the integration allows.
    K_RATE_LIMITED = "RVB-K007", Configuration, "Chat command rate limit",
        "The user's commands on this integration went past `rate_per_minute` (30 unless set) with bursts of at most `burst` (5 unless set); the command was not run and the reply says when to try again.",
        ["A script or a copy-paste of many commands.", "Several people sharing one user id."],
        "Wait the few seconds the reply names, or raise `rate_per_minute` / `burst` of `[channels.NAME]`.";
    /// The integration's circuit breaker is open.
    K_PAUSED = "RVB-K008", Configuration, "Chat execution paused",
        "Five `!run` executions in a row failed on this integration, so its circuit breaker opened: for 60 seconds commands that execute are answered \"paused\" without running. Then one trial run is let through; its success closes the breaker.",
        ["A cascade that fails on every input.", "A provider or store outage behind every run."],
        "Look at the failed sessions (`rvbbit sessions list --status failed`), fix the cause, and try again after the pause.";
    /// A web chat integration has as many live reply streams open as it allows.
    K_STREAMS_FULL = "RVB-K009", Configuration, "Web chat streams full",
        "`GET /chat/{integration}/events` was refused (HTTP 503) because the integration already has `max_streams` reply streams open (256 unless set). Nothing else is affected: the server goes on serving, and open streams keep their replies.",
        ["More visitors at once than the setting allows.", "A client that opens streams and never closes them."],
        "Retry in a moment (the page does so by itself), or raise `max_streams` of `[channels.NAME]` (at most 65536).";
    /// A web chat message is larger than the integration allows.
    K_MESSAGE_TOO_LARGE = "RVB-K010", Configuration, "Web chat message too large",
        "A `POST /chat/{integration}/messages` body was larger than the integration's `max_message_bytes` (8192 unless set, at most 65536); it was refused with HTTP 413 before it was read, and nothing ran.",
        ["A visitor pasted a long document.", "A script posting large payloads to the chat."],
        "Send a shorter message, or raise `max_message_bytes` of `[channels.NAME]` (at most 65536).";
}

/// Look a code up by its text (case-insensitive, with or without the `RVB-` prefix).
pub fn lookup(code: &str) -> Option<&'static ErrorCode> {
    let wanted = code.trim().to_ascii_uppercase();
    let wanted = wanted.strip_prefix("RVB-").unwrap_or(&wanted).to_owned();
    ALL.iter()
        .copied()
        .find(|c| c.code.strip_prefix("RVB-") == Some(wanted.as_str()))
}

/// Render `docs/exit-codes.md` from the table.
pub fn render_exit_code_doc() -> String {
    let mut out = String::from(
        "# Exit codes\n\nEvery `rvbbit` command exits with one of these codes. Each error code (`RVB-…`) belongs to \
         exactly one class; its page under `docs/errors/` says what happened and how to fix it.\n\n\
         | exit | class | meaning |\n|---|---|---|\n",
    );
    for class in ExitClass::ALL {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            class.exit_code(),
            class_name(class),
            class.meaning()
        ));
    }
    out.push_str("\n## Error codes\n\n| code | exit | title |\n|---|---|---|\n");
    for code in ALL {
        out.push_str(&format!(
            "| [{}](errors/{}.md) | {} | {} |\n",
            code.code,
            code.code,
            code.exit_code(),
            code.title
        ));
    }
    out.push_str("\n<!-- Generated from crates/core/src/codes.rs; edit the table, not this file. -->\n");
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        for code in ALL {
            assert!(seen.insert(code.code), "duplicate code {}", code.code);
            assert!(
                code.code.starts_with("RVB-") && code.code.len() == 8,
                "{}",
                code.code
            );
            assert!(!code.causes.is_empty(), "{} has no causes", code.code);
            let letter = code.code.as_bytes()[4];
            let expected = match letter {
                b'V' => ExitClass::Validation,
                // An interruption is not a failure: its own class (exit 130; 143 after SIGTERM).
                b'E' if code.code == "RVB-E013" => ExitClass::Interrupted,
                b'E' | b'I' => ExitClass::Execution,
                b'T' => ExitClass::Tool,
                b'L' => ExitClass::Llm,
                b'S' => ExitClass::Storage,
                // Agents (G): refused messages and definitions are usage errors, like the HTTP API's.
                b'C' | b'A' | b'G' => ExitClass::Configuration,
                // Channels (K): refused, denied and unverified inbound requests are usage errors.
                b'K' => ExitClass::Configuration,
                b'H' => ExitClass::Waiting,
                b'Q' => ExitClass::Execution,
                // A batch's own ends have their own classes (exit 11 and 12); its refusals and bad
                // inputs are configuration and validation errors like any other.
                b'B' => match code.code {
                    "RVB-B002" => ExitClass::BatchFailed,
                    "RVB-B003" | "RVB-B006" => ExitClass::Configuration,
                    "RVB-B004" => ExitClass::Validation,
                    // The sandbox: unavailable or a limit above its ceiling is configuration; a limit
                    // reached fails the tool.
                    "RVB-B010" | "RVB-B011" => ExitClass::Configuration,
                    "RVB-B012" | "RVB-B013" | "RVB-B014" | "RVB-B015" | "RVB-B020" | "RVB-B021" => {
                        ExitClass::Tool
                    }
                    "RVB-B022" => ExitClass::Configuration,
                    // A spending limit reached stops new work as a budget does; a bad limit is usage.
                    "RVB-B031" => ExitClass::Configuration,
                    _ => ExitClass::BatchPartial,
                },
                _ => panic!("unknown prefix in {}", code.code),
            };
            assert_eq!(code.class, expected, "{} has the wrong class", code.code);
        }
    }

    #[test]
    fn lookup_is_forgiving() {
        assert_eq!(lookup("rvb-v004"), Some(V_UNKNOWN_KEY));
        assert_eq!(lookup("V004"), Some(V_UNKNOWN_KEY));
        assert_eq!(lookup("nope"), None);
    }

    #[test]
    fn exit_codes_match_the_documented_table() {
        let pairs: Vec<u8> = ExitClass::ALL.iter().map(|c| c.exit_code()).collect();
        assert_eq!(pairs, [0, 1, 2, 3, 4, 5, 6, 10, 11, 12, 130, 143]);
    }
}
