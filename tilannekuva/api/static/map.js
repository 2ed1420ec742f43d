// The map: the 144 postcode areas as polygons in four panels (municipalities that lie
// together share one), municipality outlines on top, a legend. It draws what it is
// given; which value an area has is the caller's (app.js) business.

/* global d3 */

import { ramp } from "./charts.js";
import { REGIONS, municipalityName, t } from "./i18n.js";

const WIDTH = 420;
const HEIGHT = 320;
export const CLASSES = 7; // about: d3.ticks picks round bounds near it
const MAX_CLASSES = 8;
export const NO_DATA = "#e6e6e6";

// d3-geo wants exterior rings clockwise; the files differ (data/README.md).
function orient(feature) {
  if (d3.geoArea(feature) > 2 * Math.PI) {
    const g = feature.geometry;
    const rewind = (poly) => poly.map((ring) => ring.slice().reverse());
    g.coordinates = g.type === "Polygon" ? rewind(g.coordinates) : g.coordinates.map(rewind);
  }
  return feature;
}

export class AreaMap {
  constructor(root, areas, municipalities, { onSelect }) {
    this.root = root;
    this.onSelect = onSelect;
    this.paths = new Map(); // postcode -> path element
    this.areas = areas.features.map(orient);
    this.municipalities = municipalities.features.map(orient);
    this.panels = [];
    for (const region of REGIONS) this.panels.push(this.panel(region));
  }

  panel(region) {
    const inRegion = (f) => region.municipalities.includes(f.properties.municipality_code);
    const areas = this.areas.filter(inRegion);
    const outlines = this.municipalities.filter(inRegion);
    const figure = d3.select(this.root).append("figure").attr("class", "map-panel");
    const caption = figure.append("figcaption");
    const svg = figure
      .append("svg")
      .attr("viewBox", `0 0 ${WIDTH} ${HEIGHT}`)
      .attr("role", "group");
    const projection = d3
      .geoMercator()
      .fitExtent([[6, 6], [WIDTH - 6, HEIGHT - 6]], { type: "FeatureCollection", features: areas });
    const path = d3.geoPath(projection);
    const self = this;
    // Wheel or pinch zooms, dragging pans: the city centres' areas are small.
    const layer = svg.append("g");
    svg.call(
      d3
        .zoom()
        .scaleExtent([1, 16])
        .translateExtent([[0, 0], [WIDTH, HEIGHT]])
        .on("zoom", (event) => layer.attr("transform", event.transform)),
    );
    layer
      .append("g")
      .selectAll("path")
      .data(areas)
      .join("path")
      .attr("class", "area")
      .attr("d", path)
      .attr("data-postcode", (f) => f.properties.postcode)
      .attr("tabindex", 0)
      .attr("role", "button")
      .each(function (f) {
        self.paths.set(f.properties.postcode, this);
        d3.select(this).append("title");
      })
      .on("click", (_, f) => this.onSelect(f.properties.postcode))
      .on("keydown", (event, f) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          this.onSelect(f.properties.postcode);
        }
      });
    layer
      .append("g")
      .attr("class", "outlines")
      .selectAll("path")
      .data(outlines)
      .join("path")
      .attr("class", "municipality-outline")
      .attr("data-municipality", (f) => f.properties.municipality_code)
      .attr("d", path);
    return { region, caption, svg };
  }

  // values: postcode -> {state, v, text, name}; scale: number -> colour
  paint(values, scale, lang) {
    for (const p of this.panels) {
      p.caption.text(p.region.municipalities.map((c) => municipalityName(c, lang)).join(" – "));
      p.svg.attr("aria-label", `${t("mapTitle", lang)}: ${p.caption.text()}`);
    }
    for (const [pc, el] of this.paths) {
      const x = values.get(pc) ?? { state: "none" };
      const sel = d3.select(el);
      sel
        .attr("data-state", x.state)
        .attr("fill", x.state === "shown" ? scale(x.v) : x.state === "hidden" ? "url(#tk-hatch)" : NO_DATA)
        .classed("hidden-cell", x.state === "hidden")
        .classed("no-data", x.state === "none");
      const what = x.state === "shown" ? x.text : t(x.state === "hidden" ? "hiddenLong" : "noData", lang);
      const name = x.name ? `${pc} ${x.name}` : pc;
      sel.attr("aria-label", `${name}: ${what}`).select("title").text(`${name}: ${what}`);
    }
  }

  select(postcode, municipality) {
    for (const [pc, el] of this.paths) el.classList.toggle("selected", pc === postcode);
    d3.select(this.root)
      .selectAll(".municipality-outline")
      .classed("selected", function () {
        return this.dataset.municipality === municipality;
      });
  }

  mark(postcodes) {
    for (const [pc, el] of this.paths) el.classList.toggle("alerted", postcodes.has(pc));
  }
}

// Classes with round bounds (d3.ticks over 0 … the largest shown value) and a colour
// each; counts get whole-number bounds.
export function colourScale(values, integer = false) {
  const shown = [...values].filter((x) => x.state === "shown").map((x) => x.v);
  const max = Math.max(d3.max(shown) ?? 0, integer ? CLASSES : 0) || 1;
  let bounds;
  for (let n = CLASSES; n >= 1; n--) {
    bounds = d3.ticks(0, max, n);
    if (integer) bounds = bounds.filter(Number.isInteger);
    if (bounds.at(-1) < max) bounds.push(bounds.at(-1) + (bounds[1] - bounds[0]));
    if (bounds.length - 1 <= MAX_CLASSES) break;
  }
  const colours = ramp(bounds.length - 1);
  const scale = d3.scaleThreshold().domain(bounds.slice(1, -1)).range(colours);
  scale.bounds = bounds;
  return scale;
}

export function drawLegend(root, scale, format, lang) {
  const box = d3.select(root);
  box.selectAll("*").remove();
  box.append("span").attr("class", "legend-title").text(t("legend", lang));
  const list = box.append("ul");
  scale.range().forEach((colour, i) => {
    const [lo, hi] = [scale.bounds[i], scale.bounds[i + 1]];
    const li = list.append("li");
    li.append("span").attr("class", "swatch").style("background-color", colour);
    li.append("span").text(`${format(lo)} – ${format(hi)}`);
  });
  const hidden = list.append("li");
  hidden.append("span").attr("class", "swatch swatch-hidden");
  hidden.append("span").text(t("hiddenLong", lang));
  const none = list.append("li");
  none.append("span").attr("class", "swatch swatch-none");
  none.append("span").text(t("noData", lang));
}
