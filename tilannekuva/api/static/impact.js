// The service-impact panel: per service, what happens to families after it starts,
// against comparable families (GET /api/v1/impact, docs/impact.md). A table of the
// published estimates at 3, 6 and 12 months, and the event study drawn as points with
// their 95 % intervals, months −6 … +12 around the start.

/* global d3 */

import { label, t } from "./i18n.js";

export const SERVICE_LABELS = {
  family_work: { fi: "Perhetyö", sv: "Familjearbete", en: "Family work" },
  home_service: { fi: "Kotipalvelu", sv: "Hemservice", en: "Home service" },
  family_counselling: { fi: "Perheneuvola", sv: "Familjerådgivning", en: "Family counselling" },
  multi_professional_support: {
    fi: "Monialainen tuki",
    sv: "Multiprofessionellt stöd",
    en: "Multi-professional support",
  },
  substance_abuse_services: {
    fi: "Päihdepalvelut",
    sv: "Missbrukarvård",
    en: "Substance-abuse services",
  },
  child_welfare_open_care: {
    fi: "Lastensuojelun avohuolto",
    sv: "Öppenvård inom barnskyddet",
    en: "Child welfare open care",
  },
  early_childhood_education: {
    fi: "Varhaiskasvatus",
    sv: "Småbarnspedagogik",
    en: "Early childhood education",
  },
};

const W = 360;
const H = 150;
const M = { top: 10, right: 10, bottom: 24, left: 44 };

// An effect (a difference of probabilities) as signed percentage points.
export function points(v, lang) {
  if (v === null || v === undefined) return "—";
  const pp = new Intl.NumberFormat(lang === "en" ? "en-GB" : lang, {
    minimumFractionDigits: 1,
    maximumFractionDigits: 1,
    signDisplay: "exceptZero",
  }).format(v * 100);
  return `${pp} ${t("pp", lang)}`;
}

// The API says why in English (docs/impact.md); the three reasons it gives, in the
// page's language, with the API's numbers.
export function reasonText(reason, lang) {
  const n = reason.match(/\d+/g) ?? [];
  if (reason.startsWith("fewer than")) return t("impactFew", lang).replace("{n}", n[0]);
  if (reason.startsWith("a count behind")) return t("impactSmall", lang).replace("{n}", n.at(-1));
  if (reason.startsWith("what opened the case")) return t("impactOpening", lang).replace("{n}", n[0]);
  return reason;
}

export function renderImpact(root, body, lang) {
  root.replaceChildren();
  if (!body || !body.counted_to) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = t("impactNone", lang);
    root.append(p);
    return;
  }
  for (const s of body.services) root.append(serviceCard(s, lang));
}

function serviceCard(s, lang) {
  const card = document.createElement("article");
  card.className = "impact-service";
  card.dataset.service = s.service;
  const h = document.createElement("h3");
  h.textContent = label(SERVICE_LABELS[s.service] ?? { fi: s.service }, lang);
  card.append(h);
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  for (const key of ["impactMonths", "impactEffect", "impactInterval", "impactNaive", "impactEntries"]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = t(key, lang);
    head.append(th);
  }
  const tbody = table.createTBody();
  for (const e of s.estimates) {
    const row = tbody.insertRow();
    row.dataset.months = e.months;
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = `${e.months}`;
    row.append(th);
    if (e.withheld) {
      const td = row.insertCell();
      td.colSpan = 4;
      td.className = "muted withheld";
      td.textContent = `${t("impactWithheld", lang)}: ${reasonText(e.withheld, lang)}`;
      continue;
    }
    row.insertCell().textContent = points(e.effect, lang);
    row.insertCell().textContent = `${points(e.ci_low, lang)} … ${points(e.ci_high, lang)}`;
    row.insertCell().textContent = points(e.naive, lang);
    row.insertCell().textContent = `≥ ${e.entries}`;
  }
  card.append(table);
  if (s.reference_month !== -1) {
    const r = document.createElement("p");
    r.className = "muted impact-reference";
    r.textContent = t("impactReference", lang).replace("{m}", `${s.reference_month}`);
    card.append(r);
  }
  if (s.pre_trend_p !== null) {
    const p = document.createElement("p");
    p.className = s.pre_trend_p < 0.05 ? "worse" : "muted";
    p.textContent = `${t("impactPreTrend", lang)}: p = ${s.pre_trend_p}`;
    card.append(p);
  }
  const chart = document.createElement("div");
  chart.className = "impact-study";
  card.append(chart);
  eventStudy(chart, s.event_study, s.reference_month, lang);
  return card;
}

// Points and 95 % intervals of the published months; withheld months are left out. The
// reference month (0 by definition) is a hollow point on the zero line.
function eventStudy(root, study, reference, lang) {
  const shown = study.filter((e) => e.withheld === null);
  const box = d3.select(root);
  if (!shown.length) {
    box.append("p").attr("class", "muted").text(t("impactStudyNone", lang));
    return;
  }
  const x = d3.scaleLinear().domain([-6, 12]).range([M.left, W - M.right]);
  const lo = d3.min(shown, (e) => e.ci_low);
  const hi = d3.max(shown, (e) => e.ci_high);
  const y = d3
    .scaleLinear()
    .domain([Math.min(lo, 0), Math.max(hi, 0)])
    .nice()
    .range([H - M.bottom, M.top]);
  const svg = box
    .append("svg")
    .attr("viewBox", `0 0 ${W} ${H}`)
    .attr("role", "img")
    .attr("aria-label", t("impactStudy", lang));
  svg.append("g").attr("transform", `translate(0,${H - M.bottom})`).call(d3.axisBottom(x).ticks(9));
  svg
    .append("g")
    .attr("transform", `translate(${M.left},0)`)
    .call(d3.axisLeft(y).ticks(4).tickFormat((v) => `${Math.round(v * 100)}`));
  svg
    .append("line")
    .attr("x1", M.left)
    .attr("x2", W - M.right)
    .attr("y1", y(0))
    .attr("y2", y(0))
    .attr("stroke", "#6b6b6b");
  svg
    .append("line")
    .attr("x1", x(-0.5))
    .attr("x2", x(-0.5))
    .attr("y1", M.top)
    .attr("y2", H - M.bottom)
    .attr("stroke", "#6b6b6b")
    .attr("stroke-dasharray", "3 3");
  svg
    .append("circle")
    .attr("class", "reference")
    .attr("cx", x(reference))
    .attr("cy", y(0))
    .attr("r", 3)
    .attr("fill", "none")
    .attr("stroke", "#0072B2");
  const g = svg.selectAll("g.est").data(shown).join("g").attr("class", "est");
  g.append("line")
    .attr("x1", (e) => x(e.months))
    .attr("x2", (e) => x(e.months))
    .attr("y1", (e) => y(e.ci_low))
    .attr("y2", (e) => y(e.ci_high))
    .attr("stroke", "#0072B2");
  g.append("circle")
    .attr("cx", (e) => x(e.months))
    .attr("cy", (e) => y(e.effect))
    .attr("r", 3)
    .attr("fill", "#0072B2")
    .append("title")
    .text((e) => `${e.months}: ${points(e.effect, lang)}`);
}
