// The situation page: what the person chose (the view, also in the URL), what the API
// answered (the data), and the renderers that draw one from the other.

import { Api, Unauthorized } from "./api.js";
import { groupsBar, lineChart } from "./charts.js";
import {
  INDICATOR_LABELS,
  LANGS,
  MEASURES,
  MUNICIPALITIES,
  SERIES_LABELS,
  label,
  measureById,
  municipalityName,
  t,
} from "./i18n.js";
import { renderImpact } from "./impact.js";
import { AreaMap, colourScale, drawLegend } from "./map.js";
import { addDays, daysBetween, formatCount, formatValue, measureValue, toCsv } from "./measure.js";

const api = new Api();
const $ = (selector) => document.querySelector(selector);
const RANGES = { 1: 364, 3: 3 * 365, 5: 5 * 365 };
const PLAY_STEP_DAYS = 7;
const PLAY_PAUSE_MS = 400;
const ALERTS_EVERY_MS = 30000;

// The view: what the URL records. day null: the present (W), live.
// from: the trend's first day when chosen by date, else the range counts back from day.
const view = { lang: "fi", measure: MEASURES[0].id, scope: "all", day: null, range: "1", from: null };
// The data: what the API said.
const data = {
  first: null, // first day of data
  W: null, // the watermark: the present's day
  areas: new Map(), // postcode -> /api/v1/areas?detail=full item, for the day on the map
  mapDay: null,
  geo: new Map(), // postcode -> {name, municipality} from the boundaries
  alerts: [],
  impact: null, // /api/v1/impact for the chosen scope's municipality
  panel: null, // the chosen scope's answer
  trend: null, // {series, rows}
  live: false,
};
let map = null;
let stream = null;
let playing = false;
let firstPaint = true;

// ------------------------------------------------------------------ view and URL

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  if (LANGS.includes(p.get("lang"))) view.lang = p.get("lang");
  if (MEASURES.some((m) => m.id === p.get("indicator"))) view.measure = p.get("indicator");
  const scope = p.get("scope");
  if (scope && /^(all|m:\d{3}|a:\d{5})$/.test(scope)) view.scope = scope;
  const day = p.get("day");
  view.day = day && /^\d{4}-\d{2}-\d{2}$/.test(day) ? day : null;
  if (["1", "3", "5", "all"].includes(p.get("range"))) view.range = p.get("range");
  const from = p.get("from");
  view.from = from && /^\d{4}-\d{2}-\d{2}$/.test(from) ? from : null;
}

function writeHash() {
  const p = new URLSearchParams({ lang: view.lang, indicator: view.measure, scope: view.scope });
  if (view.day) p.set("day", view.day);
  if (view.range !== "1") p.set("range", view.range);
  if (view.from) p.set("from", view.from);
  history.replaceState(null, "", `#${p}`);
}

const shownDay = () => view.day ?? data.W;
// The as_of parameter: none for the present, so that it answers live.
const asOf = () => (view.day && view.day !== data.W ? view.day : null);
const measure = () => measureById(view.measure);

// ------------------------------------------------------------------ start and sign-in

async function start() {
  readHash();
  buildControls();
  applyLanguage();
  const [areas, municipalities] = await Promise.all([
    fetch("/static/data/postcode-areas.geojson").then((r) => r.json()),
    fetch("/static/data/municipalities.geojson").then((r) => r.json()),
  ]);
  for (const f of areas.features) {
    const p = f.properties;
    data.geo.set(p.postcode, { name: p.name, municipality: p.municipality_code });
  }
  map = new AreaMap($("#map"), areas, municipalities, {
    onSelect: (pc) => setScope(`a:${pc}`),
  });
  paintMap();
  if (api.token) await enter();
  else signIn(false);
}

function signIn(wrong) {
  stream?.stop();
  stream = null;
  api.token = null;
  $("#token-error").hidden = !wrong;
  const dialog = $("#sign-in");
  if (!dialog.open) dialog.showModal();
  $("#token").focus();
}

async function enter() {
  try {
    await loadSpan();
  } catch (err) {
    if (err instanceof Unauthorized) return signIn(true);
    throw err;
  }
  setSlider();
  startStream();
  loadAlerts();
  await Promise.all([loadMap(), loadPanel()]);
}

