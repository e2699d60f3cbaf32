// rvbbit Studio: live updates of a running session over Server-Sent Events. No framework, no build step.
"use strict";
(function () {
  var facts = document.getElementById("facts");
  if (!facts || facts.dataset.active !== "true") return;
  var id = facts.dataset.session;
  var cursor = facts.dataset.cursor || "0";
  var live = document.getElementById("live");
  var title = document.querySelector(".live-title");
  var source = new EventSource("/api/v1/sessions/" + encodeURIComponent(id) + "/events?cursor=" + encodeURIComponent(cursor));
  // The heading shows with the first live row, so a waiting session has no empty "Live" section.
  function row(text, cls) {
    if (title) title.hidden = false;
    var li = document.createElement("li");
    if (cls) li.className = cls;
    li.textContent = text;
    live.appendChild(li);
  }
  source.onmessage = function () {};
  source.addEventListener("complete", function (e) {
    source.close();
    var status = document.getElementById("status");
    try {
      var data = JSON.parse(e.data);
      if (status) { status.textContent = data.status; status.className = "badge " + data.status; }
    } catch (err) { /* ignore */ }
    row("finished: reloading the full view", "done");
    window.setTimeout(function () { window.location.reload(); }, 300);
  });
  // A run that starts waiting for a human: reload, so the page shows the question and its buttons.
  source.addEventListener("checkpoint_created", function () {
    source.close();
    row("waiting for a human: reloading to show the question", "checkpoint_created");
    window.setTimeout(function () { window.location.reload(); }, 400);
  });
  // Every event kind is a named SSE event; listen to the ones a person wants to see as they happen.
  ["cascade_start", "cell_start", "cell_complete", "cell_error", "llm_response", "llm_error", "tool_call",
   "tool_result", "validation", "ward", "retry", "candidate_start", "candidate_complete", "evaluation",
   "child_start", "cascade_complete", "cascade_error", "cascade_cancelled", "checkpoint_resolved"].forEach(function (kind) {
    source.addEventListener(kind, function (e) {
      var ev;
      try { ev = JSON.parse(e.data); } catch (err) { return; }
      var text = kind + (ev.cell_name ? " · " + ev.cell_name : "");
      if (ev.model) text += " · " + ev.model;
      if (ev.duration_us) text += " · " + (ev.duration_us / 1000).toFixed(0) + " ms";
      row(text, kind);
    });
  });
  source.onerror = function () { /* EventSource reconnects by itself with Last-Event-ID */ };
})();
// SQL console: Ctrl+Enter (or Cmd+Enter) runs the statement.
(function () {
  var query = document.getElementById("query");
  var form = document.getElementById("sql-form");
  if (!query || !form) return;
  query.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); form.submit(); }
  });
})();
