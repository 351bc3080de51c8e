// The search results as a scatter plot: start time across, duration up, errors in red, the size of a dot
// by its span count. A click on a dot opens the trace.

import { s } from "../dom.js";
import { duration, time } from "../format.js";

/** Round tick values covering [lo, hi], about `n` of them. */
export function ticks(lo, hi, n = 4) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((st) => st >= raw) ?? raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
  return out;
}

export function scatterPlot(summaries, { width, height = 170, onOpen }) {
  const pad = { left: 64, right: 16, top: 12, bottom: 26 };
  const svg = s("svg", {
    class: "scatter", viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-label": `${summaries.length} traces by start time and duration`,
  });
  if (!summaries.length) return svg;
  let t0 = Infinity;
  let t1 = -Infinity;
  let dMax = 0;
  for (const t of summaries) {
    t0 = Math.min(t0, t.start);
    t1 = Math.max(t1, t.start);
    dMax = Math.max(dMax, t.duration);
  }
  if (t1 - t0 < 1e6) {
    t0 -= 5e5;
    t1 += 5e5;
  }
  const yTicks = ticks(0, dMax * 1.05 || 1, 4);
  const yMax = Math.max(yTicks[yTicks.length - 1], dMax * 1.08) || 1;
  const x = (us) => pad.left + ((us - t0) / (t1 - t0)) * (width - pad.left - pad.right);
  const y = (us) => height - pad.bottom - (us / yMax) * (height - pad.top - pad.bottom);
  const maxSpans = Math.max(...summaries.map((t) => t.spanCount), 1);

  const grid = s("g", { class: "grid" });
  for (const v of yTicks) {
    grid.append(s("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v) }),
      s("text", { x: pad.left - 6, y: y(v) + 4, "text-anchor": "end", text: duration(v) }));
  }
  const xTicks = ticks(t0, t1, Math.max(2, Math.floor(width / 160)));
  // HH:MM:SS, with milliseconds when the results span only a few seconds.
  const clock = (v) => time(v).slice(11, t1 - t0 < 10e6 ? 23 : 19);
  for (const v of xTicks) {
    grid.append(s("text", { x: x(v), y: height - 8, "text-anchor": "middle", text: clock(v) }));
  }
  const dots = s("g", { class: "dots" });
  // Errors last, so they are drawn on top.
  const ordered = summaries.slice().sort((a, b) => Number(a.errorCount > 0) - Number(b.errorCount > 0));
  for (const t of ordered) {
    const r = 3 + 5 * Math.sqrt(t.spanCount / maxSpans);
    const dot = s("circle", {
      cx: x(t.start).toFixed(1), cy: y(t.duration).toFixed(1), r: r.toFixed(1),
      class: t.errorCount > 0 ? "dot error" : "dot", tabindex: 0, role: "link",
      "aria-label": `${t.rootService}: ${t.rootName}, ${duration(t.duration)}`,
      on: {
        click: () => onOpen(t),
        keydown: (e) => e.key === "Enter" && onOpen(t),
      },
    }, s("title", { text: `${t.rootService}: ${t.rootName}\n${duration(t.duration)} · ${t.spanCount} spans${t.errorCount ? ` · ${t.errorCount} errors` : ""}\n${time(t.start)}` }));
    dots.append(dot);
  }
  svg.append(grid, dots);
  return svg;
}
