// The admin UI's views: one Alpine component each, all speaking the gateway's JSON API.
"use strict";

// A cursor-paged list of versioned entities at `prefix` (GET ?limit=&after=), and how one
// is written: POST to create, PUT with If-Match (the version the form started from) to change.
function pagedList(prefix, pageSize = 20) {
  return {
    items: [], pages: [null], page: 0, hasMore: false, filter: "", loading: false, listError: "",
    async load(page = this.page) {
      this.loading = true;
      try {
        const { data } = await api(prefix + query({ limit: pageSize, after: this.pages[page] }));
        this.items = data.data;
        this.hasMore = data.has_more;
        this.page = page;
        this.pages[page + 1] = data.last_id;
        this.listError = "";
      } catch (error) {
        this.listError = error.message;
      } finally {
        this.loading = false;
      }
    },
    store(id, body, version) {
      if (id === "new") return api(prefix, { method: "POST", body });
      return api(`${prefix}/${encodeURIComponent(id)}`, {
        method: "PUT", body, headers: { "if-match": String(version) } });
    },
    shown() {
      const needle = this.filter.trim().toLowerCase();
      if (!needle) return this.items;
      return this.items.filter((item) => JSON.stringify([item.id, item.name, item.provider, item.model])
        .toLowerCase().includes(needle));
    },
  };
}

// Versions of one entity with a diff against the current definition, and revert.
function versionHistory(prefix) {
  return {
    versions: [], compared: null, diffRows: [],
    async loadVersions(entity) {
      const { data } = await api(`${prefix}/${encodeURIComponent(entity.id)}/versions`);
      this.versions = data.data;
      this.compared = null;
      this.diffRows = [];
    },
    compare(entity, version) {
      const strip = ({ created_at, updated_at, version: _v, ...rest }) => rest;
      this.compared = version.version;
      this.diffRows = jsonDiff(strip(version), strip(entity));
    },
    async revert(entity, version) {
      if (!confirm(`Make version ${version.version} of ${entity.id} current again?`)) return null;
      const { data } = await api(`${prefix}/${encodeURIComponent(entity.id)}/revert`, {
        method: "POST", body: { version: version.version },
        headers: { "if-match": String(entity.version) },
      });
      notify(`${entity.id} is back at version ${version.version}'s definition (now version ${data.version}).`);
      return data;
    },
  };
}

function dropEmpty(value) {
  if (Array.isArray(value)) return value.map(dropEmpty);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value)
      .filter(([, v]) => v !== "" && v !== null && v !== undefined)
      .map(([k, v]) => [k, dropEmpty(v)]));
  }
  return value;
}

const MODEL_FIELDS = ["id", "provider", "model", "kind", "dimensions", "base_url", "description",
  "deployment", "api_version", "region",
  "credential.name", "credential.secret_id", "credential.path", "credential.field", "credential",
  "config.temperature", "config.max_tokens", "config", "cache", "enabled"];

function blankModel() {
  return { id: "", provider: "openai", model: "", kind: "chat", dimensions: "", base_url: "",
    description: "", deployment: "", api_version: "", region: "", credential: { source: "" },
    config: {}, cacheMode: "", enabled: true };
}

function modelToForm(model) {
  const form = { ...blankModel(), ...clone(model) };
  form.credential = model.credential ? { ...model.credential } : { source: "" };
  form.config = { ...(model.config || {}) };
  form.cacheMode = model.cache ? model.cache.mode : "";
  return form;
}

function modelFromForm(form) {
  const { cacheMode, credential, ...rest } = clone(form);
  const body = dropEmpty(rest);
  if (credential.source) body.credential = dropEmpty(credential);
  else delete body.credential;
  if (cacheMode) body.cache = { ...(form.cache || {}), mode: cacheMode };
  else delete body.cache;
  if (body.kind !== "embedding") delete body.dimensions;
  if (body.provider !== "azure_openai") delete body.deployment;
  if (!["azure_openai", "anthropic"].includes(body.provider)) delete body.api_version;
  if (body.provider !== "bedrock") delete body.region;
  return body;
}

