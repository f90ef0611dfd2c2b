// The dev agent's page: its services, their instances and checks, and the KV keys, kept up to
// date with blocking queries against the agent's own HTTP API, the way Consul's clients watch
// it: each answer's X-Consul-Index is the next request's `index`, so a request waits in the
// agent until something changes (or `wait` passes) and the page shows the change as it happens.
//
// With ACLs on, the agent refuses the page's first read without a token: the page then shows
// only a form for one. The token is kept in this tab's session storage and sent as
// X-Consul-Token; a token the agent refuses brings the form back with the agent's words.
//
// After a failed request a query waits (1 s, doubling up to 10 s) before it tries again; while
// the tab is hidden the page holds no query open.
"use strict";

// How long one blocking query may wait in the agent (Consul's default).
const WAIT = "5m";
// After a failed request: wait 1 s, doubling up to 10 s, before the next try.
const BACKOFF_FIRST_MS = 1000;
const BACKOFF_MAX_MS = 10000;
// A browser opens at most six HTTP/1.1 connections to one host, and each waiting query holds
// one. The catalog and the KV keys take two; up to this many services then each get a blocking
// query of their own. With more, one blocking query on every check (`/v1/health/state/any`)
// stands for all of them, and each service is read once whenever it or the catalog changes.
const OWN_QUERIES_UP_TO = 3;
const TOKEN_KEY = "devagent-token";

const STATUSES = {
  passing: { rank: 0, symbol: "✓" },
  warning: { rank: 2, symbol: "!" },
  critical: { rank: 3, symbol: "✕" },
};

const $ = (id) => document.getElementById(id);

