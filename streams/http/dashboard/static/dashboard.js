// callguard operations dashboard: vanilla JS, charts drawn as inline SVG.
// Every value from the server goes into the page as text (textContent), never as HTML.
"use strict";

const COLOURS = {
  finance_marketing: "#d1495b", debt_collection: "#8f2d56", real_estate: "#edae49",
  other_marketing: "#00798c", one_ring: "#30638e", fraud: "#003d5b", normal: "#98a2b3",
};
const ACTION_COLOURS = { block: "#c0392b", watch: "#d68910", clear: "#1e8449" };
const SVG = "http://www.w3.org/2000/svg";
const HEALTH_EVERY_MS = 5000;
const DATA_EVERY_MS = 30000;

const state = { action: "", category: "", number: null, rates: [] };

// ---- small helpers ---------------------------------------------------------

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

const score = (value) => (typeof value === "number" ? value.toFixed(3) : "");
const badge = (action) => el("span", { class: `badge ${action}` }, action);
const numberText = (n) => new Intl.NumberFormat("en").format(n);

function setFigure(id, value, text) {
  const node = document.getElementById(id);
  node.dataset.value = String(value);
  node.textContent = text ?? String(value);
}

function replaceRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}

// Viewers get numbers masked by the server (+86 138****8000): nothing to open.
const masked = (number) => number.includes("*");

function lookupRow(number, cells) {
  const row = el("tr", { class: masked(number) ? "" : "clickable", "data-number": number }, ...cells);
  if (!masked(number)) row.addEventListener("click", () => openNumber(number));
  return row;
}

// ---- charts ----------------------------------------------------------------

function stackedBars(target, buckets, hours, asOf) {
  // One bar per hour, stacked by category; block and watch decisions only.
  const width = 960, height = 220, left = 40, bottom = 24, top = 8;
  const end = Date.parse(asOf);
  const start = Math.floor((end - hours * 3600e3) / 3600e3) * 3600e3;
  const slots = Math.floor((end - start) / 3600e3) + 1;  // the hour of `end` included
  const perHour = new Map();
  for (const bucket of buckets) {
    if (bucket.action === "clear") continue;
    const slot = Math.floor((Date.parse(bucket.hour) - start) / 3600e3);
    if (slot < 0 || slot >= slots) continue;
    const stack = perHour.get(slot) || {};
    stack[bucket.category] = (stack[bucket.category] || 0) + bucket.decisions;
    perHour.set(slot, stack);
  }
  const totals = [...perHour.values()].map((s) => Object.values(s).reduce((a, b) => a + b, 0));
  const peak = Math.max(1, ...totals);
  const plotH = height - bottom - top, barW = (width - left) / slots;
  const y = (v) => top + plotH - (v / peak) * plotH;
  const nodes = [];
  for (const tick of [0, 0.5, 1]) {
    const value = Math.round(peak * tick);
    nodes.push(svg("line", { class: "gridline", x1: left, x2: width, y1: y(value), y2: y(value) }));
    nodes.push(svg("text", { x: left - 4, y: y(value) + 4, "text-anchor": "end" }, value));
  }
  const categories = Object.keys(COLOURS);
  for (const [slot, stack] of perHour) {
    let base = 0;
    for (const category of categories) {
      const value = stack[category];
      if (!value) continue;
      const rect = svg("rect", {
        x: left + slot * barW + 1, width: Math.max(1, barW - 2),
        y: y(base + value), height: y(base) - y(base + value), fill: COLOURS[category],
        "data-category": category,
      });
      const hour = new Date(start + slot * 3600e3).toISOString();
      rect.append(svg("title", {}, `${when(hour)} · ${category}: ${value}`));
      nodes.push(rect);
      base += value;
    }
  }
  const step = Math.max(1, Math.round(slots / 8));
  for (let slot = 0; slot < slots; slot += step) {
    const label = new Date(start + slot * 3600e3).toISOString().slice(5, 13).replace("T", " ") + "h";
    nodes.push(svg("text", { x: left + slot * barW, y: height - 6 }, label));
  }
  if (!buckets.length) nodes.push(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, "no decisions yet"));
  target.replaceChildren(...nodes);
  target.dataset.total = String(totals.reduce((a, b) => a + b, 0));
}

