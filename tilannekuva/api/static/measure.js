// What the page shows of one scope's answer: pure functions of the API's bodies.
// A value is computed only from counts the API showed; a null count makes the value
// hidden, never estimated, so no colour or line stands for a number the API withheld.

import { locale } from "./i18n.js";

// {v, state}: state "shown" (v a number), "hidden" (a count it needs is suppressed) or
// "none" (no families, or no service-need groups yet).
export function measureValue(measure, body) {
  const ind = body?.indicators;
  if (!ind) return { v: null, state: "none" };
  const families = ind.families;
  if (families === null || families === undefined) return { v: null, state: "hidden" };
  if (measure.kind === "count") return { v: families, state: "shown" };
  if (families === 0) return { v: null, state: "none" };
  let count;
  if (measure.groups) {
    const groups = body.service_need_groups;
    if (!groups) return { v: null, state: "none" };
    count = 0;
    for (const g of measure.groups) {
      const c = groups[String(g)];
      if (c === null || c === undefined) return { v: null, state: "hidden" };
      count += c;
    }
  } else {
    count = ind[measure.id];
    if (count === null || count === undefined) return { v: null, state: "hidden" };
  }
  return { v: count / families, state: "shown" };
}

// The text of a shown value: shares as percent, window counts per 100 families.
export function formatValue(measure, v, lang) {
  if (v === null || v === undefined) return "";
  const loc = locale(lang);
  if (measure.kind === "count") return new Intl.NumberFormat(loc).format(v);
  const one = new Intl.NumberFormat(loc, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  if (measure.kind === "share") return `${one.format(v * 100)} %`;
  if (measure.kind === "rate100") return one.format(v * 100);
  return new Intl.NumberFormat(loc, { minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(v);
}

export function formatCount(n, lang) {
  return n === null || n === undefined ? null : new Intl.NumberFormat(locale(lang)).format(n);
}

// Day arithmetic on ISO dates, in UTC so that no time zone moves a day.
export function addDays(iso, n) {
  const d = new Date(`${iso}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

export function daysBetween(a, b) {
  return Math.round((Date.parse(`${b}T00:00:00Z`) - Date.parse(`${a}T00:00:00Z`)) / 86400000);
}

// A CSV document: RFC 4180 quoting, CRLF line ends.
export function toCsv(rows) {
  const cell = (x) => {
    const s = x === null || x === undefined ? "" : String(x);
    return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  return rows.map((r) => r.map(cell).join(",")).join("\r\n") + "\r\n";
}