async function guarded(work) {
  try {
    return await work();
  } catch (err) {
    if (err instanceof Unauthorized) signIn(true);
    else showError(err);
  }
}

function showError(err) {
  $("#status").textContent = `${t("error", view.lang)}: ${err.message}`;
}

// ------------------------------------------------------------------ loading

async function loadSpan() {
  const body = await api.get("/api/v1/picture/history", { indicators: "families", step: "month" });
  data.first = body.first_day;
  data.W = body.last_day;
}

async function loadMap() {
  const day = view.day;
  if (!data.W) return paintMap();
  const body = await api.get("/api/v1/areas", { detail: "full", as_of: asOf() });
  if (view.day !== day) return; // a later choice is on its way
  data.areas = new Map(body.areas.map((a) => [a.area, a]));
  data.mapDay = body.as_of;
  paintMap();
}

function scopeChain(scope) {
  if (scope.startsWith("a:")) {
    const pc = scope.slice(2);
    const muni = data.areas.get(pc)?.municipality ?? data.geo.get(pc)?.municipality;
    return muni ? [scope, `m:${muni}`, "all"] : [scope, "all"];
  }
  return scope === "all" ? ["all"] : [scope, "all"];
}

function scopePath(scope) {
  if (scope === "all") return "/api/v1/picture";
  if (scope.startsWith("m:")) return `/api/v1/municipalities/${scope.slice(2)}`;
  return `/api/v1/areas/${scope.slice(2)}`;
}

function scopeName(scope) {
  const lang = view.lang;
  if (scope === "all") return t("all", lang);
  if (scope.startsWith("m:")) return municipalityName(scope.slice(2), lang);
  const pc = scope.slice(2);
  return `${pc} ${areaName(pc)}`;
}

function areaName(pc) {
  const item = data.areas.get(pc);
  if (view.lang === "sv" && item?.name_sv) return item.name_sv;
  return item?.name ?? data.geo.get(pc)?.name ?? "";
}

async function loadPanel({ trend = true } = {}) {
  const scope = view.scope;
  const day = view.day;
  if (!data.W) return;
  const body = await api.get(scopePath(scope), { as_of: asOf() });
  if (view.scope !== scope || view.day !== day) return;
  data.panel = body;
  renderPanel();
  if (trend) await Promise.all([loadTrend(), loadTypes(), loadImpact()]);
}

async function loadTrend() {
  const scope = view.scope;
  const day = view.day;
  const m = measure();
  const to = shownDay();
  let from = view.range === "all" ? data.first : addDays(to, -RANGES[view.range]);
  if (view.from) from = view.from < to ? view.from : addDays(to, -1);
  if (from < data.first) from = data.first;
  const span = daysBetween(from, to);
  const step = span <= 400 ? "day" : span <= 6 * 366 ? "week" : "month";
  const wanted = m.groups || m.id === "families" ? ["families"] : ["families", m.id];
  const chain = scopeChain(scope);
  const answers = await Promise.all(
    chain.map((s) =>
      api.get(`${scopePath(s)}/history`, { from, to, step, indicators: wanted.join(",") }),
    ),
  );
  if (view.scope !== scope || view.day !== day || view.measure !== m.id) return;
  const series = chain.map((s, i) => ({
    scope: s,
    points: (answers[i]?.series ?? []).map((p) => ({ date: p.as_of, ...measureValue(m, p) })),
  }));
  data.trend = { series, to };
  renderTrend();
}

async function loadTypes() {
  const scope = view.scope;
  const params = { limit: 10 };
  if (scope.startsWith("m:")) params.municipality = scope.slice(2);
  if (scope.startsWith("a:")) params.area = scope.slice(2);
  let body = null;
  try {
    body = await api.get("/api/v1/types", params);
  } catch (err) {
    if (err instanceof Unauthorized) throw err;
  }
  if (view.scope !== scope) return;
  renderTypes(body);
}

async function loadAlerts() {
  await guarded(async () => {
    const body = await api.get("/api/v1/alerts");
    data.alerts = [...(body?.alerts ?? [])].sort((a, b) => (b.strength ?? 0) - (a.strength ?? 0));
    renderAlerts();
  });
  setTimeout(loadAlerts, ALERTS_EVERY_MS);
}

