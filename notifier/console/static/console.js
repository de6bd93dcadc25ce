// The console's live parts, without a build step: the template preview follows the editor,
// the incident list refreshes itself. Pages work without this script, only less live.
"use strict";

function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

function livePreview(form) {
  const target = document.getElementById("preview");
  if (!target) return;
  let running = null;
  const refresh = async () => {
    if (running) running.abort();
    running = new AbortController();
    const body = new FormData(form);
    try {
      const reply = await fetch(form.dataset.preview, { method: "POST", body, signal: running.signal,
        credentials: "same-origin" });
      target.innerHTML = await reply.text();
      target.dataset.state = reply.ok ? "ready" : "failed";
    } catch (err) {
      if (err.name !== "AbortError") target.dataset.state = "failed";
    }
  };
  form.addEventListener("input", debounce(refresh, 250));
  form.addEventListener("change", refresh);
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
