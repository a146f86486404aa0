// Views about calls and runs: playground, operations, dashboard, a key's own usage.
"use strict";

// Reads an SSE body of OpenAI chat chunks; calls onChunk(chunk) for each `data:` JSON.
async function readChatStream(response, onChunk) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        onChunk(JSON.parse(data));
      }
    }
  }
}

// Prometheus text: the sum of one counter's samples, split by whether `outcome` is "ok".
function chatCounts(text) {
  let ok = 0;
  let failed = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith("pmp_chat_requests_total{")) continue;
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (line.includes('outcome="ok"')) ok += value;
    else failed += value;
  }
  return { ok, failed };
}

document.addEventListener("alpine:init", () => {
  Alpine.data("playgroundView", () => ({
    ...formState(["model", "messages", "temperature", "max_tokens", "prompt_id"]),
    models: [], prompts: [], model: "", systemMode: "text", system: "", promptId: "",
    promptVariables: "{}", temperature: "", maxTokens: 256, stream: true, input: "",
    turns: [], facts: null, controller: null, streaming: false,
    async init() {
      const { data } = await api("/v1/models");
      this.models = data.data.map((m) => m.id);
      this.model = this.models[0] || "";
      if (Alpine.store("pmp").session.admin) {
        api("/admin/prompts?limit=100").then(({ data: page }) => { this.prompts = page.data; })
          .catch(() => { this.prompts = []; });
      }
    },
    messages() {
      const messages = [];
      if (this.systemMode === "text" && this.system.trim()) {
        messages.push({ role: "system", content: this.system });
      } else if (this.systemMode === "prompt" && this.promptId) {
        messages.push({ role: "system", prompt_id: this.promptId, variables: JSON.parse(this.promptVariables || "{}") });
      }
      return messages.concat(this.turns.filter((t) => t.content !== "" || t.role === "user")
        .map(({ role, content }) => ({ role, content })));
    },
    body() {
      const body = { model: this.model, messages: this.messages(), stream: this.stream };
      if (this.temperature !== "") body.temperature = Number(this.temperature);
      if (this.maxTokens !== "") body.max_tokens = Number(this.maxTokens);
      if (this.stream) body.stream_options = { include_usage: true };
      return body;
    },
    readFacts(headers, started) {
      const runId = headers.get("x-pmp-run-id");
      return { servedBy: headers.get("x-pmp-served-by"), attempts: headers.get("x-pmp-attempts"),
        fallbacks: headers.get("x-pmp-fallbacks"), cache: headers.get("x-pmp-cache"), runId,
        runUrl: runUrl(runId, headers.get("x-pmp-run-url")), ms: Math.round(performance.now() - started),
        firstTokenMs: null, chunks: 0, usage: null };
    },
    async send(event) {
      this.clearErrors();
      if (!event.target.reportValidity()) return;
      if (this.systemMode === "prompt") {
        try { JSON.parse(this.promptVariables || "{}"); } catch (_error) {
          this.errors.prompt_id = "Variables must be a JSON object.";
          return;
        }
      }
      this.turns.push({ role: "user", content: this.input });
      this.input = "";
      const reply = { role: "assistant", content: "" };
      const body = this.body();
      this.turns.push(reply);
      const answer = this.turns[this.turns.length - 1];
      this.streaming = true;
      this.controller = new AbortController();
      const started = performance.now();
      try {
        const response = await api("/v1/chat/completions", { method: "POST", body, raw: true, signal: this.controller.signal });
        this.facts = this.readFacts(response.headers, started);
        if (!this.stream) {
          const data = await response.json();
          answer.content = data.choices[0].message.content ?? "";
          this.facts.usage = data.usage;
        } else {
          await readChatStream(response, (chunk) => {
            if (chunk.error) throw new ApiError(0, chunk.error);
            const delta = chunk.choices?.[0]?.delta?.content;
            if (delta) {
              if (this.facts.firstTokenMs === null) this.facts.firstTokenMs = Math.round(performance.now() - started);
              answer.content += delta;
              this.facts.chunks += 1;
            }
            if (chunk.usage) this.facts.usage = chunk.usage;
          });
        }
        this.facts.ms = Math.round(performance.now() - started);
      } catch (error) {
        if (error.name === "AbortError") answer.content += " [stopped]";
        else {
          this.turns.splice(this.turns.indexOf(answer), 1);
          this.showError(error);
        }
      } finally {
        this.streaming = false;
        this.controller = null;
      }
    },
    stop() {
      this.controller?.abort();
    },
    clear() {
      this.turns = [];
      this.facts = null;
      this.clearErrors();
    },
  }));

  Alpine.data("operationsView", () => ({
    ...inputDelivery(),
    items: [], status: "", type: "", cursors: [null], page: 0, hasMore: false, listError: "",
    selected: null, timer: null, cancelling: null,
    async init() {
      await this.load(0);
    },
    destroy() {
      clearTimeout(this.timer);
    },
    async load(page = this.page) {
      try {
        const { data } = await api("/v1/operations" + query({
          status: this.status, type: this.type, limit: 20, after: this.cursors[page] }));
        this.items = data.data;
        this.hasMore = data.has_more;
        this.cursors[page + 1] = data.next_after;
        this.page = page;
        this.listError = "";
      } catch (error) {
        this.listError = error.message;
      }
    },
    refilter() {
      this.cursors = [null];
      this.load(0);
    },
    link(operation) {
      return runUrl(operation.operation_id);
    },
    async open(operation) {
      clearTimeout(this.timer);
      const { data } = await api(`/v1/operations/${encodeURIComponent(operation.operation_id)}`);
      this.selected = data;
      if (["pending", "running"].includes(data.status)) {
        this.timer = setTimeout(() => this.open(data), 1000);
      }
    },
    async cancel(operation) {
      if (!confirm(`Cancel operation ${operation.operation_id}?`)) return;
      this.cancelling = operation.operation_id;
      try {
        const { data } = await api(`/v1/operations/${encodeURIComponent(operation.operation_id)}`, { method: "DELETE" });
        notify(`Operation ${data.operation_id} is ${data.status}.`);
        this.selected = data;
        await this.load();
      } catch (error) {
        notify(error.message);
      } finally {
        this.cancelling = null;
      }
    },
    waiting(operation) {
      return operation.progress?.waiting_for_input || [];
    },
    async answer(step) {
      const delivered = await this.deliverInput(this.selected.operation_id, step.name);
      if (delivered) await this.open(delivered);
    },
    progress(operation) {
      const p = operation.progress;
      if (!p || !p.documents_total) return null;
      return { value: p.documents_done, max: p.documents_total };
    },
  }));

  Alpine.data("dashboardView", () => ({
    ready: null, counts: [], breakers: [], runs: [], rates: null, metricsError: "", last: null, timer: null,
    async init() {
      await Promise.all([this.loadReady(), this.loadCounts(), this.loadRuns(), this.sample()]);
      this.timer = setInterval(() => this.sample(), 5000);
    },
    destroy() {
      clearInterval(this.timer);
    },
    async loadReady() {
      const response = await fetch(PMP_CONFIG.apiBase + "/ready");
      this.ready = await response.json();
    },
    async loadCounts() {
      const kinds = [["Models", "/admin/models"], ["Chains", "/admin/chains"], ["Prompts", "/admin/prompts"],
        ["API keys", "/admin/api-keys"], ["Knowledge bases", "/admin/knowledge-bases"], ["Workflows", "/admin/workflows"]];
      this.counts = await Promise.all(kinds.map(async ([label, path]) => {
        try {
          const { data } = await api(path + "?limit=100");
          return { label, count: data.data.length + (data.has_more ? "+" : "") };
        } catch (_error) {
          return { label, count: "?" };
        }
      }));
      const { data } = await api("/admin/models?limit=100");
      this.breakers = await Promise.all(data.data.slice(0, 30).map(async (model) => {
        const health = await api(`/admin/models/${encodeURIComponent(model.id)}/health`);
        return { id: model.id, ...health.data.circuit_breaker };
      }));
    },
    async loadRuns() {
      const { data } = await api("/v1/operations?limit=10");
      this.runs = data.data;
    },
    async sample() {
      try {
        const response = await api("/metrics", { raw: true });
        const now = { at: performance.now(), ...chatCounts(await response.text()) };
        if (this.last) {
          const minutes = (now.at - this.last.at) / 60000;
          const total = now.ok + now.failed - this.last.ok - this.last.failed;
          const failed = now.failed - this.last.failed;
          this.rates = { perMinute: (total / minutes).toFixed(1), errorRate: total ? `${Math.round((failed / total) * 100)}%` : "0%",
            ok: now.ok, failed: now.failed };
        } else {
          this.rates = { perMinute: "…", errorRate: "…", ok: now.ok, failed: now.failed };
        }
        this.last = now;
        this.metricsError = "";
      } catch (error) {
        this.metricsError = `Metrics unavailable: ${error.message}`;
      }
    },
    link(operation) {
      return runUrl(operation.operation_id);
    },
  }));

  Alpine.data("usageView", () => ({
    days: [], models: [], error: "",
    async init() {
      try {
        const [days, models] = await Promise.all([api("/ui/usage?group_by=day"), api("/ui/usage?group_by=model")]);
        this.days = days.data.data;
        this.models = models.data.data;
      } catch (error) {
        this.error = error.message;
      }
    },
    bar(rows, row) {
      const most = Math.max(1, ...rows.map((r) => r.requests || 0));
      return `${Math.round(((row.requests || 0) / most) * 100)}%`;
    },
  }));
});
