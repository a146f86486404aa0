// Views about stored definitions beyond models and prompts: chains, credentials,
// knowledge bases, workflows (definitions and their runs).
"use strict";

// Every page of a cursor-paged admin list (for pickers: models of a chain or a KB).
async function allOf(path) {
  const items = [];
  let after = null;
  for (;;) {
    const { data } = await api(path + query({ limit: 100, after }));
    items.push(...data.data);
    if (!data.has_more) return items;
    after = data.last_id;
  }
}

// A paused wait_for_input step's answer: POST /v1/operations/{id}/input.
function inputDelivery() {
  return {
    inputText: "{}", inputError: "",
    async deliverInput(operationId, step) {
      this.inputError = "";
      let value;
      try {
        value = JSON.parse(this.inputText);
      } catch (_error) {
        this.inputError = "The input must be JSON.";
        return null;
      }
      try {
        const { data } = await api(`/v1/operations/${encodeURIComponent(operationId)}/input`, {
          method: "POST", body: { input: value, step } });
        notify(`Input delivered to ${step}.`);
        return data;
      } catch (error) {
        this.inputError = error.message;
        return null;
      }
    },
  };
}

// The line of a workflow definition's JSON where a problem's path (`steps[1].model_id`)
// points: the step's own line, found by walking the parsed value in the text's order.
function lineOf(text, path) {
  const match = /^steps\[(\d+)\]/.exec(path || "");
  if (!match) return null;
  let definition;
  try {
    definition = JSON.parse(text);
  } catch (_error) {
    return null;
  }
  const step = (definition.steps || [])[Number(match[1])];
  if (!step || !step.name) return null;
  const at = text.indexOf(`"${step.name}"`, text.indexOf('"steps"'));
  return at < 0 ? null : text.slice(0, at).split("\n").length;
}

const WORKFLOW_EXAMPLE = {
  id: "", name: "Answer a question", description: "",
  input_schema: { type: "object", properties: { question: { type: "string" } }, required: ["question"] },
  steps: [{ name: "answer", type: "chat_completion", model_id: "", user_message: "${request:question}" }],
  enabled: true,
};