function categoryBars(target, counts) {
  // Horizontal bars per category, block then watch.
  const perCategory = new Map();
  for (const row of counts) {
    const entry = perCategory.get(row.category) || { block: 0, watch: 0 };
    entry[row.action] += row.numbers;
    perCategory.set(row.category, entry);
  }
  const rows = [...perCategory].sort((a, b) => (b[1].block + b[1].watch) - (a[1].block + a[1].watch));
  const width = 460, left = 120, rowH = 24;
  const peak = Math.max(1, ...rows.map(([, e]) => e.block + e.watch));
  const scale = (v) => (v / peak) * (width - left - 50);
  const nodes = [];
  rows.forEach(([category, entry], index) => {
    const y = 6 + index * rowH;
    nodes.push(svg("text", { x: left - 6, y: y + 14, "text-anchor": "end" }, category));
    let x = left;
    for (const action of ["block", "watch"]) {
      if (!entry[action]) continue;
      const rect = svg("rect", { x, y, width: scale(entry[action]), height: rowH - 6, fill: ACTION_COLOURS[action] });
      rect.append(svg("title", {}, `${category} · ${action}: ${entry[action]}`));
      nodes.push(rect);
      x += scale(entry[action]);
    }
    nodes.push(svg("text", { x: x + 4, y: y + 14 }, entry.block + entry.watch));
  });
  if (!rows.length) nodes.push(svg("text", { x: width / 2, y: 40, "text-anchor": "middle" }, "nothing flagged"));
  target.setAttribute("viewBox", `0 0 ${width} ${Math.max(60, rows.length * rowH + 12)}`);
  target.replaceChildren(...nodes);
}

function sparkline(target, values) {
  const width = 120, height = 28;
  if (values.length < 2) { target.replaceChildren(); return; }
  const peak = Math.max(1, ...values);
  const points = values.map((v, i) => `${(i / (values.length - 1)) * width},${height - 2 - (v / peak) * (height - 4)}`);
  target.replaceChildren(svg("polyline", { points: points.join(" "), fill: "none", stroke: "#1f5fa8", "stroke-width": 1.5 }));
}

function scoreChart(target, history) {
  // The number's decisions in time order: score as a line, each decision a dot in its action's colour.
  const width = 480, height = 120, left = 34, pad = 10;
  const rows = [...history].reverse();
  if (!rows.length) { target.replaceChildren(svg("text", { x: 10, y: 60 }, "no decisions")); return; }
  const times = rows.map((r) => Date.parse(r.flagged_at));
  const first = Math.min(...times), span = Math.max(1, Math.max(...times) - first);
  const x = (t) => left + ((t - first) / span) * (width - left - pad);
  const y = (s) => pad + (1 - s) * (height - 2 * pad - 12);
  const nodes = [0, 0.5, 1].flatMap((s) => [
    svg("line", { class: "gridline", x1: left, x2: width - pad, y1: y(s), y2: y(s) }),
    svg("text", { x: left - 4, y: y(s) + 4, "text-anchor": "end" }, s.toFixed(1)),
  ]);
  nodes.push(svg("polyline", {
    points: rows.map((r, i) => `${x(times[i])},${y(r.score)}`).join(" "), fill: "none", stroke: "#98a2b3",
  }));
  rows.forEach((r, i) => {
    const dot = svg("circle", { cx: x(times[i]), cy: y(r.score), r: 4, fill: ACTION_COLOURS[r.action] || "#667085" });
    dot.append(svg("title", {}, `${when(r.flagged_at)} ${r.action} ${r.category} ${score(r.score)}`));
    nodes.push(dot);
  });
  nodes.push(svg("text", { x: left, y: height - 2 }, when(rows[0].flagged_at)));
  nodes.push(svg("text", { x: width - pad, y: height - 2, "text-anchor": "end" }, when(rows.at(-1).flagged_at)));
  target.replaceChildren(...nodes);
}

function legend() {
  const items = Object.entries(COLOURS).filter(([c]) => c !== "normal")
    .map(([category, colour]) => el("span", {}, el("i", { style: `background:${colour}` }), category));
  document.getElementById("legend").replaceChildren(...items);
  const select = document.getElementById("filter-category");
  for (const category of Object.keys(COLOURS)) {
    if (category !== "normal") select.append(el("option", { value: category }, category));
  }
}

// ---- panels ----------------------------------------------------------------

function showAsOf(body) {
  document.getElementById("as-of").textContent = when(body.as_of) + " UTC";
  document.getElementById("as-of").dataset.value = body.as_of;
}

async function loadFlags() {
  const query = new URLSearchParams({ limit: "500" });
  if (state.action) query.set("action", state.action);
  if (state.category) query.set("category", state.category);
  const body = await getJSON(`/api/flags?${query}`);
  showAsOf(body);
  const total = (action) => body.counts.filter((c) => c.action === action).reduce((a, c) => a + c.numbers, 0);
  setFigure("kpi-block", total("block"), numberText(total("block")));
  setFigure("kpi-watch", total("watch"), numberText(total("watch")));
  categoryBars(document.getElementById("category-chart"), body.counts);
  replaceRows(document.querySelector("#flags-table tbody"), body.flags.map((f) => lookupRow(f.number, [
    el("td", {}, f.number), el("td", {}, badge(f.action)), el("td", {}, f.category),
    el("td", { class: "num" }, score(f.score)), el("td", {}, when(f.flagged_at)), el("td", {}, when(f.expires_at)),
  ])));
  document.getElementById("flags-count").textContent = `${body.flags.length} shown`;
}

