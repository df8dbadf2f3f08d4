// callguard pages' shared helpers: DOM building, the signed-in fetch, times.
// Loaded before each page's own script (dashboard.js, review.js).
"use strict";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("data-")) node.setAttribute(name, value);
    else node[name] = value;
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

// Signed out (or the session ended): back to the login page, then here again.
function toLogin() {
  const here = window.location.pathname + window.location.search;
  window.location.assign(`/login?next=${encodeURIComponent(here)}`);
  return new Promise(() => {});  // the page is leaving
}

// The session's CSRF token (set at sign-in, readable by this script only on this site).
function csrfToken() {
  const found = document.cookie.split("; ").find((c) => c.startsWith("callguard_csrf="));
  return found ? decodeURIComponent(found.slice("callguard_csrf=".length)) : "";
}

async function answerOf(response) {
  if (response.status === 401) return toLogin();
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

async function getJSON(url) {
  return answerOf(await fetch(url, { cache: "no-store" }));
}

async function postJSON(url, payload) {
  return answerOf(await fetch(url, {
    method: "POST", body: JSON.stringify(payload),
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
  }));
}

const when = (iso) => (iso ? iso.replace("T", " ").replace(/:\d\dZ$/, "") : "");