// ------------------------------------------------------------------ live

function startStream() {
  stream?.stop();
  stream = api.stream(onStreamEvent, (state) => {
    if (state === "unauthorized") return signIn(true);
    data.live = state === "live";
    renderStatus();
  });
}

let paintQueued = false;
let panelTimer = null;

function onStreamEvent(name, raw) {
  if (name !== "area") return;
  const body = JSON.parse(raw);
  if (body.as_of && data.W && body.as_of > data.W) {
    data.W = body.as_of;
    setSlider();
  }
  if (view.day !== null) return; // a past day is on show: the present moves unseen
  const item = data.areas.get(body.area) ?? { area: body.area, municipality: body.municipality };
  item.picture = body;
  item.families = body.indicators.families;
  item.suppressed = body.indicators.families === null;
  data.areas.set(body.area, item);
  data.mapDay = body.as_of;
  if (!paintQueued) {
    paintQueued = true;
    requestAnimationFrame(() => {
      paintQueued = false;
      paintMap();
    });
  }
  if (scopeChain(view.scope).some((s) => s === `a:${body.area}` || s === `m:${body.municipality}`)) {
    clearTimeout(panelTimer);
    panelTimer = setTimeout(() => guarded(() => loadPanel({ trend: false })), 1000);
  }
}

// ------------------------------------------------------------------ choices

// The municipality whose entries the impact panel shows: the scope's (an area's own),
// null for all six.
function impactMunicipality(scope) {
  if (scope.startsWith("m:")) return scope.slice(2);
  if (scope.startsWith("a:")) return data.geo.get(scope.slice(2))?.municipality ?? null;
  return null;
}

async function loadImpact() {
  const municipality = impactMunicipality(view.scope);
  const body = await api.get("/api/v1/impact", { municipality });
  if (impactMunicipality(view.scope) !== municipality) return;
  data.impact = body;
  renderImpactPanel();
}

function renderImpactPanel() {
  const lang = view.lang;
  const body = data.impact;
  const where = body?.municipality ? municipalityName(body.municipality, lang) : t("all", lang);
  const month = body?.counted_to ? `; ${t("impactCounted", lang)} ${body.counted_to}` : "";
  $("#impact-scope").textContent = `${where}${month}`;
  renderImpact($("#impact"), body, lang);
}

function setScope(scope) {
  view.scope = scope;
  $("#scope").value = scope.startsWith("a:") ? "" : scope;
  writeHash();
  map.select(scope.startsWith("a:") ? scope.slice(2) : null, scope.startsWith("m:") ? scope.slice(2) : null);
  guarded(() => loadPanel());
}

function setDay(day, { trend = true } = {}) {
  view.day = day && day < data.W ? day : null;
  writeHash();
  setSlider();
  return guarded(() => Promise.all([loadMap(), loadPanel({ trend })]));
}

function setSlider() {
  const slider = $("#day");
  if (!data.first || !data.W) return;
  slider.max = daysBetween(data.first, data.W);
  $("#trend-from").min = data.first;
  $("#trend-from").max = data.W;
  slider.value = daysBetween(data.first, shownDay());
  $("#day-label").textContent = shownDay();
  renderStatus();
}

async function play() {
  if (playing) {
    playing = false;
    return;
  }
  playing = true;
  $("#play").textContent = t("pause", view.lang);
  let day = view.day ?? addDays(data.W, -RANGES[1]);
  if (day < data.first) day = data.first;
  while (playing) {
    await setDay(day, { trend: false });
    if (day >= data.W) break;
    await new Promise((r) => setTimeout(r, PLAY_PAUSE_MS));
    day = addDays(day, PLAY_STEP_DAYS);
    if (day > data.W) day = data.W;
  }
  playing = false;
  $("#play").textContent = t("play", view.lang);
  guarded(() => Promise.all([loadTrend(), loadTypes()]));
}

