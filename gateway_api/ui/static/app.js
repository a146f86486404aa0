// The admin UI's core: where the API is, the signed-in key, calls, errors, routes.
// The key lives in sessionStorage only (never a cookie, never localStorage), so it is
// forgotten when the tab closes and is never sent by the browser on its own.
"use strict";

const PMP_CONFIG = JSON.parse(document.getElementById("pmp-config").textContent || "{}");
const KEY_SLOT = "pmp-api-key";

class ApiError extends Error {
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.param = error.param || null;
    this.code = error.code || null;
  }
}

function storedKey() {
  return sessionStorage.getItem(KEY_SLOT);
}

async function errorOf(response) {
  let error = { message: `${response.status} ${response.statusText}` };
  try {
    const body = await response.json();
    if (body && body.error) error = body.error;
  } catch (_ignored) {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, error);
}

// One API call: JSON in and out, the key as a bearer token, errors as ApiError.
// A 401 while signed in means the key stopped working: the shell returns to sign-in.
async function api(path, { method = "GET", body, headers = {}, key = storedKey(), raw = false, signal } = {}) {
  const init = { method, headers: { ...headers }, signal };
  if (key) init.headers.authorization = `Bearer ${key}`;
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(PMP_CONFIG.apiBase + path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, { message: `The gateway is not reachable (${error.message}).` });
  }
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401 && key && key === storedKey()) {
      window.dispatchEvent(new CustomEvent("pmp-unauthorized", { detail: error.message }));
    }
    throw error;
  }
  if (raw) return response;
  const text = await response.text();
  return { data: text ? JSON.parse(text) : null, headers: response.headers, status: response.status };
}

// Where a run opens in the Temporal Web UI: the x-pmp-run-url header when there is one,
// else the gateway's template with the run id filled in.
function runUrl(runId, header) {
  if (header) return header;
  const template = Alpine.store("pmp").session?.run_url_template;
  if (!runId || !template) return null;
  return template.replace("{run_id}", encodeURIComponent(runId));
}

function query(params) {
  const pairs = Object.entries(params).filter(([, v]) => v !== null && v !== undefined && v !== "");
  return pairs.length ? "?" + new URLSearchParams(pairs).toString() : "";
}

function notify(message) {
  const store = Alpine.store("pmp");
  store.notice = message;
  clearTimeout(store.noticeTimer);
  store.noticeTimer = setTimeout(() => { store.notice = ""; }, 6000);
}

function pretty(value) {
  return JSON.stringify(value, null, 2);
}

function when(epochOrIso) {
  if (!epochOrIso) return "";
  const date = typeof epochOrIso === "number" ? new Date(epochOrIso * 1000) : new Date(epochOrIso);
  return date.toLocaleString();
}

// The field an API error's `param` names, among a form's field names: the longest name
// that is the param or a prefix of it (`credential.name` → `credential.name` or
// `credential`).
function fieldFor(param, fields) {
  if (!param) return null;
  const clean = param.replace(/^body\./, "");
  const matching = fields.filter(
    (f) => clean === f || clean.startsWith(f + ".") || clean.startsWith(f + "["),
  );
  return matching.sort((a, b) => b.length - a.length)[0] || null;
}

// Mixed into every view with a form: errors at their fields, or above the form.
function formState(fields) {
  return {
    errors: {},
    formError: "",
    busy: false,
    clearErrors() {
      this.errors = {};
      this.formError = "";
    },
    showError(error) {
      this.clearErrors();
      const field = fieldFor(error.param, fields);
      if (field) this.errors[field] = error.message;
      else this.formError = error.message;
    },
    invalid(name) {
      return this.errors[name] ? "true" : null;
    },
  };
}

// Differences between two JSON values, as [path, before, after] rows.
function jsonDiff(before, after, path = "") {
  const isObject = (v) => v && typeof v === "object" && !Array.isArray(v);
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((k) => jsonDiff(before[k], after[k], path ? `${path}.${k}` : k));
  }
  if (JSON.stringify(before) === JSON.stringify(after)) return [];
  return [[path || "(value)", before === undefined ? "—" : JSON.stringify(before),
    after === undefined ? "—" : JSON.stringify(after)]];
}

const ADMIN_VIEWS = [
  ["dashboard", "Dashboard"], ["models", "Models"], ["chains", "Chains"], ["prompts", "Prompts"],
  ["keys", "API keys"], ["credentials", "Credentials"], ["operations", "Operations"],
  ["knowledge-bases", "Knowledge bases"], ["workflows", "Workflows"], ["playground", "Playground"],
];
const KEY_VIEWS = [["usage", "My usage"], ["operations", "Operations"], ["playground", "Playground"]];

function viewsFor(session) {
  return (session && session.admin ? ADMIN_VIEWS : KEY_VIEWS).map(([view, label]) => ({ view, label }));
}

function parseRoute() {
  const [view, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  return { view: view || "", arg: rest.map(decodeURIComponent).join("/") };
}

document.addEventListener("alpine:init", () => {
  Alpine.store("pmp", { session: null, route: parseRoute(), notice: "", noticeTimer: null });

  Alpine.data("shell", () => ({
    checking: true,
    busy: false,
    signInError: "",
    async init() {
      window.addEventListener("hashchange", () => this.routeTo(parseRoute()));
      window.addEventListener("pmp-unauthorized", (event) =>
        this.signOut(`Signed out: ${event.detail} Sign in again.`));
      const key = storedKey();
      if (key) await this.verify(key);
      this.checking = false;
    },
    navItems() {
      return viewsFor(Alpine.store("pmp").session);
    },
    routeTo(route) {
      const allowed = this.navItems().map((item) => item.view);
      if (!allowed.includes(route.view)) {
        location.hash = `#/${allowed[0]}`;
        return;
      }
      Alpine.store("pmp").route = route;
    },
    async signIn(event) {
      const key = event.target.elements.key.value.trim();
      if (!key) {
        this.signInError = "Enter an API key.";
        return;
      }
      this.busy = true;
      await this.verify(key);
      this.busy = false;
    },
    async verify(key) {
      try {
        const { data } = await api("/ui/session", { key });
        sessionStorage.setItem(KEY_SLOT, key);
        this.signInError = "";
        Alpine.store("pmp").session = data;
        this.routeTo(parseRoute());
      } catch (error) {
        sessionStorage.removeItem(KEY_SLOT);
        Alpine.store("pmp").session = null;
        this.signInError = error.status === 401
          ? `This key was refused: ${error.message}` : error.message;
      }
    },
    signOut(message) {
      sessionStorage.removeItem(KEY_SLOT);
      Alpine.store("pmp").session = null;
      this.signInError = message;
    },
  }));
});

// A plain deep copy (Alpine's reactive proxies cannot go through structuredClone).
function clone(value) {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}
