// The console's live parts, without a build step: the template preview follows the editor,
// the incident list refreshes itself. Pages work without this script, only less live.
"use strict";

// ``fn`` after ``ms`` of quiet; ``.now()`` runs it at once and drops the pending call.
function debounce(fn, ms) {
  let timer = null;
  const later = (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
  later.now = (...args) => { clearTimeout(timer); fn(...args); };
  return later;
}

// One live pane: POST the editor's form to ``url`` and show the answer in ``target``; a
// newer edit aborts the request still running.
function livePane(form, url, target) {
  let running = null;
  return async () => {
    if (!target || !url) return;
    if (running) running.abort();
    running = new AbortController();
    target.dataset.state = "busy";
    try {
      const reply = await fetch(url, { method: "POST", body: new FormData(form),
        signal: running.signal, credentials: "same-origin" });
      target.innerHTML = await reply.text();
      target.dataset.state = reply.ok ? "ready" : "failed";
    } catch (err) {
      if (err.name !== "AbortError") target.dataset.state = "failed";
    }
  };
}

function livePreview(form) {
  // The preview answers in milliseconds; lint renders every status, channel and locale,
  // so it has its own request and never holds the preview up.
  const panes = [
    livePane(form, form.dataset.preview, document.getElementById("preview")),
    livePane(form, form.dataset.lint, document.getElementById("lint")),
  ];
  const refresh = () => panes.forEach((pane) => pane());
  // A <select> fires "input" and "change" together: the change refreshes at once and
  // drops the pending typed refresh, so the pane is not replaced a second time 250 ms later.
  const typed = debounce(refresh, 250);
  form.addEventListener("input", typed);
  form.addEventListener("change", () => typed.now());
  refresh();
}

function liveRows(table) {
  const every = Number(table.dataset.refresh || "15") * 1000;
  setInterval(async () => {
    if (document.hidden) return;
    const reply = await fetch(table.dataset.rows, { credentials: "same-origin" });
    if (reply.ok) table.tBodies[0].outerHTML = await reply.text();
  }, every);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("form[data-preview]").forEach(livePreview);
  document.querySelectorAll("table[data-rows]").forEach(liveRows);
});