async function chatCall(model, content, extra = {}) {
  const started = performance.now();
  const { data, headers } = await api("/v1/chat/completions", {
    method: "POST", body: { model, messages: [{ role: "user", content }], ...extra },
  });
  return {
    content: data.choices?.[0]?.message?.content ?? "",
    servedBy: headers.get("x-pmp-served-by"), attempts: headers.get("x-pmp-attempts"),
    cache: headers.get("x-pmp-cache"), runId: headers.get("x-pmp-run-id"),
    runUrl: runUrl(headers.get("x-pmp-run-id"), headers.get("x-pmp-run-url")),
    ms: Math.round(performance.now() - started),
  };
}

document.addEventListener("alpine:init", () => {
  Alpine.data("modelsView", () => ({
    ...pagedList("/admin/models"),
    ...formState(MODEL_FIELDS),
    ...versionHistory("/admin/models"),
    editing: null, form: blankModel(), selected: null, health: null, sources: [],
    testPrompt: "Say hello in five words.", testResult: null, testError: "",
    async init() {
      await this.load(0);
      api("/admin/credentials/providers").then(({ data }) => { this.sources = data.data; })
        .catch(() => { this.sources = []; });
    },
    startNew() {
      this.editing = "new";
      this.form = blankModel();
      this.clearErrors();
      this.$nextTick(() => document.getElementById("model-id")?.focus());
    },
    startEdit(model) {
      this.editing = model.id;
      this.form = modelToForm(model);
      this.clearErrors();
      this.$nextTick(() => document.getElementById("model-model")?.focus());
    },
    async save(event) {
      this.clearErrors();
      if (!event.target.reportValidity()) return;
      this.busy = true;
      try {
        const body = modelFromForm(this.form);
        const saved = await this.store(this.editing, body, this.form.version);
        notify(`Model ${saved.data.id} saved (version ${saved.data.version}).`);
        this.editing = null;
        await this.load();
        if (this.selected && this.selected.id === saved.data.id) await this.open(saved.data);
      } catch (error) {
        this.showError(error);
      } finally {
        this.busy = false;
      }
    },
    async toggle(model) {
      try {
        const body = { ...model, enabled: !model.enabled };
        await this.store(model.id, body, model.version);
        notify(`Model ${model.id} ${model.enabled ? "disabled" : "enabled"}.`);
        await this.load();
      } catch (error) {
        notify(error.message);
      }
    },
    async remove(model) {
      if (!confirm(`Delete model ${model.id}? Chains using it stop working.`)) return;
      try {
        await api(`/admin/models/${encodeURIComponent(model.id)}`, { method: "DELETE" });
        notify(`Model ${model.id} deleted.`);
        if (this.selected?.id === model.id) this.selected = null;
        await this.load();
      } catch (error) {
        notify(error.message);
      }
    },
    async open(model) {
      this.selected = model;
      this.testResult = null;
      this.testError = "";
      await Promise.all([this.loadVersions(model), this.loadHealth()]);
    },
    async loadHealth() {
      const { data } = await api(`/admin/models/${encodeURIComponent(this.selected.id)}/health`);
      this.health = data.circuit_breaker;
    },
    async resetHealth() {
      if (!confirm(`Reset the circuit breaker of ${this.selected.id}?`)) return;
      await api(`/admin/models/${encodeURIComponent(this.selected.id)}/health/reset`, { method: "POST" });
      await this.loadHealth();
      notify(`Breaker of ${this.selected.id} reset.`);
    },
    async revertTo(version) {
      const reverted = await this.revert(this.selected, version).catch((e) => notify(e.message));
      if (reverted) {
        await this.load();
        await this.open(reverted);
      }
    },
    async testCall() {
      this.testError = "";
      this.testResult = null;
      try {
        this.testResult = await chatCall(this.selected.id, this.testPrompt, { max_tokens: 64 });
      } catch (error) {
        this.testError = error.message;
      }
    },
  }));

  Alpine.data("keysView", () => ({
    ...formState(["id", "name", "permissions", "rate_limits", "expires_at", "environment"]),
    keys: [], filter: "", creating: false, secret: null, copied: false, selected: null,
    usageDays: [], usageModels: [],
    form: null,
    async init() {
      this.form = this.blank();
      await this.load();
    },
    blank() {
      const access = { mode: "none", ids: "" };
      return { id: "", name: "", environment: "live", admin: false, expires_at: "",
        models: { ...access }, chains: { ...access }, prompts: { ...access },
        knowledge_bases: { ...access }, workflows: { ...access },
        rate_limits: { requests_per_minute: "", requests_per_hour: "", requests_per_day: "", tokens_per_minute: "" } };
    },
    kinds: ["models", "chains", "prompts", "knowledge_bases", "workflows"],
    async load() {
      const { data } = await api("/admin/api-keys");
      this.keys = data.data;
    },
    shown() {
      const needle = this.filter.trim().toLowerCase();
      return this.keys.filter((k) => !needle || `${k.id} ${k.name} ${k.status}`.toLowerCase().includes(needle));
    },
    body() {
      const permissions = { admin: this.form.admin };
      for (const kind of this.kinds) {
        const { mode, ids } = this.form[kind];
        permissions[kind] = mode === "list" ? ids.split(",").map((s) => s.trim()).filter(Boolean) : mode;
      }
      const body = { name: this.form.name, permissions, rate_limits: dropEmpty(this.form.rate_limits) };
      if (this.form.expires_at) body.expires_at = new Date(this.form.expires_at).toISOString();
      return body;
    },
    startNew() {
      this.form = this.blank();
      this.creating = "new";
      this.secret = null;
      this.clearErrors();
      this.$nextTick(() => document.getElementById("key-id")?.focus());
    },
    startEdit(key) {
      const form = this.blank();
      Object.assign(form, { id: key.id, name: key.name, admin: key.permissions.admin,
        environment: key.environment, expires_at: key.expires_at ? key.expires_at.slice(0, 16) : "" });
      for (const kind of this.kinds) {
        const access = key.permissions[kind];
        form[kind] = Array.isArray(access) ? { mode: "list", ids: access.join(", ") } : { mode: access, ids: "" };
      }
      form.rate_limits = { ...form.rate_limits, ...dropEmpty(key.rate_limits) };
      this.form = form;
      this.creating = key.id;
      this.secret = null;
      this.clearErrors();
    },
    async save(event) {
      this.clearErrors();
      if (!event.target.reportValidity()) return;
      this.busy = true;
      try {
        if (this.creating === "new") {
          const { data } = await api("/admin/api-keys", {
            method: "POST", body: { ...this.body(), id: this.form.id, environment: this.form.environment } });
          this.secret = { id: data.id, key: data.key };
          this.copied = false;
        } else {
          await api(`/admin/api-keys/${encodeURIComponent(this.creating)}`, { method: "PUT", body: this.body() });
          notify(`Key ${this.creating} saved.`);
        }
        this.creating = false;
        await this.load();
      } catch (error) {
        this.showError(error);
      } finally {
        this.busy = false;
      }
    },
    async copySecret() {
      try {
        await navigator.clipboard.writeText(this.secret.key);
        this.copied = true;
      } catch (_error) {
        document.getElementById("new-key-secret").select();
        this.copied = "select";
      }
    },
    async act(key, action) {
      const confirmations = {
        revoke: `Revoke key ${key.id}? It stops working for good.`,
        rotate: `Rotate key ${key.id}? The current secret stops working now.`,
        suspend: `Suspend key ${key.id}? Calls with it fail until it is activated.`,
      };
      if (confirmations[action] && !confirm(confirmations[action])) return;
      try {
        const { data } = await api(`/admin/api-keys/${encodeURIComponent(key.id)}/${action}`, { method: "POST" });
        if (action === "rotate") this.secret = { id: data.id, key: data.key };
        else notify(`Key ${key.id} is ${data.status}.`);
        await this.load();
      } catch (error) {
        notify(error.message);
      }
    },
    async usage(key) {
      this.selected = key;
      const path = `/admin/api-keys/${encodeURIComponent(key.id)}/usage`;
      const [days, models] = await Promise.all([api(path + "?group_by=day"), api(path + "?group_by=model")]);
      this.usageDays = days.data.data;
      this.usageModels = models.data.data;
    },
    bar(rows, row) {
      const most = Math.max(1, ...rows.map((r) => r.requests || 0));
      return `${Math.round(((row.requests || 0) / most) * 100)}%`;
    },
  }));

  Alpine.data("promptsView", () => ({
    ...pagedList("/admin/prompts"),
    ...formState(["id", "name", "content", "description", "tags"]),
    ...versionHistory("/admin/prompts"),
    editing: null, form: null, selected: null, values: {}, rendered: null, renderError: "", search: "",
    async init() {
      this.form = this.blank();
      await this.load(0);
    },
    blank() {
      return { id: "", name: "", content: "", description: "", tags: "" };
    },
    async find() {
      this.pages = [null];
      const { data } = await api("/admin/prompts" + query({ name: this.search, limit: 20 }));
      this.items = data.data;
      this.hasMore = data.has_more;
      this.pages[1] = data.last_id;
      this.page = 0;
    },
    // ${var:name} or ${var:name:default}; `$${` is a literal `${` (the gateway's grammar).
    variables() {
      const found = new Map();
      const pattern = /(\$\$)|\$\{var:([A-Za-z0-9-]+)(?::([^{}]*))?\}/g;
      for (const match of (this.form.content || "").matchAll(pattern)) {
        if (match[1]) continue;
        const [, , name, fallback] = match;
        const known = found.get(name);
        const required = fallback === undefined;
        found.set(name, { name, default: fallback ?? known?.default ?? null, required: required || (known?.required ?? false) });
      }
      return [...found.values()];
    },
    startNew() {
      this.editing = "new";
      this.form = this.blank();
      this.clearErrors();
      this.$nextTick(() => document.getElementById("prompt-id")?.focus());
    },
    startEdit(prompt) {
      this.editing = prompt.id;
      this.form = { ...clone(prompt), tags: (prompt.tags || []).join(", ") };
      this.clearErrors();
    },
    async save(event) {
      this.clearErrors();
      if (!event.target.reportValidity()) return;
      const tags = this.form.tags.split(",").map((t) => t.trim()).filter(Boolean);
      const body = dropEmpty({ ...Alpine.raw(this.form), tags, variables: null });
      body.tags = tags;
      this.busy = true;
      try {
        const { data } = await this.store(this.editing, body, this.form.version);
        notify(`Prompt ${data.id} saved (version ${data.version}).`);
        this.editing = null;
        await this.load();
        await this.open(data);
      } catch (error) {
        this.showError(error);
      } finally {
        this.busy = false;
      }
    },
    async remove(prompt) {
      if (!confirm(`Delete prompt ${prompt.id}?`)) return;
      await api(`/admin/prompts/${encodeURIComponent(prompt.id)}`, { method: "DELETE" });
      if (this.selected?.id === prompt.id) this.selected = null;
      notify(`Prompt ${prompt.id} deleted.`);
      await this.load();
    },
    async open(prompt) {
      this.selected = prompt;
      this.values = Object.fromEntries(prompt.variables.map((v) => [v.name, v.default ?? ""]));
      this.rendered = null;
      this.renderError = "";
      await this.loadVersions(prompt);
    },
    async render() {
      this.renderError = "";
      const variables = Object.fromEntries(Object.entries(this.values).filter(([, v]) => v !== ""));
      try {
        const { data } = await api(`/admin/prompts/${encodeURIComponent(this.selected.id)}/render`, {
          method: "POST", body: { variables } });
        this.rendered = data;
      } catch (error) {
        this.rendered = null;
        this.renderError = error.message;
      }
    },
    async revertTo(version) {
      const reverted = await this.revert(this.selected, version).catch((e) => notify(e.message));
      if (reverted) {
        await this.load();
        await this.open(reverted);
      }
    },
  }));
});
