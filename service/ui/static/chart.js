/* The anomaly timeline (uPlot) from GET /v1/machines/{id}/timeline, its overlays (alert
   spans, silences, baselines, model versions), the classes/events lane, a text
   alternative, and look-and-listen (spectrogram + audio from the audio store). */
"use strict";

window.EarshotChart = (() => {
  const DAY = 86400;
  const state = { data: null, span: DAY, end: null, select: null, plot: null, timeline: null };
  const $ = (id) => document.getElementById(id);
  const iso = (s) => new Date(s * 1000).toISOString().replace(".000", "");
  const sec = (text) => Date.parse(text) / 1000;
  const fmt = (v) => (v === null || v === undefined ? "–" : Number(v).toPrecision(3));

  async function getJson(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`${response.status}`);
    return response.json();
  }

  function bands(u) {
    const t = state.timeline;
    if (!t) return;
    const ctx = u.ctx;
    const { top, height } = u.bbox;
    const band = (start, end, color) => {
      const x0 = u.valToPos(Math.max(start, u.scales.x.min), "x", true);
      const x1 = u.valToPos(Math.min(end, u.scales.x.max), "x", true);
      if (x1 > x0) { ctx.fillStyle = color; ctx.fillRect(x0, top, Math.max(x1 - x0, 2), height); }
    };
    ctx.save();
    for (const s of state.data.silences) band(sec(s.start), sec(s.end), "rgba(100,100,100,0.15)");
    for (const b of state.data.baselines) band(sec(b.start), sec(b.end), "rgba(22,163,74,0.15)");
    for (const a of t.alerts) band(sec(a.starts_at), a.ends_at ? sec(a.ends_at) : u.scales.x.max, "rgba(220,38,38,0.18)");
    ctx.strokeStyle = "#7c3aed";
    for (const m of state.data.models) {
      const x = u.valToPos(sec(m.t), "x", true);
      if (sec(m.t) >= u.scales.x.min && sec(m.t) <= u.scales.x.max) {
        ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
      }
    }
    ctx.restore();
  }

  function describe(t) {
    const filled = t.buckets.filter((b) => b.n > 0);
    const peak = filled.reduce((best, b) => (best && best.max >= b.max ? best : b), null);
    const anomalous = filled.reduce((n, b) => n + b.anomalous, 0);
    const windows = filled.reduce((n, b) => n + b.n, 0);
    $("timeline-summary").textContent =
      `${t.start.slice(0, 16)}Z to ${t.end.slice(0, 16)}Z in ${t.buckets.length} buckets of ${t.step} s (${t.source}): ` +
      `${windows} windows scored, ${anomalous} above the threshold (${fmt(t.threshold)}); ` +
      (peak ? `highest score ${fmt(peak.max)} at ${peak.t.slice(0, 19)}Z; ` : "no scores in this range; ") +
      `${t.alerts.length} alert span(s), ${state.data.silences.length} silence(s), ${state.data.baselines.length} baseline(s).`;
    const table = $("timeline-table");
    if (table) table.dataset.pending = "1";
  }

  function fillTable() {
    const box = $("timeline-table");
    if (!box || !box.dataset.pending || !state.timeline) return;
    const details = box.closest("details");
    if (details && !details.open) return;
    delete box.dataset.pending;
    const rows = state.timeline.buckets.filter((b) => b.n > 0).slice(-500);
    const table = document.createElement("table");
    table.innerHTML = "<thead><tr><th scope='col'>Bucket</th><th scope='col'>Windows</th><th scope='col'>Mean</th><th scope='col'>Max</th><th scope='col'>Above threshold</th></tr></thead>";
    const body = table.createTBody();
    for (const b of rows) {
      const tr = body.insertRow();
      for (const v of [b.t, b.n, fmt(b.mean), fmt(b.max), b.anomalous]) tr.insertCell().textContent = v;
    }
    box.replaceChildren(table);
  }

  function draw(t) {
    const xs = t.buckets.map((b) => sec(b.t));
    const data = [xs, t.buckets.map((b) => b.mean), t.buckets.map((b) => b.max),
      xs.map(() => t.threshold)];
    const el = $("timeline");
    const width = Math.max(el.clientWidth, 280);
    if (state.plot) state.plot.destroy();
    state.plot = new uPlot({
      width, height: 260, scales: { x: { time: true } },
      series: [{}, { label: "mean score", stroke: "#1d4ed8", width: 1.5, spanGaps: false },
        { label: "max score", stroke: "#93c5fd", width: 1 },
        { label: "threshold", stroke: "#dc2626", dash: [6, 4], width: 1.5 }],
      cursor: { drag: { x: true, y: false, setScale: false } },
      hooks: { drawClear: [bands], setSelect: [onSelect] },
    }, data, el);
    el.dataset.drawn = String(performance.now());
    el.dispatchEvent(new CustomEvent("earshot:drawn", { bubbles: true }));
  }

  function onSelect(u) {
    if (u.select.width < 2) return;
    const a = u.posToVal(u.select.left, "x");
    const b = u.posToVal(u.select.left + u.select.width, "x");
    setSelection(a, b);
  }

  function setSelection(a, b) {
    state.select = [a, b];
    $("selection").textContent = `Selected ${iso(a)} to ${iso(b)} (${Math.round(b - a)} s).`;
    for (const id of ["zoom-sel", "listen-sel", "baseline-sel"]) { const btn = $(id); if (btn) btn.disabled = false; }
  }

  async function load(first) {
    const end = state.end || Date.now() / 1000;
    const start = end - state.span;
    const id = state.data.machine_id;
    const q = `start=${encodeURIComponent(iso(start))}&end=${encodeURIComponent(iso(end))}`;
    try {
      // The page carries the API's answer for its first range: no round trip before drawing.
      const embedded = first && state.data.timeline;
      state.timeline = embedded || await getJson(`/v1/machines/${id}/timeline?${q}`);
      draw(state.timeline);
      describe(state.timeline);
      fillTable();
    } catch (e) {
      $("timeline-summary").textContent = `The timeline could not be loaded (${e.message}).`;
    }
    lane(id, q);
  }

  async function lane(id, q) {
    const box = $("lane");
    if (!box) return;
    try {
      const events = await getJson(`/v1/machines/${id}/events?${q}`);
      const classes = await getJson(`/v1/machines/${id}/classes?${q}`);
      const runs = [];
      for (const b of classes.buckets) {
        if (!b.dominant) continue;
        const last = runs[runs.length - 1];
        if (last && last.label === b.dominant) last.end = b.t; else runs.push({ label: b.dominant, start: b.t, end: b.t });
      }
      const list = document.createElement("ul");
      for (const r of runs.slice(-50)) list.appendChild(Object.assign(document.createElement("li"), { textContent: `class ${r.label}: ${r.start.slice(0, 19)}Z – ${r.end.slice(0, 19)}Z` }));
      for (const ev of events.items.slice(-50)) list.appendChild(Object.assign(document.createElement("li"), { textContent: `event ${ev.label}: ${ev.start.slice(0, 19)}Z – ${ev.end.slice(0, 19)}Z (confidence ${fmt(ev.confidence)})` }));
      const title = Object.assign(document.createElement("h3"), { textContent: "Classes and events" });
      box.replaceChildren(title, runs.length || events.items.length ? list : Object.assign(document.createElement("p"), { textContent: "No classes predicted or events detected in this range." }));
    } catch (e) {
      box.replaceChildren(Object.assign(document.createElement("p"), { className: "muted", textContent: "No classifier for this machine: no classes or events." }));
    }
  }

  async function spectrogram(img, caption, a, b) {
    const sensor = $("sensor") ? $("sensor").value : "";
    const q = `start=${encodeURIComponent(iso(a))}&end=${encodeURIComponent(iso(b))}` + (sensor ? `&sensor_id=${sensor}` : "");
    const response = await fetch(`/v1/machines/${state.data.machine_id}/spectrogram?${q}`, { headers: { Accept: "image/png" } });
    if (!response.ok) { caption.textContent = `No spectrogram for ${iso(a)} – ${iso(b)}: nothing was held for this range.`; img.hidden = true; return null; }
    const source = response.headers.get("Earshot-Spectrogram-Source") || "audio";
    if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
    img.src = URL.createObjectURL(await response.blob());
    img.hidden = false;
    img.dataset.source = source;
    caption.textContent = `${source === "audio" ? "Spectrogram" : "Band-means heatmap from embeddings"}, ${iso(a)} – ${iso(b)}`;
    return source;
  }

  async function listen() {
    if (!state.select) return;
    const [a, full] = state.select;
    const b = Math.min(full, a + 600);  // the audio endpoint serves at most 10 minutes
    const note = $("listen-note");
    const player = $("player");
    const source = await spectrogram($("spectrogram"), $("spectrogram-caption"), a, b);
    if (source === "audio") {
      player.src = `/v1/sensors/${$("sensor").value}/audio?start=${encodeURIComponent(iso(a))}&end=${encodeURIComponent(iso(b))}`;
      player.hidden = false;
      note.textContent = b < full ? "Playing the first 10 minutes of the selection." : "";
    } else {
      player.removeAttribute("src");
      player.hidden = true;
      note.textContent = source ? "No audio was kept for this range: the picture is the coarse band-means heatmap of the stored embeddings." : "";
    }
    const base = state.data.baselines[state.data.baselines.length - 1];
    if (base) {
      const bs = sec(base.start);
      await spectrogram($("baseline-spectrogram"), $("baseline-caption"), bs, Math.min(sec(base.end), bs + (b - a)));
    }
  }

  async function markBaseline() {
    if (!state.select) return;
    const [a, b] = state.select;
    const response = await fetch(`/v1/machines/${state.data.machine_id}/baselines`, {
      method: "POST", headers: { "Content-Type": "application/json", ...csrfHeaders() },
      body: JSON.stringify({ start: iso(a), end: iso(b), note: "marked on the dashboard" }) });
    if (response.ok) {
      const row = await response.json();
      state.data.baselines.push({ id: row.id, start: iso(a), end: iso(b) });
      toast("Baseline marked", false);
      if (state.plot) state.plot.redraw();
      htmx.trigger(document.body, "earshot:changed");
    } else {
      toast((await response.json()).detail || `HTTP ${response.status}`, true);
    }
  }

  function start() {
    const blob = $("chart-data");
    if (!blob || !$("timeline")) return;
    state.data = JSON.parse(blob.textContent);
    if (state.data.span) state.span = state.data.span;  // ?span= seconds, drawn first
    if (state.data.focus) {
      const a = sec(state.data.focus.start), b = sec(state.data.focus.end) + 60;
      state.span = Math.max(3600, (b - a) * 3);
      state.end = Math.min(Date.now() / 1000, b + state.span / 3);
      setSelection(a, b);
    }
    document.querySelectorAll("[data-range]").forEach((btn) => btn.addEventListener("click", () => {
      state.span = Number(btn.dataset.range); state.end = null; load(); }));
    document.querySelectorAll("[data-pan]").forEach((btn) => btn.addEventListener("click", () => {
      state.end = Math.min((state.end || Date.now() / 1000) + Number(btn.dataset.pan) * state.span / 2, Date.now() / 1000); load(); }));
    const on = (id, fn) => { const btn = $(id); if (btn) btn.addEventListener("click", fn); };
    on("zoom-sel", () => { if (state.select) { state.end = state.select[1]; state.span = Math.max(60, state.select[1] - state.select[0]); load(); } });
    on("listen-sel", listen);
    on("baseline-sel", markBaseline);
    const details = $("timeline-table") && $("timeline-table").closest("details");
    if (details) details.addEventListener("toggle", fillTable);
    window.addEventListener("resize", () => { if (state.plot) state.plot.setSize({ width: Math.max($("timeline").clientWidth, 280), height: 260 }); });
    load(true);
  }

  return { start, state, listen };
})();