document.addEventListener("alpine:init", () => {
  Alpine.data("chainsView", () => ({
    ...pagedList("/admin/chains"),
    ...formState(["id", "name", "description", "steps", "enabled"]),
    ...versionHistory("/admin/chains"),
    editing: null, form: null, models: [], selected: null,
    async init() {
      this.form = this.blank();
      await this.load(0);
      this.models = (await allOf("/admin/models")).map((m) => m.id);
    },
    blank() {
      return { id: "", name: "", description: "", enabled: true, steps: [this.blankStep()] };
    },
    blankStep() {
      return { model_id: "", max_retries: 2, max_latency_ms: 60000, on_exhausted: "next" };
    },
    startNew() {
      this.editing = "new";
      this.form = this.blank();
      this.clearErrors();
    },
    startEdit(chain) {
      this.editing = chain.id;
      this.form = clone(chain);
      this.clearErrors();
    },
    move(index, by) {
      const steps = this.form.steps;
      const [step] = steps.splice(index, 1);
      steps.splice(index + by, 0, step);
    },
    stepError(index) {
      return Object.entries(this.errors).filter(([k]) => k.startsWith(`steps[${index}]`) || k === `steps.${index}`)
        .map(([, v]) => v).join(" ") || (this.stepErrors[index] || "");
    },
    stepErrors: {},
    showChainError(error) {
      this.clearErrors();
      this.stepErrors = {};
      const found = /^steps[.[](\d+)/.exec(error.param || "");
      if (found) this.stepErrors[Number(found[1])] = error.message;
      else this.showError(error);
    },
    async save(event) {
      this.clearErrors();
      this.stepErrors = {};
      if (!event.target.reportValidity()) return;
      const body = dropEmpty(clone(this.form));
      this.busy = true;
      try {
        const { data } = await this.store(this.editing, body, this.form.version);
        notify(`Chain ${data.id} saved (version ${data.version}).`);
        this.editing = null;
        await this.load();
      } catch (error) {
        this.showChainError(error);
      } finally {
        this.busy = false;
      }
    },
    async remove(chain) {
      if (!confirm(`Delete chain ${chain.id}?`)) return;
      await api(`/admin/chains/${encodeURIComponent(chain.id)}`, { method: "DELETE" }).catch((e) => notify(e.message));
      if (this.selected?.id === chain.id) this.selected = null;
      await this.load();
    },
    async open(chain) {
      this.selected = chain;
      await this.loadVersions(chain);
    },
    async revertTo(version) {
      const reverted = await this.revert(this.selected, version).catch((e) => notify(e.message));
      if (reverted) {
        await this.load();
        await this.open(reverted);
      }
    },
  }));

  Alpine.data("credentialsView", () => ({
    sources: [], models: [], error: "",
    async init() {
      try {
        const [{ data }, models] = await Promise.all([api("/admin/credentials/providers"), allOf("/admin/models")]);
        this.sources = data.data;
        this.models = models;
      } catch (error) {
        this.error = error.message;
      }
    },
    users(source) {
      return this.models.filter((m) => m.credential && m.credential.source === source)
        .map((m) => `${m.id} (${m.credential.name || m.credential.secret_id || m.credential.path || ""})`);
    },
  }));

  Alpine.data("kbView", () => ({
    ...pagedList("/admin/knowledge-bases"),
    ...formState(["id", "name", "embedding_model_id", "backend", "distance", "description"]),
    creating: false, form: null, embedders: [], selected: null,
    documents: [], docFilter: "", docError: "", docCursors: [null], docPage: 0, docHasMore: false,
    search: { query: "", top_k: 5, mode: "vector", filter: "", threshold: "" }, hits: null, searchError: "",
    upload: null, uploadError: "", timer: null,
    async init() {
      this.form = this.blank();
      await this.load(0);
      this.embedders = (await allOf("/admin/models")).filter((m) => m.kind === "embedding").map((m) => m.id);
    },
    destroy() {
      clearTimeout(this.timer);
    },
    blank() {
      return { id: "", name: "", embedding_model_id: "", backend: "pgvector", distance: "cosine", description: "" };
    },
    async create(event) {
      this.clearErrors();
      if (!event.target.reportValidity()) return;
      const body = dropEmpty({ ...clone(this.form), backend: { type: this.form.backend } });
      this.busy = true;
      try {
        const { data } = await api("/admin/knowledge-bases", { method: "POST", body });
        notify(`Knowledge base ${data.id} created.`);
        this.creating = false;
        await this.load();
      } catch (error) {
        this.showError(error);
      } finally {
        this.busy = false;
      }
    },
    async remove(kb) {
      if (!confirm(`Delete knowledge base ${kb.id} and all of its documents?`)) return;
      await api(`/admin/knowledge-bases/${encodeURIComponent(kb.id)}`, { method: "DELETE" }).catch((e) => notify(e.message));
      if (this.selected?.id === kb.id) this.selected = null;
      await this.load();
    },
    async open(kb) {
      const { data } = await api(`/admin/knowledge-bases/${encodeURIComponent(kb.id)}`);
      this.selected = data;
      this.hits = null;
      this.upload = null;
      this.docCursors = [null];
      await this.loadDocuments(0);
    },
    async loadDocuments(page = this.docPage) {
      this.docError = "";
      try {
        if (this.docFilter.trim()) JSON.parse(this.docFilter);
      } catch (_error) {
        this.docError = "The filter must be JSON, e.g. {\"field\": \"lang\", \"operator\": \"eq\", \"value\": \"en\"}.";
        return;
      }
      try {
        const { data } = await api(`/v1/knowledge-bases/${encodeURIComponent(this.selected.id)}/documents`
          + query({ limit: 20, after: this.docCursors[page], filter: this.docFilter.trim() }));
        this.documents = data.data;
        this.docHasMore = data.has_more;
        this.docCursors[page + 1] = data.last_id;
        this.docPage = page;
      } catch (error) {
        this.docError = error.message;
      }
    },
    async runSearch() {
      this.searchError = "";
      const body = { query: this.search.query, top_k: Number(this.search.top_k), mode: this.search.mode };
      if (this.search.threshold !== "") body.similarity_threshold = Number(this.search.threshold);
      try {
        if (this.search.filter.trim()) body.filter = JSON.parse(this.search.filter);
      } catch (_error) {
        this.searchError = "The filter must be JSON.";
        return;
      }
      try {
        const { data } = await api(`/v1/knowledge-bases/${encodeURIComponent(this.selected.id)}/search`, { method: "POST", body });
        this.hits = data.data;
      } catch (error) {
        this.searchError = error.message;
      }
    },
    async ingest(event) {
      this.uploadError = "";
      const files = event.target.elements.files.files;
      if (!files.length) {
        this.uploadError = "Choose one or more files.";
        return;
      }
      const body = new FormData();
      for (const file of files) body.append("file", file, file.name);
      try {
        const { data } = await api(`/v1/knowledge-bases/${encodeURIComponent(this.selected.id)}/ingest?async=true`, { method: "POST", body });
        this.upload = data;
        this.watchUpload();
      } catch (error) {
        this.uploadError = error.message;
      }
    },
    async watchUpload() {
      const { data } = await api(`/v1/operations/${encodeURIComponent(this.upload.operation_id)}`);
      this.upload = data;
      if (["pending", "running"].includes(data.status)) {
        this.timer = setTimeout(() => this.watchUpload(), 500);
      } else {
        await this.open(this.selected);
        this.upload = data;
      }
    },
  }));

  Alpine.data("workflowsView", () => ({
    ...pagedList("/admin/workflows"),
    ...versionHistory("/admin/workflows"),
    ...inputDelivery(),
    editing: null, text: "", problems: [], saveError: "", busy: false, selected: null,
    inputs: {}, runAsync: true, run: null, runError: "", timer: null,
    async init() {
      await this.load(0);
    },
    destroy() {
      clearTimeout(this.timer);
    },
    startNew() {
      this.editing = "new";
      this.text = pretty(WORKFLOW_EXAMPLE);
      this.problems = [];
    },
    startEdit(workflow) {
      const { created_at, updated_at, version, ...definition } = clone(workflow);
      this.editing = workflow.id;
      this.editingVersion = version;
      this.text = pretty(definition);
      this.problems = [];
    },
    async save() {
      this.problems = [];
      let body;
      try {
        body = JSON.parse(this.text);
      } catch (error) {
        this.problems = [{ path: "", line: null, message: `Not JSON: ${error.message}` }];
        return;
      }
      this.busy = true;
      try {
        const { data } = await this.store(this.editing, body, this.editingVersion);
        notify(`Workflow ${data.id} saved (version ${data.version}).`);
        this.editing = null;
        await this.load();
      } catch (error) {
        this.problems = this.problemsOf(error);
      } finally {
        this.busy = false;
      }
    },
    // The 400 lists every problem joined by "; ", each "path: message" (param: the first path).
    problemsOf(error) {
      return error.message.split("; ").map((part) => {
        const found = /^([A-Za-z_][\w.[\]-]*): (.*)$/s.exec(part);
        const path = found ? found[1] : (error.param || "");
        return { path, message: found ? found[2] : part, line: lineOf(this.text, path) };
      });
    },
    async remove(workflow) {
      if (!confirm(`Delete workflow ${workflow.id}?`)) return;
      await api(`/admin/workflows/${encodeURIComponent(workflow.id)}`, { method: "DELETE" }).catch((e) => notify(e.message));
      if (this.selected?.id === workflow.id) this.selected = null;
      await this.load();
    },
    async open(workflow) {
      this.selected = workflow;
      this.run = null;
      this.runError = "";
      this.inputs = Object.fromEntries(Object.entries(this.fields()).map(([name, f]) => [name, f.type === "boolean" ? false : ""]));
      await this.loadVersions(workflow);
    },
    fields() {
      const schema = this.selected?.input_schema || {};
      const required = new Set(schema.required || []);
      return Object.fromEntries(Object.entries(schema.properties || {}).map(([name, property]) =>
        [name, { type: property.type || "string", required: required.has(name), description: property.description || "" }]));
    },
    executionInput() {
      const input = {};
      for (const [name, field] of Object.entries(this.fields())) {
        const raw = this.inputs[name];
        if (raw === "" || raw === undefined) continue;
        if (field.type === "number" || field.type === "integer") input[name] = Number(raw);
        else if (field.type === "object" || field.type === "array") input[name] = JSON.parse(raw);
        else input[name] = raw;
      }
      return input;
    },
    async execute(event) {
      this.runError = "";
      if (!event.target.reportValidity()) return;
      let input;
      try {
        input = this.executionInput();
      } catch (_error) {
        this.runError = "Object and list fields take JSON.";
        return;
      }
      const path = `/v1/workflows/${encodeURIComponent(this.selected.id)}/execute${this.runAsync ? "?async=true" : ""}`;
      try {
        const { data, headers } = await api(path, { method: "POST", body: { input } });
        if (this.runAsync) {
          this.run = { operation: data, answer: null };
          this.watchRun();
        } else {
          this.run = { operation: null, answer: data, runUrl: runUrl(data.run_id, headers.get("x-pmp-run-url")) };
        }
      } catch (error) {
        this.runError = error.message;
      }
    },
    async watchRun() {
      const id = this.run.operation.operation_id;
      const { data } = await api(`/v1/operations/${encodeURIComponent(id)}`);
      this.run = { operation: data, answer: data.result || null };
      if (["pending", "running"].includes(data.status)) this.timer = setTimeout(() => this.watchRun(), 700);
    },
    steps() {
      return this.run?.answer?.steps || [];
    },
    waiting() {
      return this.run?.operation?.progress?.waiting_for_input || [];
    },
    async answer(step) {
      const delivered = await this.deliverInput(this.run.operation.operation_id, step.name);
      if (delivered) {
        clearTimeout(this.timer);
        this.run = { operation: delivered, answer: delivered.result || null };
        this.watchRun();
      }
    },
    runLink() {
      if (!this.run) return null;
      if (this.run.runUrl) return this.run.runUrl;
      return runUrl(this.run.operation?.operation_id || this.run.answer?.run_id);
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
