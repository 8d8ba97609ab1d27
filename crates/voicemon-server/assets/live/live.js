// voicemon live page: subscribes to /metrics/stream and draws each snapshot.
// Plain JavaScript, no build step; the message schema is in docs/live.md.
(function () {
  "use strict";

  const KEY_STORAGE = "voicemon.api_key";
  const HOUR_S = 3600;
  const SLO_MS = 800;
  const params = new URLSearchParams(location.search);

  const state = {
    key: sessionStorage.getItem(KEY_STORAGE),
    tenant: params.get("tenant") || "",
    component: params.get("component") || "turn_e2e",
    interval: Number(params.get("interval")) || 5,
    socket: null,
    scope: null,
    retryMs: 1000,
    series: new Map(), // minute start (unix s) → [p50, p95, p99]
    alerts: new Map(), // fingerprint → alert
    fresh: new Set(),
    chart: null,
    history: 0, // counts history loads, so a stale answer is ignored
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== undefined && value !== null) node.setAttribute(name, value);
    }
    for (const child of children) {
      if (child !== undefined && child !== null) node.append(child);
    }
    return node;
  }

  function setText(id, text) {
    $(id).textContent = text;
  }

  const ms = (v) => (v === null || v === undefined ? "—" : `${Math.round(v)} ms`);
  const usd = (amount) => {
    if (!amount) return "—";
    const value = Number(amount.usd);
    return value >= 1 ? `$${value.toFixed(2)}` : `$${value.toFixed(4)}`;
  };
  const percent = (rate) => (rate === null || rate === undefined ? "—" : `${(rate * 100).toFixed(1)} %`);
  const count = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString());

  function setConnection(label, stateName) {
    const badge = $("connection");
    badge.textContent = label;
    badge.dataset.state = stateName;
  }

  function showMessage(text) {
    const box = $("message");
    box.textContent = text || "";
    box.hidden = !text;
  }

  // ------------------------------------------------------------------ WebSocket

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/metrics/stream`);
    state.socket = socket;
    setConnection("connecting…", "connecting");
    socket.onopen = () => {
      state.retryMs = 1000;
    };
    socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (err) {
        showMessage(`voicemon sent a message this page cannot read: ${err}`);
        return;
      }
      handle(message);
    };
    socket.onclose = (event) => {
      if (state.socket !== socket) return;
      state.socket = null;
      if (event.code === 4401 || event.code === 4403) {
        forgetKey(event.reason || "the API key was refused");
        return;
      }
      setConnection("reconnecting…", "reconnecting");
      setTimeout(connect, state.retryMs);
      state.retryMs = Math.min(state.retryMs * 2, 30000);
    };
  }

  function send(message) {
    if (state.socket && state.socket.readyState === WebSocket.OPEN) {
      state.socket.send(JSON.stringify(message));
    }
  }

  function subscribe() {
    const message = { type: "subscribe", tenant_id: state.tenant || null, interval_s: state.interval };
    if (state.key) message.api_key = state.key;
    send(message);
  }

  function handle(message) {
    switch (message.type) {
      case "hello":
        if (message.auth === "required" && !state.key) {
          showKeyForm("");
          setConnection("needs a key", "signed-out");
          return;
        }
        subscribe();
        break;
      case "subscribed":
        onSubscribed(message);
        break;
      case "snapshot":
        if (inScope(message)) render(message);
        break;
      case "alert":
        onAlert(message);
        break;
      case "error":
        showMessage(`voicemon: ${message.message}`);
        break;
      default:
        break;
    }
  }

  // ------------------------------------------------------------------ API key

  function showKeyForm(reason) {
    $("key-form").hidden = false;
    setText("key-error", reason || "");
    $("key").focus();
  }

  function forgetKey(reason) {
    sessionStorage.removeItem(KEY_STORAGE);
    state.key = null;
    setConnection("signed out", "signed-out");
    showKeyForm(reason);
  }

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key").value.trim();
    if (!key) return;
    state.key = key;
    sessionStorage.setItem(KEY_STORAGE, key);
    $("key").value = "";
    $("key-form").hidden = true;
    if (state.socket) state.socket.close();
    state.socket = null;
    connect();
  });

  // ------------------------------------------------------------------ subscription

  function onSubscribed(message) {
    const previous = state.scope;
    state.scope = message;
    showMessage("");
    setConnection("live", "live");
    setText("window-minutes", String(Math.round(message.window_s / 60)));
    fillTenants(message);
    const tenantChanged = !previous || (previous.tenant_id || "") !== (message.tenant_id || "");
    if (tenantChanged) {
      state.series.clear();
      state.alerts.clear();
      loadHistory();
    }
  }

  function inScope(snapshot) {
    const scope = state.scope;
    return (
      scope !== null &&
      (snapshot.tenant_id || "") === (scope.tenant_id || "") &&
      snapshot.interval_s === scope.interval_s
    );
  }

  function fillTenants(message) {
    const select = $("tenant");
    const wanted = message.tenant_id || "";
    const options = message.all_tenants ? [["", "All tenants"]] : [];
    const names = new Set(message.tenants || []);
    if (wanted) names.add(wanted);
    for (const name of [...names].sort()) options.push([name, name]);
    select.replaceChildren(...options.map(([value, label]) => el("option", { value }, label)));
    select.value = wanted;
    select.disabled = !message.all_tenants;
  }

  $("tenant").addEventListener("change", (event) => {
    state.tenant = event.target.value;
    const url = new URL(location.href);
    if (state.tenant) url.searchParams.set("tenant", state.tenant);
    else url.searchParams.delete("tenant");
    history.replaceState(null, "", url);
    subscribe();
    if (explorer.from !== null) {
      explorer.tenant = state.tenant;
      showCalls(true);
    }
  });

  $("component").addEventListener("change", (event) => {
    state.component = event.target.value;
    state.series.clear();
    buildChart();
    loadHistory();
  });

  // ------------------------------------------------------------------ latency chart

  async function loadHistory() {
    const load = ++state.history;
    const query = new URLSearchParams({ component: state.component, step: "1m" });
    const tenant = state.scope ? state.scope.tenant_id : state.tenant;
    if (tenant) query.set("tenant_id", tenant);
    const headers = state.key ? { Authorization: `Bearer ${state.key}` } : {};
    try {
      const response = await fetch(`/metrics/latency?${query}`, { headers });
      if (!response.ok) {
        showMessage(`latency history: ${response.status} ${response.statusText}`);
        return;
      }
      const answer = await response.json();
      if (load !== state.history) return;
      for (const step of answer.steps) {
        const minute = Date.parse(step.start) / 1000;
        if (!state.series.has(minute) || step.count > 0) state.series.set(minute, [step.p50, step.p95, step.p99]);
      }
      drawChart();
    } catch (err) {
      showMessage(`latency history could not be read: ${err}`);
    }
  }

  function chartSize() {
    const box = $("latency-chart");
    const width = Math.max(260, box.clientWidth);
    const height = window.innerWidth < 600 ? 200 : 280;
    return { width, height };
  }

  function buildChart() {
    const box = $("latency-chart");
    if (state.chart) state.chart.destroy();
    box.replaceChildren();
    const slo = state.component === "turn_e2e";
    const series = [
      {},
      { label: "P50", stroke: "#3b82f6", width: 2, value: (u, v) => ms(v) },
      { label: "P95", stroke: "#f59e0b", width: 2, value: (u, v) => ms(v) },
      { label: "P99", stroke: "#ef4444", width: 2, value: (u, v) => ms(v) },
    ];
    if (slo) series.push({ label: "SLO P95", stroke: "#888", width: 1, dash: [6, 4], points: { show: false } });
    const options = {
      ...chartSize(),
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(100, max * 1.1)] } },
      axes: [{}, { label: "ms", size: 56 }],
      series,
      // A drag across the chart (or a click on a minute) lists that window's slowest calls.
      cursor: { drag: { x: true, y: false, setScale: false } },
      hooks: {
        setSelect: [onChartSelect],
        ready: [(u) => u.over.addEventListener("click", () => onChartClick(u))],
      },
    };
    state.chart = new uPlot(options, emptyData(series.length), box);
  }

  function onChartSelect(u) {
    if (u.select.width < 3) return;
    const from = u.posToVal(u.select.left, "x");
    const to = u.posToVal(u.select.left + u.select.width, "x");
    state.dragged = true;
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    openExplorer(from * 1000, to * 1000);
  }

  function onChartClick(u) {
    if (state.dragged) {
      state.dragged = false;
      return;
    }
    const minute = u.cursor.idx === null || u.cursor.idx === undefined ? undefined : u.data[0][u.cursor.idx];
    if (minute !== undefined) openExplorer(minute * 1000, (minute + 60) * 1000);
  }

  function emptyData(length) {
    return Array.from({ length }, () => []);
  }

  function drawChart() {
    if (!state.chart) return;
    const horizon = Date.now() / 1000 - HOUR_S - 60;
    for (const minute of state.series.keys()) {
      if (minute < horizon) state.series.delete(minute);
    }
    const minutes = [...state.series.keys()].sort((a, b) => a - b);
    const data = [minutes, [], [], []];
    let points = 0;
    for (const minute of minutes) {
      const [p50, p95, p99] = state.series.get(minute);
      data[1].push(p50);
      data[2].push(p95);
      data[3].push(p99);
      if (p95 !== null && p95 !== undefined) points += 1;
    }
    if (state.component === "turn_e2e") data.push(minutes.map(() => 800));
    state.chart.setData(data);
    $("latency-chart").dataset.points = String(points);
  }

  window.addEventListener("resize", () => {
    if (state.chart) state.chart.setSize(chartSize());
  });

  // ------------------------------------------------------------------ rendering

  function render(snapshot) {
    const updated = $("updated");
    updated.textContent = new Date(snapshot.computed_at_ms).toLocaleTimeString();
    updated.dateTime = snapshot.computed_at;
    updated.dataset.seq = String(snapshot.seq);
    renderLatency(snapshot.latency);
    renderCalls(snapshot.calls);
    renderCost(snapshot.cost);
    renderHealth(snapshot.health);
    state.alerts.clear();
    for (const alert of [...snapshot.alerts.firing, ...snapshot.alerts.pending]) {
      state.alerts.set(alert.fingerprint, alert);
    }
    renderAlerts();
  }

  function renderLatency(latency) {
    const rows = [];
    for (const [name, view] of Object.entries(latency.components)) {
      rows.push(el("tr", {}, el("td", {}, name), el("td", {}, ms(view.p50)), el("td", {}, ms(view.p95)),
        el("td", {}, ms(view.p99)), el("td", {}, count(view.count))));
    }
    $("components").tBodies[0].replaceChildren(...rows);
    const view = latency.components[state.component];
    if (!view) return;
    setText("lat-p50", ms(view.p50));
    setText("lat-p95", ms(view.p95));
    setText("lat-p99", ms(view.p99));
    setText("lat-count", count(view.count));
    for (const step of view.minutes) {
      state.series.set(Date.parse(step.start) / 1000, [step.p50, step.p95, step.p99]);
    }
    drawChart();
  }

  function renderCalls(calls) {
    setText("calls-in-progress", count(calls.in_progress));
    setText("calls-ended", count(calls.ended));
    setText("calls-success", percent(calls.success_rate));
    setText("calls-failed", `${count(calls.failed)} · ${count(calls.abandoned)}`);
    $("failure-reasons").replaceChildren(
      ...calls.failure_reasons.map((r) => el("li", {}, el("span", {}, r.reason), el("span", { class: "muted" }, `× ${r.count}`))),
    );
  }

  function renderCost(cost) {
    setText("cost-per-minute", usd(cost.per_minute));
    setText("cost-per-call", usd(cost.per_call));
    setText("cost-spend", usd(cost.spend_per_minute));
    setText("cost-total", `${usd(cost.total)} · ${count(cost.calls)} calls`);
  }

  function badge(status) {
    return el("span", { class: "badge", "data-status": status }, status.replace("_", " "));
  }

  function renderHealth(health) {
    const status = $("health-status");
    status.textContent = health.status;
    status.dataset.status = health.status;
    const workers = health.workers;
    setText("health-workers", `${workers.up} · ${workers.stale} · ${workers.down}`);
    setText("health-active", count(workers.active_calls));
    setText("health-database", health.database.reachable ? ms(health.database.round_trip_ms) : "unreachable");
    const redis = health.redis;
    setText("health-redis", !redis.configured ? "off" : redis.reachable === false ? "unreachable" : percent(redis.hit_rate));
    $("providers").replaceChildren(
      ...health.providers.map((p) =>
        el("li", {}, badge(p.status), el("span", {}, p.provider),
          el("span", { class: "muted" }, `${p.errors_last_minute}/${p.requests_last_minute} errors · P95 ${ms(p.p95_ms)}`))),
    );
    const breakers = health.breakers.map((b) =>
      el("li", {}, badge(b.state), el("span", {}, b.breaker), el("span", { class: "muted" }, `${b.tenant_id} · ${Math.round(b.for_seconds)} s`)));
    $("breakers").replaceChildren(...(breakers.length ? breakers : [el("li", { class: "muted" }, "none")]));
    const attention = workers.attention.map((w) =>
      el("li", {}, badge(w.status), el("span", {}, w.worker_id), el("span", { class: "muted" }, `${w.tenant_id} · memory ${w.memory_percent} %`)));
    const reasons = health.reasons.map((r) => el("li", {}, badge(r.severity), el("span", {}, r.message)));
    const more = health.reasons_total > health.reasons.length ? [el("li", { class: "muted" }, `and ${health.reasons_total - health.reasons.length} more`)] : [];
    const all = [...reasons, ...more, ...attention];
    $("reasons").replaceChildren(...(all.length ? all : [el("li", { class: "muted" }, "nothing is sick")]));
  }

  function onAlert(message) {
    for (const change of message.changes) {
      if (change.change === "firing" || change.change === "pending") {
        state.alerts.set(change.fingerprint, change);
        state.fresh.add(change.fingerprint);
      } else {
        state.alerts.delete(change.fingerprint);
      }
    }
    renderAlerts();
  }

  function renderAlerts() {
    const alerts = [...state.alerts.values()].sort((a, b) =>
      a.state === b.state ? a.rule.localeCompare(b.rule) : a.state === "firing" ? -1 : 1);
    setText("alert-count", String(alerts.length));
    $("alert-count").dataset.status = alerts.some((a) => a.state === "firing") ? "firing" : "ok";
    const items = alerts.map((alert) => {
      const labels = Object.entries(alert.labels)
        .filter(([name]) => !["alertname", "metric", "severity"].includes(name))
        .map(([name, value]) => `${name}=${value}`)
        .join(" ");
      const summary = (alert.annotations && alert.annotations.summary) || "";
      const since = alert.firing_since || alert.active_since;
      const item = el("li", { "data-fingerprint": alert.fingerprint, "data-state": alert.state },
        el("div", { class: "title" }, badge(alert.state), el("span", {}, alert.rule),
          el("span", { class: "muted" }, `since ${new Date(since).toLocaleTimeString()}`)),
        summary ? el("div", {}, summary) : null,
        el("div", { class: "labels" }, labels));
      const tenant = alert.labels.tenant_id;
      if (tenant) {
        // The calls of the alert's tenant since a little before it became active.
        const link = el("a", { href: "#", class: "alert-calls" }, "slowest calls");
        link.addEventListener("click", (event) => {
          event.preventDefault();
          openExplorer(Date.parse(since) - 10 * 60 * 1000, Date.now(), tenant);
        });
        item.append(el("div", {}, link));
      }
      if (state.fresh.has(alert.fingerprint)) item.classList.add("fresh");
      return item;
    });
    state.fresh.clear();
    $("alerts").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "no active alerts")]));
  }

  // ------------------------------------------------------------------ call explorer
  // From the latency chart (a clicked minute or a dragged range) or an alert, the slowest
  // calls of that window (GET /calls), then one call (GET /calls/{id}). The URL holds the
  // tenant, the window and the call, so a link opens the same view.

  const explorer = { tenant: "", from: null, to: null, sort: "worst_turn", cursor: null, load: 0, call: null };

  function apiHeaders() {
    return state.key ? { Authorization: `Bearer ${state.key}` } : {};
  }

  async function getJson(path) {
    const response = await fetch(path, { headers: apiHeaders() });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const message = body.error ? body.error.message : response.statusText;
      throw new Error(`${response.status}: ${message}`);
    }
    return body;
  }

  // The tenant whose calls are shown: the one a link or an alert named, else the page's.
  function explorerTenant() {
    return explorer.tenant || (state.scope && state.scope.tenant_id) || state.tenant || "";
  }

  function setUrl(changes) {
    const url = new URL(location.href);
    for (const [name, value] of Object.entries(changes)) {
      if (value === null || value === undefined || value === "") url.searchParams.delete(name);
      else url.searchParams.set(name, value);
    }
    history.pushState(null, "", url);
  }

  const iso = (ms) => new Date(ms).toISOString();
  const clock = (text) => new Date(text).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const seconds = (s) => (s === null || s === undefined ? "—" : s >= 90 ? `${(s / 60).toFixed(1)} min` : `${Math.round(s)} s`);

  // Opens the calls of [fromMs, toMs) of the tenant shown (or `tenant`).
  function openExplorer(fromMs, toMs, tenant) {
    explorer.tenant = tenant || explorerTenant();
    if (explorer.tenant && explorer.tenant !== ((state.scope && state.scope.tenant_id) || "")) {
      state.tenant = explorer.tenant;
      subscribe();
    }
    explorer.from = Math.floor(fromMs);
    explorer.to = Math.ceil(toMs);
    explorer.call = null;
    setUrl({ tenant: explorer.tenant, from: iso(explorer.from), to: iso(explorer.to), sort: explorer.sort, call: null });
    showCalls(true);
    $("explorer-card").scrollIntoView({ block: "start" });
  }

  async function showCalls(fresh) {
    $("explorer-card").hidden = false;
    $("call-card").hidden = true;
    const tenant = explorerTenant();
    setText("explorer-window", `${new Date(explorer.from).toLocaleString()} – ${new Date(explorer.to).toLocaleTimeString()}`);
    const body = $("explorer-calls").tBodies[0];
    if (fresh) {
      explorer.cursor = null;
      body.replaceChildren();
    }
    if (!tenant) {
      setText("explorer-status", "Choose a tenant to list its calls.");
      $("explorer-more").hidden = true;
      return;
    }
    const load = ++explorer.load;
    const query = new URLSearchParams({ tenant_id: tenant, from: iso(explorer.from), to: iso(explorer.to), sort: explorer.sort, limit: "25" });
    if (explorer.cursor) query.set("cursor", explorer.cursor);
    setText("explorer-status", "loading…");
    try {
      const answer = await getJson(`/calls?${query}`);
      if (load !== explorer.load) return;
      body.append(...answer.calls.map(callRow));
      explorer.cursor = answer.next_cursor || null;
      $("explorer-more").hidden = !explorer.cursor;
      setText("explorer-status", answer.matching ? `${answer.matching} calls began in this window` : "No call began in this window.");
      $("explorer-card").dataset.rows = String(body.rows.length);
    } catch (err) {
      setText("explorer-status", `calls could not be read: ${err.message}`);
    }
  }

  function callRow(call) {
    const worst = call.worst_turn;
    const link = el("a", { href: "#", "data-call": call.call_id }, call.call_id);
    link.addEventListener("click", (event) => {
      event.preventDefault();
      openCall(call.call_id);
    });
    const slow = worst && worst.e2e_ms > SLO_MS;
    return el("tr", { "data-call": call.call_id },
      el("td", {}, link), el("td", {}, call.agent_id || "—"), el("td", {}, clock(call.start)),
      el("td", {}, seconds(call.duration_s)), el("td", {}, badge(call.status)), el("td", {}, usd(call.cost)),
      el("td", {}, count(call.turns)), el("td", {}, ms(call.p95_e2e_ms)),
      el("td", { class: slow ? "slow" : "" }, worst ? `#${worst.turn_index} · ${ms(worst.e2e_ms)}` : "—"),
      el("td", {}, worst && worst.slowest_component ? `${worst.slowest_component} ${ms(worst.slowest_component_ms)}` : "—"));
  }

  function openCall(callId) {
    explorer.call = callId;
    setUrl({ tenant: explorerTenant(), call: callId });
    showCall();
  }

  const SEGMENTS = [
    ["stt | eou", "seg-listen", (t) => Math.max(t.stt_ms || 0, t.eou_ms || 0)],
    ["llm_ttft", "seg-llm", (t) => t.llm_ttft_ms || 0],
    ["tts_ttfb", "seg-tts", (t) => t.tts_ttfb_ms || 0],
  ];

  async function showCall() {
    const tenant = explorerTenant();
    $("call-card").hidden = false;
    $("explorer-card").hidden = explorer.from === null;
    setText("call-id", explorer.call);
    setText("call-status-line", "loading…");
    try {
      const call = await getJson(`/calls/${encodeURIComponent(explorer.call)}?${new URLSearchParams({ tenant_id: tenant })}`);
      renderCall(call);
      $("call-card").scrollIntoView({ block: "start" });
    } catch (err) {
      setText("call-status-line", `the call could not be read: ${err.message}`);
    }
  }

  function renderCall(call) {
    setText("call-status-line", `${call.tenant_id} · ${call.agent_id || "no agent"}${call.objective ? ` · ${call.objective}` : ""}`);
    const facts = [
      ["status", call.ended_reason ? `${call.status} (${call.ended_reason})` : call.status],
      ["start", new Date(call.start).toLocaleString()],
      ["duration", seconds(call.duration_s)],
      ["cost", usd(call.cost.total)],
      ["turns", count(call.turns.length)],
      ["P95 turn", ms(call.p95_e2e_ms)],
    ];
    $("call-facts").replaceChildren(...facts.map(([name, value]) => el("div", {}, el("dt", {}, name), el("dd", {}, value))));
    renderTurns(call.turns);
    $("call-lines").tBodies[0].replaceChildren(...call.cost.lines.map((line) =>
      el("tr", {}, el("td", {}, clock(line.time)), el("td", {}, line.component), el("td", {}, line.provider),
        el("td", {}, line.model || "—"), el("td", {}, quantity(line.quantity)),
        el("td", {}, line.unpriced ? el("span", { class: "muted", title: line.unpriced_reason || "" }, "unpriced") : usd(line.cost)))));
    const errors = call.requests.filter((r) => !r.ok).map((r) =>
      el("li", {}, badge("error"), el("span", {}, `${r.provider} ${r.component}`),
        el("span", { class: "muted" }, `${clock(r.time)} · ${r.error || "failed"} · ${ms(r.latency_ms)}`)));
    $("call-errors").replaceChildren(...(errors.length ? errors : [el("li", { class: "muted" }, `no failed request of ${call.requests.length}`)]));
    const context = [
      ...call.breakers.map((b) => [b.time, el("li", {}, badge(b.state), el("span", {}, `breaker ${b.breaker}`), el("span", { class: "muted" }, clock(b.time)))]),
      ...call.alerts.map((a) => [a.time, el("li", {}, badge(a.kind), el("span", {}, a.rule), el("span", { class: "muted" }, clock(a.time)))]),
    ].sort((a, b) => Date.parse(a[0]) - Date.parse(b[0])).map(([, item]) => item);
    $("call-context").replaceChildren(...(context.length ? context : [el("li", { class: "muted" }, "no breaker change or alert while it lasted")]));
  }

  function quantity(q) {
    const parts = [];
    if (q.audio_seconds !== undefined) parts.push(`${Number(q.audio_seconds).toFixed(1)} s audio`);
    if (q.input_tokens !== undefined) parts.push(`${count(q.input_tokens)} in`);
    if (q.cached_input_tokens) parts.push(`${count(q.cached_input_tokens)} cached`);
    if (q.output_tokens !== undefined) parts.push(`${count(q.output_tokens)} out`);
    if (q.characters !== undefined) parts.push(`${count(q.characters)} chars`);
    return parts.join(" · ") || "—";
  }

  // Each turn as a bar of its components (listening: the longer of STT and end of
  // utterance; LLM to first token; TTS to first byte; the rest of end to end), against
  // the 800 ms SLO line.
  function renderTurns(turns) {
    const box = $("call-turns");
    if (!turns.length) {
      box.replaceChildren(el("p", { class: "muted" }, "no turn was recorded"));
      return;
    }
    const widest = Math.max(SLO_MS, ...turns.map((t) => Math.max(t.e2e_ms, SEGMENTS.reduce((sum, [, , of]) => sum + of(t), 0))));
    const scale = widest * 1.08;
    const pct = (value) => `${((value / scale) * 100).toFixed(2)}%`;
    const rows = turns.map((turn) => {
      const parts = SEGMENTS.map(([name, cls, of]) => [name, cls, of(turn)]);
      const known = parts.reduce((sum, [, , value]) => sum + value, 0);
      parts.push(["other", "seg-other", Math.max(0, turn.e2e_ms - known)]);
      const track = el("div", { class: "turn-track" },
        ...parts.filter(([, , value]) => value > 0).map(([name, cls, value]) =>
          el("div", { class: `seg ${cls}`, style: `width:${pct(value)}`, title: `${name} ${ms(value)}`, "data-segment": name })),
        el("div", { class: "slo-line", style: `left:${pct(SLO_MS)}`, title: "SLO 800 ms" }));
      const flags = [turn.interrupted ? "interrupted" : null, turn.tool_calls ? `${turn.tool_calls} tool call${turn.tool_calls > 1 ? "s" : ""}` : null].filter(Boolean).join(" · ");
      return el("div", { class: "turn-row", "data-turn": String(turn.turn_index), "data-slow": String(turn.e2e_ms > SLO_MS) },
        el("span", { class: "turn-label" }, `#${turn.turn_index}`, el("strong", {}, ms(turn.e2e_ms))),
        track,
        el("span", { class: "turn-note muted" }, [turn.slowest_component ? `slowest: ${turn.slowest_component}` : "", flags].filter(Boolean).join(" · ")));
    });
    const legend = el("div", { class: "legend" },
      ...[...SEGMENTS.map(([name, cls]) => [name, cls]), ["other", "seg-other"]].map(([name, cls]) => el("span", {}, el("i", { class: `seg ${cls}` }), name)),
      el("span", {}, el("i", { class: "slo-key" }), "SLO 800 ms"));
    box.replaceChildren(legend, ...rows);
    box.dataset.turns = String(turns.length);
  }

  $("explorer-sort").addEventListener("change", (event) => {
    explorer.sort = event.target.value;
    setUrl({ sort: explorer.sort });
    showCalls(true);
  });
  $("explorer-more").addEventListener("click", () => showCalls(false));
  $("explorer-close").addEventListener("click", () => {
    explorer.from = explorer.to = explorer.call = null;
    explorer.tenant = "";
    setUrl({ from: null, to: null, sort: null, call: null });
    $("explorer-card").hidden = true;
    $("call-card").hidden = true;
  });
  $("call-back").addEventListener("click", (event) => {
    event.preventDefault();
    explorer.call = null;
    setUrl({ call: null });
    $("call-card").hidden = true;
    if (explorer.from !== null) showCalls(true);
  });

  // The view the URL names (on load, and on back / forward).
  function fromUrl() {
    const query = new URLSearchParams(location.search);
    explorer.tenant = query.get("tenant") || "";
    const from = Date.parse(query.get("from") || "");
    const to = Date.parse(query.get("to") || "");
    explorer.sort = query.get("sort") || "worst_turn";
    $("explorer-sort").value = explorer.sort;
    explorer.call = query.get("call");
    if (Number.isFinite(from) && Number.isFinite(to) && from < to) {
      explorer.from = from;
      explorer.to = to;
      if (!explorer.call) showCalls(true);
    } else {
      explorer.from = explorer.to = null;
      $("explorer-card").hidden = true;
    }
    if (explorer.call) showCall();
    else $("call-card").hidden = true;
  }
  window.addEventListener("popstate", fromUrl);

  // ------------------------------------------------------------------ start

  $("component").value = state.component;
  buildChart();
  connect();
  fromUrl();
})();