async function loadTimeline() {
  const body = await getJSON("/api/timeline?hours=24");
  stackedBars(document.getElementById("timeline-chart"), body.buckets, body.hours, body.as_of);
}

async function loadOffenders() {
  const body = await getJSON("/api/offenders?limit=10");
  replaceRows(document.querySelector("#offenders-table tbody"), body.offenders.map((o) => lookupRow(o.number, [
    el("td", {}, o.number), el("td", {}, o.category), el("td", {}, badge(o.action)),
    el("td", { class: "num" }, o.decisions), el("td", { class: "num" }, score(o.top_score)),
    el("td", {}, when(o.first_flagged)),
  ])));
}

async function loadClusters() {
  const body = await getJSON("/api/clusters");
  const items = body.clusters.slice(0, 12).map((c) => el("li", { "data-kind": c.kind },
    el("div", {}, el("b", {}, `${c.size} numbers`), ` · ${c.category} · `,
      c.kind === "segment" ? `segment ${c.key}` : "started together",
      el("span", { class: "muted" }, ` · ${when(c.first_flagged)} – ${when(c.last_flagged)}`)),
    el("div", { class: "numbers" }, c.numbers.slice(0, 12).join("  ") + (c.size > 12 ? " …" : ""))));
  document.getElementById("clusters").replaceChildren(
    ...(items.length ? items : [el("li", { class: "muted" }, "no clusters among the numbers flagged now")]));
}

async function loadHealth() {
  const h = await getJSON("/api/health");
  state.rates = [...state.rates.slice(-59), h.cdrs_per_second];
  setFigure("kpi-rate", h.cdrs_per_second, h.cdrs_per_second.toFixed(1));
  sparkline(document.getElementById("rate-spark"), state.rates);
  setFigure("kpi-lag", h.consumer_lag ?? "", h.consumer_lag === null ? "n/a" : numberText(h.consumer_lag));
  setFigure("kpi-deadletter", h.deadletter_ratio, `${(h.deadletter_ratio * 100).toFixed(2)} %`);
  setFigure("kpi-late", `${h.late_accepted}/${h.late_dropped}`, `${numberText(h.late_accepted)} / ${numberText(h.late_dropped)}`);
  document.getElementById("model-version").textContent = h.model_version || "none";
  document.getElementById("health-worker").textContent = h.worker;
  const facts = [
    ["CDRs ingested", numberText(h.cdrs_total)], ["messages read", numberText(h.messages_in)],
    ["dead-lettered", numberText(h.records_rejected)], ["duplicates", numberText(h.duplicates)],
    ["scored", numberText(h.decisions.scored)],
    ["published block / watch / clear", `${h.decisions.block} / ${h.decisions.watch} / ${h.decisions.clear}`],
    ["model", `${h.model_version || "none"} (${h.model_status})`],
    ["allow-list revision", h.allowlist_revision],
    ["store buffered", h.store.buffered], ["store insert failures", h.store.insert_failures],
    ["store last error", h.store.last_error || "none"],
    ["drift between input partitions", h.ingest_drift_ms === null ? "n/a" : `${(h.ingest_drift_ms / 1000).toFixed(0)} s`],
  ];
  document.getElementById("health-list").replaceChildren(
    ...facts.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value)]));
  replaceRows(document.querySelector("#lag-table tbody"), h.partitions.map((p) => el("tr", {},
    el("td", {}, p.topic), el("td", { class: "num" }, p.partition), el("td", { class: "num" }, p.lag ?? "n/a"),
    el("td", {}, p.event_time_ms == null ? "" : new Date(p.event_time_ms).toISOString().slice(0, 19).replace("T", " ")))));
}

