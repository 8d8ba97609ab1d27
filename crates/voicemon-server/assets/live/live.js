// voicemon live page: subscribes to /metrics/stream and draws each snapshot.
// Plain JavaScript, no build step; the message schema is in docs/live.md.
(function () {
  "use strict";

  const KEY_STORAGE = "voicemon.api_key";
  const HOUR_S = 3600;
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
    };
    state.chart = new uPlot(options, emptyData(series.length), box);
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
      if (state.fresh.has(alert.fingerprint)) item.classList.add("fresh");
      return item;
    });
    state.fresh.clear();
    $("alerts").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "no active alerts")]));
  }

  // ------------------------------------------------------------------ start

  $("component").value = state.component;
  buildChart();
  connect();
})();
