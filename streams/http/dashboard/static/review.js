// callguard review queue: list the watches in force, confirm or dismiss each with a reason.
// Every value from the server goes into the page as text (textContent), never as HTML.
"use strict";

const REFRESH_EVERY_MS = 15000;

function showError(text) {
  const node = document.getElementById("queue-error");
  node.textContent = text || "";
  node.hidden = !text;
}

function row(flag) {
  const reason = el("input", { type: "text", placeholder: "why (recorded)", required: true });
  const status = el("span", { class: "muted" });
  const act = (kind) => async () => {
    if (!reason.value.trim()) { status.textContent = "a reason is required"; return; }
    try {
      const done = await postJSON(`/api/review/${kind}`, { number: flag.number, reason: reason.value });
      status.textContent = `${kind} sent as ${done.actor}`;
      line.dataset.done = kind;
      for (const button of line.querySelectorAll("button")) button.disabled = true;
    } catch (error) {
      status.textContent = error.message;
    }
  };
  const line = el("tr", { "data-number": flag.number },
    el("td", {}, flag.number), el("td", {}, flag.category),
    el("td", {}, typeof flag.score === "number" ? flag.score.toFixed(3) : ""),
    el("td", {}, when(flag.flagged_at)), el("td", {}, (flag.reasons || []).join("; ")),
    el("td", {}, reason),
    el("td", {},
      el("button", { type: "button", class: "confirm", onclick: act("confirm") }, "Confirm"),
      el("button", { type: "button", class: "dismiss", onclick: act("dismiss") }, "Dismiss"),
      status));
  return line;
}

async function load() {
  try {
    const answer = await getJSON("/api/review");
    document.getElementById("as-of").textContent = when(answer.as_of);
    document.getElementById("queue-count").textContent = `(${answer.queue.length})`;
    const rows = document.getElementById("queue-rows");
    const pending = new Map([...rows.children].filter((line) => !line.dataset.done
      && line.querySelector("input").value).map((line) => [line.dataset.number, line]));
    rows.replaceChildren(...answer.queue.map((flag) => pending.get(flag.number) || row(flag)));
    document.getElementById("queue-empty").hidden = answer.queue.length > 0;
    showError("");
  } catch (error) {
    showError(error.message);
  }
  document.body.dataset.ready = "true";
}

load();
setInterval(load, REFRESH_EVERY_MS);