function buildControls() {
  const scopeSel = $("#scope");
  scopeSel.replaceChildren();
  for (const value of ["all", ...Object.keys(MUNICIPALITIES).map((c) => `m:${c}`), ""]) {
    const opt = document.createElement("option");
    opt.value = value;
    scopeSel.append(opt);
  }
  const measureSel = $("#measure");
  measureSel.replaceChildren();
  for (const m of MEASURES) {
    const opt = document.createElement("option");
    opt.value = m.id;
    measureSel.append(opt);
  }
  $("#lang").addEventListener("change", (e) => {
    view.lang = e.target.value;
    writeHash();
    applyLanguage();
    paintMap();
    renderPanel();
    renderTrend();
    guarded(loadTypes);
    renderAlerts();
    renderImpactPanel();
  });
  measureSel.addEventListener("change", (e) => {
    view.measure = e.target.value;
    writeHash();
    applyLanguage();
    paintMap();
    guarded(loadTrend);
  });
  scopeSel.addEventListener("change", (e) => {
    if (e.target.value) setScope(e.target.value);
  });
  $("#range").addEventListener("change", (e) => {
    view.range = e.target.value;
    view.from = null;
    $("#trend-from").value = "";
    writeHash();
    guarded(loadTrend);
  });
  $("#trend-from").addEventListener("change", (e) => {
    view.from = /^\d{4}-\d{2}-\d{2}$/.test(e.target.value) ? e.target.value : null;
    writeHash();
    guarded(loadTrend);
  });
  let timer = null;
  $("#day").addEventListener("input", (e) => {
    const day = addDays(data.first, Number(e.target.value));
    $("#day-label").textContent = day;
    clearTimeout(timer);
    timer = setTimeout(() => setDay(day), 150);
  });
  $("#play").addEventListener("click", play);
  $("#now").addEventListener("click", () => {
    playing = false;
    setDay(null);
  });
  $("#sign-out").addEventListener("click", () => signIn(false));
  $("#sign-in-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    api.token = $("#token").value.trim();
    $("#token").value = "";
    $("#sign-in").close();
    await guarded(enter);
  });
  $("#map-csv").addEventListener("click", () => download(mapTable(), "map"));
  $("#trend-csv").addEventListener("click", () => data.trend && download(trendTable(), "trend"));
  window.addEventListener("hashchange", () => {
    const before = { ...view };
    readHash();
    if (before.lang !== view.lang) applyLanguage();
    if (before.day !== view.day) setDay(view.day);
    else if (before.scope !== view.scope) setScope(view.scope);
    else {
      paintMap();
      guarded(loadTrend);
    }
  });
}

// ------------------------------------------------------------------ rendering

function applyLanguage() {
  const lang = view.lang;
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n, lang);
  document.title = `${t("title", lang)} — ${t("subtitle", lang)}`;
  $("#lang").value = lang;
  for (const opt of $("#measure").options) opt.textContent = label(measureById(opt.value), lang);
  $("#measure").value = view.measure;
  for (const opt of $("#scope").options) {
    opt.textContent = opt.value ? scopeName(opt.value) : `${t("postcode", lang)} …`;
  }
  $("#scope").value = view.scope.startsWith("a:") ? "" : view.scope;
  $("#range").value = view.range;
  $("#trend-from").value = view.from ?? "";
  $("#map-measure").textContent = label(measure(), lang);
  $("#trend-measure").textContent = label(measure(), lang);
  $("#play").textContent = t(playing ? "pause" : "play", lang);
  renderStatus();
}

function renderStatus() {
  const lang = view.lang;
  const parts = [];
  if (data.mapDay) parts.push(`${t("asOf", lang)} ${data.mapDay}`);
  if (view.day === null) {
    parts.push(t(data.live ? "live" : "offline", lang));
    const newest = [...data.areas.values()]
      .map((a) => a.picture?.updated_at)
      .filter(Boolean)
      .sort()
      .at(-1);
    if (newest) {
      const time = new Date(newest).toLocaleString(lang === "en" ? "en-GB" : `${lang}-FI`);
      parts.push(`${t("updated", lang)} ${time}`);
    }
  } else {
    parts.push(t("past", lang));
  }
  const status = $("#status");
  status.textContent = parts.join(" · ");
  status.dataset.live = view.day === null && data.live ? "true" : "false";
}

