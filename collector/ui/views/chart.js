// Small line charts for the service page: one or more series over the same time axis, the latest value in
// the legend, gaps where there is no data.

import { h, s } from "../dom.js";

/**
 * series: [{label, cls, points: [[ms, value|null]]}]; format(value) -> text.
 * Returns a figure with an SVG line chart and a legend.
 */
export function lineChart(title, series, { format, width = 320, height = 110, spark = false }) {
  const pad = spark ? { l: 3, r: 3, t: 4, b: 4 } : { l: 64, r: 8, t: 8, b: 18 };
  const all = series.flatMap((x) => x.points).filter(([, v]) => Number.isFinite(v));
  const svg = s("svg", { class: spark ? "spark" : "chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": title });
  const last = (x) => [...x.points].reverse().find(([, v]) => Number.isFinite(v))?.[1];
  const legend = spark ? null : h("div", { class: "chart-legend" }, series.map((x) => h("span", { class: ["legend-item", x.cls] }, `${x.label} `,
    h("b", { text: Number.isFinite(last(x)) ? format(last(x)) : "-" }))));
  if (!all.length) {
    svg.append(s("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "no-data", text: "no data" }));
    return spark ? svg : h("figure", { class: "chart-box" }, h("figcaption", { text: title }), svg, legend);
  }
  // The time axis covers every point asked for, with or without a value.
  const times = series.flatMap((x) => x.points.map(([t]) => t)).filter(Number.isFinite);
  const t0 = Math.min(...times);
  const t1 = Math.max(...times);
  const vMax = Math.max(...all.map(([, v]) => v)) || 1;
  const x = (t) => pad.l + ((t - t0) / (t1 - t0 || 1)) * (width - pad.l - pad.r);
  const y = (v) => height - pad.b - (v / vMax) * (height - pad.t - pad.b);
  if (!spark) {
    svg.append(s("g", { class: "grid" },
      s("line", { x1: pad.l, x2: width - pad.r, y1: y(vMax), y2: y(vMax) }),
      s("line", { x1: pad.l, x2: width - pad.r, y1: y(0), y2: y(0) }),
      s("text", { x: pad.l - 4, y: y(vMax) + 4, "text-anchor": "end", text: format(vMax) }),
      s("text", { x: pad.l - 4, y: y(0) + 4, "text-anchor": "end", text: format(0) }),
      s("text", { x: pad.l, y: height - 4, text: new Date(t0).toTimeString().slice(0, 5) }),
      s("text", { x: width - pad.r, y: height - 4, "text-anchor": "end", text: new Date(t1).toTimeString().slice(0, 5) })));
  }
  for (const serie of series) {
    let d = "";
    const pts = serie.points;
    for (let i = 0; i < pts.length; i++) {
      const [t, v] = pts[i];
      if (!Number.isFinite(v)) continue;
      const joined = i > 0 && Number.isFinite(pts[i - 1][1]);
      d += `${joined ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      // A value alone between gaps is a dot, or it would not show.
      if (!joined && !(i + 1 < pts.length && Number.isFinite(pts[i + 1][1]))) {
        svg.append(s("circle", { cx: x(t).toFixed(1), cy: y(v).toFixed(1), r: spark ? 1.8 : 2.5, class: ["point", serie.cls] }));
      }
    }
    svg.append(s("path", { d, class: ["line", serie.cls] }, s("title", { text: serie.label })));
  }
  return spark ? svg : h("figure", { class: "chart-box" }, h("figcaption", { text: title }), svg, legend);
}
