// Charts drawn with d3: trend lines and the ordered bar of the service-need groups.
// Each chart has a table view beside it (app.js builds it from the same rows).

/* global d3 */

import { t } from "./i18n.js";

// n colours of viridis, light (low) to dark (high): perceptually ordered, colour-blind
// safe, and its darkest end still apart from the black outlines.
export function ramp(n) {
  return d3.quantize((x) => d3.interpolateViridis(1 - x * 0.92), n);
}

// Okabe–Ito colours with dashes: told apart without colour vision too.
export const SERIES_STYLE = [
  { colour: "#0072B2", dash: null },
  { colour: "#D55E00", dash: "6 3" },
  { colour: "#009E73", dash: "2 3" },
];

const W = 560;
const H = 240;
const M = { top: 12, right: 16, bottom: 28, left: 52 };

// series: [{name, points: [{date, v}]}] (v null: not shown that day); marker: a date
export function lineChart(root, series, { format, lang, marker }) {
  const box = d3.select(root);
  box.selectAll("*").remove();
  const points = series.flatMap((s) => s.points);
  if (!points.length) {
    box.append("p").attr("class", "muted").text(t("noData", lang));
    return;
  }
  const parse = (iso) => new Date(`${iso}T00:00:00Z`);
  const x = d3
    .scaleUtc()
    .domain(d3.extent(points, (p) => parse(p.date)))
    .range([M.left, W - M.right]);
  const max = d3.max(points, (p) => p.v) ?? 0;
  const y = d3
    .scaleLinear()
    .domain([0, max > 0 ? max : 1])
    .nice()
    .range([H - M.bottom, M.top]);
  const svg = box.append("svg").attr("viewBox", `0 0 ${W} ${H}`).attr("role", "img");
  svg.attr("aria-label", series.map((s) => s.name).join(", "));
  svg
    .append("g")
    .attr("class", "axis")
    .attr("transform", `translate(0,${H - M.bottom})`)
    .call(d3.axisBottom(x).ticks(6).tickSizeOuter(0));
  svg
    .append("g")
    .attr("class", "axis")
    .attr("transform", `translate(${M.left},0)`)
    .call(d3.axisLeft(y).ticks(5).tickFormat(format));
  const line = d3
    .line()
    .defined((p) => p.v !== null)
    .x((p) => x(parse(p.date)))
    .y((p) => y(p.v));
  series.forEach((s, i) => {
    const style = SERIES_STYLE[i % SERIES_STYLE.length];
    svg
      .append("path")
      .attr("class", "series")
      .attr("fill", "none")
      .attr("stroke", style.colour)
      .attr("stroke-width", i === 0 ? 2.5 : 1.75)
      .attr("stroke-dasharray", style.dash)
      .attr("d", line(s.points));
  });
  if (marker) {
    const mx = x(parse(marker));
    svg
      .append("line")
      .attr("class", "marker")
      .attr("x1", mx)
      .attr("x2", mx)
      .attr("y1", M.top)
      .attr("y2", H - M.bottom);
  }
  const legend = box.append("ul").attr("class", "chart-legend");
  series.forEach((s, i) => {
    const style = SERIES_STYLE[i % SERIES_STYLE.length];
    const li = legend.append("li");
    const key = li.append("svg").attr("viewBox", "0 0 24 8").attr("class", "key");
    key
      .append("line")
      .attr("x1", 0)
      .attr("x2", 24)
      .attr("y1", 4)
      .attr("y2", 4)
      .attr("stroke", style.colour)
      .attr("stroke-width", 2.5)
      .attr("stroke-dasharray", style.dash);
    li.append("span").text(s.name);
  });
}

// groups: {"1": n|null, …, "10": n|null}; families: the scope's shown families
export function groupsBar(root, groups, families, lang) {
  const box = d3.select(root);
  box.selectAll("*").remove();
  if (!groups || !families) {
    box.append("p").attr("class", "muted").text(t("noData", lang));
    return;
  }
  const colour = ramp(10);
  const svg = box.append("svg").attr("viewBox", "0 0 560 44").attr("role", "img");
  svg.attr("aria-label", t("groups", lang));
  // The shown groups in their order, then the hidden ones together, hatched (their
  // total is families minus the shown ones: nothing the answer did not already say).
  const parts = [];
  for (let g = 1; g <= 10; g++) {
    const n = groups[String(g)];
    if (n !== null && n !== undefined) parts.push({ g, n });
  }
  const hidden = families - parts.reduce((sum, p) => sum + p.n, 0);
  if (hidden > 0) parts.push({ g: null, n: hidden });
  let at = 0;
  for (const { g, n } of parts) {
    const width = (n / families) * 560;
    const rect = svg
      .append("rect")
      .attr("x", at)
      .attr("y", 0)
      .attr("width", Math.max(0, width))
      .attr("height", 28)
      .attr("fill", g === null ? "url(#tk-hatch)" : colour[g - 1]);
    rect.append("title").text(g === null ? t("hiddenLong", lang) : `${t("group", lang)} ${g}: ${n}`);
    if (width > 18) {
      svg
        .append("text")
        .attr("x", at + width / 2)
        .attr("y", 40)
        .attr("text-anchor", "middle")
        .attr("class", "bar-label")
        .text(g === null ? "…" : g);
    }
    at += width;
  }
}