// The map's values: one per postcode area of the boundaries.
function mapValues() {
  const m = measure();
  const values = new Map();
  for (const [pc, geo] of data.geo) {
    const item = data.areas.get(pc);
    const x = item?.picture ? measureValue(m, item.picture) : { v: null, state: "none" };
    values.set(pc, {
      ...x,
      text: formatValue(m, x.v, view.lang),
      name: areaName(pc),
      municipality: item?.municipality ?? geo.municipality,
      families: item?.picture?.indicators?.families,
    });
  }
  return values;
}

function paintMap() {
  if (!map) return;
  const m = measure();
  const values = mapValues();
  const scale = colourScale(values.values(), m.kind === "count");
  map.paint(values, scale, view.lang);
  drawLegend($("#legend"), scale, (v) => formatValue(m, v, view.lang), view.lang);
  map.select(
    view.scope.startsWith("a:") ? view.scope.slice(2) : null,
    view.scope.startsWith("m:") ? view.scope.slice(2) : null,
  );
  map.mark(new Set(data.alerts.map((a) => a.area).filter(Boolean)));
  fillTable($("#map-table"), mapTable(values));
  renderStatus();
  if (firstPaint && data.areas.size) {
    firstPaint = false;
    performance.mark("tk-map-painted");
  }
}

// What the map shows, as rows: the table view and the CSV are both made from it.
function mapTable(values = mapValues()) {
  const lang = view.lang;
  const m = measure();
  const head = [t("postcode", lang), t("name", lang), t("municipality", lang), t("day", lang)];
  head.push(label(m, lang), t("families", lang));
  const rows = [...values.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([pc, x]) => [
      pc,
      x.name,
      municipalityName(x.municipality, lang),
      data.mapDay ?? "",
      x.state === "shown" ? x.text : t(x.state === "hidden" ? "hidden" : "noData", lang),
      x.families === null ? t("hidden", lang) : (formatCount(x.families, lang) ?? t("noData", lang)),
    ]);
  return { head, rows };
}

function trendTable() {
  const lang = view.lang;
  const m = measure();
  const { series } = data.trend;
  const head = [t("day", lang), ...series.map((s) => s.name)];
  const dates = series[0]?.points.map((p) => p.date) ?? [];
  const rows = dates.map((date, i) => [
    date,
    ...series.map((s) => {
      const p = s.points[i];
      if (!p) return "";
      return p.state === "shown" ? formatValue(m, p.v, lang) : t(p.state === "hidden" ? "hidden" : "noData", lang);
    }),
  ]);
  return { head, rows };
}

function fillTable(table, { head, rows }) {
  const thead = document.createElement("thead");
  const tr = document.createElement("tr");
  for (const h of head) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = h;
    tr.append(th);
  }
  thead.append(tr);
  const tbody = document.createElement("tbody");
  for (const r of rows) {
    const row = document.createElement("tr");
    for (const c of r) {
      const td = document.createElement("td");
      td.textContent = c;
      row.append(td);
    }
    tbody.append(row);
  }
  table.replaceChildren(thead, tbody);
}