// The view being shown: aborting it stops every query it started.
let session = null;
// The services on the page, by name: `{ name, li, badge, count, body, query }`.
const services = new Map();
// The shared query of the many-services case: `{ ctl, reading, again }`.
let allChecks = null;
// The queries failing right now, each with what went wrong.
const failing = new Map();

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function request(path, signal) {
  const headers = {};
  if (token()) headers["X-Consul-Token"] = token();
  return fetch(path, { headers, signal, cache: "no-store" });
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

function nextBackoff(ms) {
  return ms ? Math.min(ms * 2, BACKOFF_MAX_MS) : BACKOFF_FIRST_MS;
}

// A controller that also stops when the session does.
function child() {
  const ctl = new AbortController();
  return { ctl, signal: AbortSignal.any([session.signal, ctl.signal]) };
}

function setStatus(text) {
  const line = $("connection");
  if (line.textContent !== text) line.textContent = text;
}

function trouble(what, error, delay) {
  failing.set(what, error.message || String(error));
  setStatus(`Lost the agent (${failing.get(what)}): trying again in ${Math.round(delay / 1000)} s.`);
}

function fine(what) {
  failing.delete(what);
  if (failing.size === 0) setStatus("Live: changes show as they happen.");
}

// Runs a blocking query on `path` until `signal` aborts, handing every answer's body (`null`
// for a 404) to `onData`.
function watch(path, signal, onData) {
  (async () => {
    let index = 0;
    let delay = 0;
    while (!signal.aborted) {
      const sep = path.includes("?") ? "&" : "?";
      const url = index > 0 ? `${path}${sep}index=${index}&wait=${WAIT}` : path;
      let resp;
      let body;
      try {
        resp = await request(url, signal);
        if (resp.status === 401 || resp.status === 403) {
          const text = await resp.text();
          if (!signal.aborted) refused(text);
          return;
        }
        const text = await resp.text();
        if (!resp.ok && resp.status !== 404) throw new Error(`${resp.status} ${text.trim()}`);
        body = resp.status === 404 || text === "" ? null : JSON.parse(text);
      } catch (error) {
        if (signal.aborted) return;
        delay = nextBackoff(delay);
        trouble(path, error, delay);
        await sleep(delay, signal);
        // The agent may have changed, or restarted, meanwhile: read it at once, then block.
        index = 0;
        continue;
      }
      if (signal.aborted) return;
      delay = 0;
      fine(path);
      const next = Number(resp.headers.get("X-Consul-Index"));
      if (!Number.isFinite(next) || next < 1) {
        // Never block on 0: that would answer at once, again and again.
        index = 1;
      } else if (next < index) {
        // The index went backwards (the agent lost its state): read afresh, then block again.
        index = 0;
      } else {
        index = next;
      }
      try {
        onData(body);
      } catch (error) {
        // An answer the page cannot show must not end the query that brings the next one.
        console.error(`cannot show ${path}:`, error);
      }
    }
  })();
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function badge(status) {
  const known = STATUSES[status];
  const span = el("span", `badge ${known ? status : "unknown"}`);
  span.append(el("span", "symbol", known ? known.symbol : "?"), " ", status || "no checks");
  span.firstChild.setAttribute("aria-hidden", "true");
  return span;
}

function worst(statuses) {
  let found = "";
  let rank = -1;
  for (const status of statuses) {
    const r = STATUSES[status] ? STATUSES[status].rank : 1;
    if (r > rank) { rank = r; found = status; }
  }
  return found;
}

function field(dl, name, value) {
  const row = el("div");
  row.append(el("dt", "", name));
  const dd = el("dd");
  dd.append(value);
  row.append(dd);
  dl.append(row);
}

function instanceItem(entry) {
  const service = entry.Service || {};
  // The instance's own checks first, then the node's, which every instance on it shares.
  const checks = (entry.Checks || []).slice().sort((a, b) =>
    (a.ServiceID ? 0 : 1) - (b.ServiceID ? 0 : 1) || a.CheckID.localeCompare(b.CheckID));
  const status = worst(checks.map((c) => c.Status));
  const li = el("li", `instance ${STATUSES[status] ? status : "unknown"}`);
  li.dataset.instance = service.ID;
  const title = el("h4");
  title.append(el("span", "id", service.ID), " ", badge(status));
  li.append(title);

  const dl = el("dl", "fields");
  const node = entry.Node || {};
  field(dl, "Address", service.Address || `${node.Address || ""} (the node's)`);
  field(dl, "Port", String(service.Port));
  const tags = el("ul", "tags");
  for (const tag of service.Tags || []) tags.append(el("li", "tag", tag));
  field(dl, "Tags", (service.Tags || []).length ? tags : el("span", "none", "none"));
  const metaKeys = Object.keys(service.Meta || {}).sort();
  const meta = el("dl", "meta");
  for (const key of metaKeys) field(meta, key, service.Meta[key]);
  field(dl, "Meta", metaKeys.length ? meta : el("span", "none", "none"));
  li.append(dl);

  const list = el("ul", "checks");
  list.setAttribute("aria-label", `Checks of ${service.ID}`);
  for (const check of checks) {
    const item = el("li", "check");
    item.dataset.check = check.CheckID;
    const head = el("p", "check-head");
    head.append(badge(check.Status), " ", el("span", "check-name", check.Name || check.CheckID), " ",
      el("code", "check-id", check.CheckID));
    item.append(head);
    if (check.Output) item.append(el("pre", "output", check.Output));
    list.append(item);
  }
  li.append(list);
  return li;
}

function serviceView(name) {
  const li = el("li", "service");
  li.dataset.service = name;
  const details = el("details");
  details.open = true;
  const summary = el("summary");
  const heading = el("h3", "", name);
  // Its badge once its instances have been read.
  const status = el("span");
  const count = el("span", "count", "reading…");
  summary.append(heading, " ", status, " ", count);
  const body = el("ul", "instances");
  body.setAttribute("aria-label", `Instances of ${name}`);
  details.append(summary, body);
  li.append(details);
  return { name, li, badge: status, count, body, query: null };
}

function showService(view, entries) {
  if (services.get(view.name) !== view) return;
  const list = (Array.isArray(entries) ? entries : [])
    .slice()
    .sort((a, b) => String(a.Service.ID).localeCompare(String(b.Service.ID)));
  const status = worst(list.flatMap((e) => (e.Checks || []).map((c) => c.Status)));
  const fresh = badge(status);
  view.badge.replaceWith(fresh);
  view.badge = fresh;
  view.count.textContent = list.length === 1 ? "1 instance" : `${list.length} instances`;
  view.body.replaceChildren(...list.map(instanceItem));
}

function healthPath(name) {
  return `/v1/health/service/${encodeURIComponent(name)}`;
}

// Reads every service once (the many-services case), again if asked meanwhile.
function readAll() {
  const shared = allChecks;
  if (!shared) return;
  if (shared.reading) { shared.again = true; return; }
  shared.reading = true;
  (async () => {
    do {
      shared.again = false;
      for (const view of [...services.values()]) {
        if (shared.signal.aborted) return;
        try {
          const resp = await request(healthPath(view.name), shared.signal);
          if (resp.status === 401 || resp.status === 403) {
            const text = await resp.text();
            if (!shared.signal.aborted) refused(text);
            return;
          }
          if (resp.ok) showService(view, await resp.json());
        } catch (error) {
          // A lost agent fails the shared query too, whose next answer reads everything again.
          if (shared.signal.aborted) return;
        }
      }
    } while (shared.again && !shared.signal.aborted);
  })().finally(() => { shared.reading = false; });
}

function showCatalog(catalog) {
  const names = Object.keys(catalog || {}).sort();
  const wanted = new Set(names);
  for (const [name, view] of services) {
    if (!wanted.has(name)) {
      if (view.query) view.query.ctl.abort();
      view.li.remove();
      services.delete(name);
    }
  }
  const list = $("services");
  names.forEach((name, i) => {
    let view = services.get(name);
    if (!view) {
      view = serviceView(name);
      services.set(name, view);
    }
    if (list.children[i] !== view.li) list.insertBefore(view.li, list.children[i] || null);
  });
  $("services-count").textContent = `(${names.length})`;
  $("services-empty").hidden = names.length > 0;

  if (names.length <= OWN_QUERIES_UP_TO) {
    if (allChecks) { allChecks.ctl.abort(); allChecks = null; }
    for (const view of services.values()) {
      if (view.query) continue;
      view.query = child();
      watch(healthPath(view.name), view.query.signal, (entries) => showService(view, entries));
    }
  } else {
    for (const view of services.values()) {
      if (view.query) { view.query.ctl.abort(); view.query = null; }
    }
    if (allChecks) {
      readAll();
    } else {
      allChecks = { ...child(), reading: false, again: false };
      // Its first answer comes at once and reads every service.
      watch("/v1/health/state/any", allChecks.signal, readAll);
    }
  }
}

function showKeys(keys) {
  const list = Array.isArray(keys) ? keys : [];
  $("kv").replaceChildren(...list.map((key) => {
    const li = el("li");
    li.dataset.key = key;
    li.append(el("code", "", key));
    return li;
  }));
  $("kv-count").textContent = `(${list.length})`;
  $("kv-empty").hidden = list.length > 0;
}

// The queries that keep the page up to date; the services' own start with the catalog's answer.
function follow(signal) {
  watch("/v1/catalog/services", signal, showCatalog);
  watch("/v1/kv/?keys", signal, showKeys);
}

// A hidden tab gives its connections back (other tabs on the agent need them) and catches up
// as soon as it is shown again: its queries start afresh, reading what changed meanwhile.
let paused = false;

function pauseWhileHidden() {
  if (paused || $("data").hidden) return;
  paused = true;
  session.abort();
  session = new AbortController();
  allChecks = null;
  failing.clear();
  for (const view of services.values()) view.query = null;
  setStatus("Paused while the tab is hidden.");
}

function resumeWhenShown() {
  if (!paused) return;
  paused = false;
  follow(session.signal);
}

// Stops every query and takes every piece of the agent's data off the page.
function clear() {
  if (session) session.abort();
  session = new AbortController();
  paused = false;
  allChecks = null;
  services.clear();
  failing.clear();
  $("services").replaceChildren();
  $("kv").replaceChildren();
  for (const id of ["services-count", "kv-count", "agent"]) $(id).textContent = "";
  $("data").hidden = true;
}

function refused(text) {
  const given = token() !== "";
  sessionStorage.removeItem(TOKEN_KEY);
  const wasShown = !$("login").hidden;
  clear();
  $("forget").hidden = true;
  const error = $("login-error");
  error.textContent = given ? `The agent refused the token: ${text.trim()}` : "";
  error.hidden = !given;
  $("login").hidden = false;
  $("login-form").querySelector("button").disabled = false;
  setStatus("Waiting for a token.");
  if (wasShown) $("token").focus();
}

async function start() {
  clear();
  const signal = session.signal;
  let delay = 0;
  while (!signal.aborted) {
    try {
      const resp = await request("/v1/agent/self", signal);
      if (resp.status === 401 || resp.status === 403) {
        const text = await resp.text();
        if (!signal.aborted) refused(text);
        return;
      }
      if (!resp.ok) throw new Error(`${resp.status} ${(await resp.text()).trim()}`);
      const self = await resp.json();
      if (signal.aborted) return;
      const config = self.Config || {};
      const acls = self.DebugConfig && self.DebugConfig.ACLsEnabled;
      $("agent").textContent =
        `Node ${config.NodeName} · datacenter ${config.Datacenter}${acls ? " · ACLs on" : ""}`;
      $("login").hidden = true;
      $("login-error").hidden = true;
      $("forget").hidden = !token();
      $("data").hidden = false;
      fine("/v1/agent/self");
      follow(signal);
      return;
    } catch (error) {
      if (signal.aborted) return;
      delay = nextBackoff(delay);
      trouble("/v1/agent/self", error, delay);
      await sleep(delay, signal);
    }
  }
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("token").value.trim();
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  $("token").value = "";
  $("login-form").querySelector("button").disabled = true;
  setStatus("Checking the token…");
  start();
});

$("forget").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  start();
});

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden") pauseWhileHidden(); else resumeWhenShown();
});

start();