async function loadNumber(query) {
  const panel = document.getElementById("detail");
  panel.hidden = false;
  const error = document.getElementById("detail-error");
  error.hidden = true;
  let body;
  try {
    body = await getJSON(`/api/number?q=${encodeURIComponent(query)}`);
  } catch (problem) {
    panel.dataset.number = "";
    document.getElementById("detail-number").textContent = query;
    document.getElementById("detail-action").replaceChildren();
    error.textContent = problem.message;
    error.hidden = false;
    return;
  }
  state.number = body.number;
  panel.dataset.number = body.number;
  panel.dataset.flagged = String(body.flagged);
  document.getElementById("detail-number").textContent = body.number;
  const current = body.current;
  const action = body.flagged ? current.action : "not flagged";
  const actionNode = document.getElementById("detail-action");
  actionNode.textContent = action;
  actionNode.className = `badge ${body.flagged ? current.action : "clear"}`;
  actionNode.dataset.value = action;
  const reasons = current ? current.reasons : [];
  document.getElementById("detail-reasons").replaceChildren(
    ...(reasons.length ? reasons.map((r) => el("li", {}, r)) : [el("li", { class: "muted" }, "no decision about this number")]));
  document.getElementById("detail-meta").textContent = current
    ? `${current.category} · score ${score(current.score)} · model ${current.model_version} · ${current.source}` +
      ` · decided ${when(current.flagged_at)}` + (body.flagged ? ` · expires ${when(current.expires_at)}` : "") +
      (body.allowlisted ? " · on the allow-list" : "")
    : (body.allowlisted ? "on the allow-list" : "");
  scoreChart(document.getElementById("detail-chart"), body.history);
  replaceRows(document.querySelector("#history-table tbody"), body.history.map((r) => el("tr", { "data-decision": r.decision_id },
    el("td", {}, when(r.flagged_at)), el("td", {}, badge(r.action)), el("td", {}, r.category),
    el("td", { class: "num" }, score(r.score)), el("td", {}, r.source), el("td", {}, r.actor),
    el("td", { class: "reasons" }, r.reasons.join("; ")))));
  const features = Object.entries(body.features.values);
  document.getElementById("features-at").textContent = body.features.flagged_at ? `at ${when(body.features.flagged_at)}` : "";
  replaceRows(document.querySelector("#features-table tbody"), features.map(([name, value]) => el("tr", { "data-feature": name },
    el("td", {}, name), el("td", { class: "num" }, Number.isInteger(value) ? value : value.toFixed(4)))));
  document.getElementById("allow-pattern").value = body.number;
}

function openNumber(query) {
  const url = new URL(window.location.href);
  url.searchParams.set("q", query);
  window.history.replaceState(null, "", url);
  document.getElementById("search-input").value = query;
  loadNumber(query).then(() => document.getElementById("detail").scrollIntoView({ behavior: "smooth" }));
}

function wireForms() {
  document.getElementById("search").addEventListener("submit", (event) => {
    event.preventDefault();
    const query = document.getElementById("search-input").value.trim();
    if (query) openNumber(query);
  });
  for (const id of ["filter-action", "filter-category"]) {
    document.getElementById(id).addEventListener("change", (event) => {
      state[id === "filter-action" ? "action" : "category"] = event.target.value;
      loadFlags();
    });
  }
  const operatorAction = (formId, url, outputId, payload) => {
    const form = document.getElementById(formId);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const output = document.getElementById(outputId);
      const fields = Object.fromEntries(new FormData(form));
      try {
        const answer = await postJSON(url, payload(fields));
        output.className = "ok";
        output.textContent = answer.detail;
        setTimeout(() => state.number && loadNumber(state.number), 3000);
      } catch (problem) {
        output.className = "error";
        output.textContent = problem.message;
      }
    });
  };
  operatorAction("appeal-form", "/api/appeal", "appeal-result",
    (f) => ({ number: state.number, reason: f.reason }));
  operatorAction("allow-form", "/api/allow", "allow-result",
    (f) => ({ pattern: f.pattern, reason: f.reason }));
  document.getElementById("sign-out").addEventListener("click", async () => {
    await fetch("/logout", { method: "POST", headers: { "X-CSRF-Token": csrfToken() } });
    toLogin();
  });
}

async function refreshData() {
  const results = await Promise.allSettled([loadFlags(), loadTimeline(), loadOffenders(), loadClusters()]);
  for (const result of results) if (result.status === "rejected") console.error(result.reason);
}

async function showUser() {
  const me = await getJSON("/api/me");
  document.getElementById("user-name").textContent = `${me.name} (${me.role})`;
  document.body.dataset.role = me.role;
  // Only operators (and admins) may act; the server refuses the others anyway.
  for (const id of ["appeal-form", "allow-form"]) {
    document.getElementById(id).hidden = !["operator", "admin"].includes(me.role);
  }
}

async function start() {
  legend();
  wireForms();
  await showUser().catch(console.error);
  const query = new URLSearchParams(window.location.search).get("q");
  const loads = [refreshData(), loadHealth().catch(console.error)];
  if (query) {
    document.getElementById("search-input").value = query;
    loads.push(loadNumber(query));
  }
  await Promise.allSettled(loads);
  document.body.dataset.ready = "true";
  setInterval(() => loadHealth().catch(console.error), HEALTH_EVERY_MS);
  setInterval(refreshData, DATA_EVERY_MS);
}

start();