function download({ head, rows }, what) {
  const blob = new Blob([toCsv([head, ...rows])], { type: "text/csv;charset=utf-8" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = `tilannekuva-${what}-${view.measure}-${view.scope.replace(":", "")}-${shownDay()}.csv`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

function renderPanel() {
  const lang = view.lang;
  const body = data.panel;
  $("#panel-title").textContent = scopeName(view.scope);
  if (!body) {
    $("#panel-asof").textContent = t("noData", lang);
    $("#indicators").replaceChildren();
    groupsBar($("#groups"), null, 0, lang);
    return;
  }
  $("#panel-asof").textContent = `${t("asOf", lang)} ${body.as_of ?? "—"}`;
  const families = body.indicators.families;
  const rows = Object.entries(INDICATOR_LABELS).map(([name, names]) => {
    const count = body.indicators[name];
    let share = "";
    if (name === "families") share = "";
    else if (count === null) share = "";
    else if (families) {
      const m = MEASURES.find((x) => x.id === name) ?? { kind: "rate", id: name };
      share = formatValue(m, count / families, lang);
    }
    return [label(names, lang), count === null ? t("hidden", lang) : formatCount(count, lang), share];
  });
  fillTable($("#indicators"), { head: [t("indicators", lang), t("count", lang), t("share", lang)], rows });
  const groups = body.service_need_groups;
  groupsBar($("#groups"), groups, families, lang);
  const grows = [];
  for (let g = 1; g <= 10; g++) {
    const n = groups?.[String(g)];
    grows.push([String(g), n === null ? t("hidden", lang) : n === undefined ? t("noData", lang) : formatCount(n, lang)]);
  }
  fillTable($("#groups-table"), { head: [t("group", lang), t("families", lang)], rows: grows });
}

function renderTrend() {
  if (!data.trend) return;
  const lang = view.lang;
  const m = measure();
  // Named now, in the language on show.
  for (const s of data.trend.series) s.name = scopeName(s.scope);
  lineChart($("#trend"), data.trend.series, {
    format: (v) => formatValue(m, v, lang),
    lang,
    marker: null,
  });
  fillTable($("#trend-table"), trendTable());
  // Worse than its municipality (or the six, for a municipality) and getting worse:
  // above it on the day shown, and above its own value 90 days before.
  const worse = $("#worse");
  const [own, parent] = data.trend.series;
  const need = m.kind !== "count" && m.id !== "children";
  const at = (s, day) => s.points.filter((p) => p.date <= day && p.state === "shown").at(-1);
  let flag = false;
  if (need && own && parent) {
    const now = own.points.at(-1);
    const theirs = parent.points.at(-1);
    const before = at(own, addDays(data.trend.to, -90));
    flag =
      now?.state === "shown" &&
      theirs?.state === "shown" &&
      before !== undefined &&
      now.v > theirs.v &&
      now.v > before.v;
  }
  worse.hidden = !flag;
  worse.textContent = flag ? `⚠ ${t("worse", lang)}` : "";
  worse.title = t("worseRule", lang);
}

function renderTypes(body) {
  const lang = view.lang;
  const list = $("#types");
  list.replaceChildren();
  const item = (text, cls) => {
    const li = document.createElement("li");
    li.textContent = text;
    if (cls) li.className = cls;
    list.append(li);
  };
  if (!body?.published) return item(t("typesNone", lang), "muted");
  const share = { kind: "share" };
  for (const x of body.types) {
    const words = x.description?.[lang] ?? x.description?.fi ?? `#${x.type}`;
    const size = formatCount(x.families, lang);
    const pct = x.share === null ? "" : ` (${formatValue(share, x.share, lang)})`;
    item(`${words} — ${t("families", lang)}: ${size}${pct}; ${t("group", lang)} ${x.group}`);
  }
  // The types not listed (beyond the limit, hidden, or without families here) only as
  // their families together: the scope's families less those listed.
  const listed = body.types.reduce((sum, x) => sum + x.families, 0);
  const rest = body.families === null ? null : body.families - listed;
  if (rest !== 0) {
    const fam = rest === null ? t("hidden", lang) : formatCount(rest, lang);
    item(`${t("typesHidden", lang)}: ${t("families", lang)} ${fam}`, "muted");
  }
}

function renderAlerts() {
  const lang = view.lang;
  const list = $("#alerts");
  list.replaceChildren();
  if (!data.alerts.length) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = t("alertsNone", lang);
    list.append(li);
  }
  for (const a of data.alerts) {
    const scope = a.scope_key;
    const li = document.createElement("li");
    li.dataset.strength = a.strength ?? 0;
    const button = document.createElement("button");
    button.type = "button";
    const names = INDICATOR_LABELS[a.series] ?? SERIES_LABELS[a.series] ?? { fi: a.series };
    const share = (v) => formatValue(MEASURES.find((m) => m.id === a.series) ?? { kind: "share" }, v, lang);
    const band =
      a.expected.lower !== null && a.expected.upper !== null
        ? `, 95 % ${share(a.expected.lower)}–${share(a.expected.upper)}`
        : "";
    button.textContent =
      `${scopeName(scope)}: ${label(names, lang)} ${share(a.observed.share)} ` +
      `(${t("expected", lang)} ${share(a.expected.share)}${band}; q ${a.q}) ` +
      `${a.as_of}${a.onset ? `, ${t("since", lang)} ${a.onset}` : ""}`;
    button.addEventListener("click", () => setScope(scope));
    li.append(button);
    list.append(li);
  }
  map?.mark(new Set(data.alerts.map((a) => a.area).filter(Boolean)));
}

start().catch(showError);
