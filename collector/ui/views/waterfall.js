// The waterfall: one row per span on a shared time axis, subtrees collapsible, a colour per service,
// errors, clock skew and orphans marked, the critical path drawn over the bars, find matches highlighted.
// Only the rows on screen exist in the DOM (a 10,000-span trace stays smooth); a minimap above shows the
// whole trace, where the view is, and a drag on it zooms the time axis.

import { h, clear } from "../dom.js";
import { duration, serviceColor } from "../format.js";
import { descendants, visibleRows } from "../model/trace.js";

const ROW_H = 26;
const OVERSCAN = 12;
const MINIMAP_H = 48;
const INDENT = 14;
const MAX_INDENT_LEVELS = 24;

export class Waterfall {
  /**
   * trace: from buildTrace; critical: Map(span -> [{start, end}]); onSelect(span|null).
   */
  constructor(trace, { critical, onSelect }) {
    this.trace = trace;
    this.critical = critical;
    this.onSelect = onSelect;
    this.collapsed = new Set();
    this.selected = null;
    this.matches = new Set();
    this.showCritical = true;
    this.view = [0, 1]; // the zoomed part of the trace, as fractions of its duration
    this.rows = visibleRows(trace, this.collapsed);
    this.cache = new Map();
    this.frame = 0;
    this.build();
  }

  build() {
    this.spacer = h("div", { class: "wf-spacer" });
    this.scroller = h("div", {
      class: "wf-scroll", tabindex: 0, role: "tree", "aria-label": "Spans",
      on: {
        scroll: () => this.schedule(),
        click: (e) => this.onClick(e),
        keydown: (e) => this.onKey(e),
      },
    }, this.spacer);
    this.axis = h("div", { class: "wf-axis" });
    this.canvas = h("canvas", { class: "minimap-canvas", height: MINIMAP_H, "aria-hidden": "true" });
    this.mmViewport = h("div", { class: "mm-viewport" });
    this.mmZoom = h("div", { class: "mm-zoom", hidden: true });
    this.minimap = h("div", { class: "minimap", title: "Drag across to zoom in on a time range; click to jump; double-click to zoom out" },
      this.canvas, this.mmViewport, this.mmZoom);
    this.resetZoom = h("button", { type: "button", class: "small", hidden: true, text: "Reset zoom", on: { click: () => this.setView([0, 1]) } });
    this.el = h("div", { class: "waterfall" },
      this.minimap,
      h("div", { class: "wf-header" },
        h("div", { class: "wf-name-col" }, h("span", { text: "Service & operation" }), this.resetZoom),
        this.axis),
      this.scroller);
    this.bindMinimap();
    this.resizeObserver = new ResizeObserver(() => {
      this.drawMinimap();
      this.schedule();
    });
    this.resizeObserver.observe(this.scroller);
  }

  destroy() {
    this.resizeObserver.disconnect();
    cancelAnimationFrame(this.frame);
  }

  // ---- state changes ----------------------------------------------------------------------------------

  refresh({ rows = false } = {}) {
    if (rows) this.rows = visibleRows(this.trace, this.collapsed);
    this.cache.clear();
    clear(this.spacer);
    this.drawMinimap();
    this.drawAxis();
    this.render();
  }

  toggle(span) {
    if (!span.children.length) return;
    if (this.collapsed.has(span)) this.collapsed.delete(span);
    else this.collapsed.add(span);
    this.refresh({ rows: true });
  }

  collapseAll() {
    for (const span of this.trace.spans) if (span.children.length) this.collapsed.add(span);
    this.refresh({ rows: true });
  }

  expandAll() {
    this.collapsed.clear();
    this.refresh({ rows: true });
  }

  setCritical(on) {
    this.showCritical = on;
    this.refresh();
  }

  setMatches(spans) {
    this.matches = new Set(spans);
    this.refresh();
  }

  setView(view) {
    this.view = view;
    this.resetZoom.hidden = view[0] === 0 && view[1] === 1;
    this.refresh();
  }

  /** Selects a span (expanding its ancestors) and scrolls it into view. */
  select(span, { scroll = true, notify = true } = {}) {
    this.selected = span;
    if (span) {
      let opened = false;
      for (let p = span.parent; p; p = p.parent) if (this.collapsed.delete(p)) opened = true;
      if (opened) this.rows = visibleRows(this.trace, this.collapsed);
      if (scroll) this.scrollTo(span);
    }
    this.refresh();
    if (notify) this.onSelect?.(span);
  }

  scrollTo(span) {
    const i = this.rows.indexOf(span);
    if (i < 0) return;
    const top = i * ROW_H;
    const { scrollTop, clientHeight } = this.scroller;
    if (top < scrollTop || top + ROW_H > scrollTop + clientHeight) {
      this.scroller.scrollTop = Math.max(0, top - clientHeight / 3);
    }
  }

  // ---- drawing -----------------------------------------------------------------------------------------

  schedule() {
    cancelAnimationFrame(this.frame);
    this.frame = requestAnimationFrame(() => this.render());
  }

  /** x of a time as a percentage of the timeline column, in the zoomed view. */
  pct(us) {
    const t = this.trace;
    const [a, b] = this.view;
    const span = (b - a) * t.duration || 1;
    return ((us - t.start - a * t.duration) / span) * 100;
  }

  render() {
    const total = this.rows.length;
    this.spacer.style.height = `${total * ROW_H}px`;
    const { scrollTop, clientHeight } = this.scroller;
    const first = Math.max(0, Math.floor(scrollTop / ROW_H) - OVERSCAN);
    const last = Math.min(total, Math.ceil((scrollTop + (clientHeight || 600)) / ROW_H) + OVERSCAN);
    const keep = new Set();
    for (let i = first; i < last; i++) {
      const span = this.rows[i];
      keep.add(span);
      let row = this.cache.get(span);
      if (!row) {
        row = this.row(span, i);
        this.cache.set(span, row);
        this.spacer.append(row);
      }
      row.style.transform = `translateY(${i * ROW_H}px)`;
    }
    for (const [span, row] of this.cache) {
      if (!keep.has(span)) {
        row.remove();
        this.cache.delete(span);
      }
    }
    this.placeViewport();
  }

  row(span, index) {
    const depth = Math.min(span.depth, MAX_INDENT_LEVELS);
    const hasKids = span.children.length > 0;
    const collapsed = this.collapsed.has(span);
    const color = serviceColor(span.service);
    const segments = this.critical.get(span);
    const onPath = Boolean(segments);
    const left = this.pct(span.start);
    const width = Math.max(this.pct(span.end) - left, 0.15);
    const marks = [];
    if (span.error) marks.push(h("span", { class: "mark error", title: "Error", text: "!" }));
    if (span.orphan) marks.push(h("span", { class: "mark warn", title: `Orphan: parent ${span.parentId} never arrived`, text: "orphan" }));
    if (span.skew > 0) marks.push(h("span", { class: "mark warn", title: `Clock skew: starts ${duration(span.skew)} before its parent`, text: "skew" }));
    const bar = h("div", {
      class: ["bar", span.error && "error", this.showCritical && !onPath && "off-path"],
      style: { left: `${left}%`, width: `${width}%`, background: color },
    });
    if (this.showCritical && segments) {
      for (const seg of segments) {
        const segLeft = ((seg.start - span.start) / (span.duration || 1)) * 100;
        const segWidth = ((seg.end - seg.start) / (span.duration || 1)) * 100;
        bar.append(h("div", { class: "cp", style: { left: `${segLeft}%`, width: `${Math.max(segWidth, 0.5)}%` } }));
      }
    }
    // The duration beside the bar where there is room, else inside it.
    const right = 100 - left - width;
    const place = right > 14 ? { left: `calc(${left + width}% + 4px)` }
      : left > 14 ? { right: `calc(${100 - left}% + 4px)` }
        : { right: `calc(${right}% + 4px)` };
    const label = h("span", {
      class: ["bar-label", right <= 14 && left <= 14 && "inside"], text: duration(span.duration), style: place,
    });
    return h("div", {
      class: ["wf-row", this.selected === span && "selected", this.matches.has(span) && "match",
        this.matches.size && !this.matches.has(span) && "dim", span.error && "has-error"],
      role: "treeitem", "aria-level": span.depth + 1, "aria-selected": this.selected === span ? "true" : "false",
      "aria-expanded": hasKids ? String(!collapsed) : undefined,
      dataset: { index: String(index) },
    },
    h("div", { class: "wf-name", style: { paddingLeft: `${6 + depth * INDENT}px`, borderLeftColor: color } },
      hasKids
        ? h("button", {
          type: "button", class: ["toggle", collapsed && "collapsed"],
          "aria-label": collapsed ? `Expand ${descendants(span)} hidden spans` : "Collapse",
          text: collapsed ? `+${descendants(span)}` : "",
        })
        : h("span", { class: "toggle-space" }),
      h("span", { class: "svc", text: span.service }),
      h("span", { class: "op", text: span.name }),
      marks),
    h("div", { class: "wf-time" }, bar, label));
  }

  drawAxis() {
    const t = this.trace;
    const [a, b] = this.view;
    const labels = [];
    for (let i = 0; i <= 4; i++) {
      const us = (a + ((b - a) * i) / 4) * t.duration;
      labels.push(h("span", { class: "tick", style: { left: `${i * 25}%` }, text: duration(us) }));
    }
    clear(this.axis).append(...labels);
  }

  drawMinimap() {
    const canvas = this.canvas;
    const width = this.minimap.clientWidth || 800;
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(MINIMAP_H * ratio);
    canvas.style.width = `${width}px`;
    canvas.style.height = `${MINIMAP_H}px`;
    const ctx = canvas.getContext("2d");
    if (!ctx) return;
    ctx.scale(ratio, ratio);
    const t = this.trace;
    const n = this.rows.length || 1;
    const rowH = Math.max(MINIMAP_H / n, 0.5);
    const colors = new Map();
    for (let i = 0; i < this.rows.length; i++) {
      const span = this.rows[i];
      let c = colors.get(span.service);
      if (!c) colors.set(span.service, (c = serviceColor(span.service)));
      ctx.fillStyle = span.error ? "#d62728" : c;
      const x = ((span.start - t.start) / (t.duration || 1)) * width;
      const w = Math.max((span.duration / (t.duration || 1)) * width, 1);
      ctx.fillRect(x, (i / n) * MINIMAP_H, w, Math.max(rowH, 1));
    }
    const [a, b] = this.view;
    this.mmZoom.hidden = a === 0 && b === 1;
    Object.assign(this.mmZoom.style, { left: `${a * 100}%`, width: `${(b - a) * 100}%` });
  }

  placeViewport() {
    const total = this.rows.length * ROW_H || 1;
    const { scrollTop, clientHeight } = this.scroller;
    const top = (scrollTop / total) * MINIMAP_H;
    const height = Math.max(3, Math.min(MINIMAP_H, (clientHeight / total) * MINIMAP_H));
    Object.assign(this.mmViewport.style, { top: `${top}px`, height: `${height}px` });
  }

  bindMinimap() {
    let down = null;
    const fraction = (e) => {
      const r = this.minimap.getBoundingClientRect();
      return [Math.min(1, Math.max(0, (e.clientX - r.left) / r.width)), Math.min(1, Math.max(0, (e.clientY - r.top) / r.height))];
    };
    this.minimap.addEventListener("pointerdown", (e) => {
      down = { at: fraction(e), x: e.clientX };
      this.minimap.setPointerCapture(e.pointerId);
    });
    this.minimap.addEventListener("pointermove", (e) => {
      if (!down || Math.abs(e.clientX - down.x) < 5) return;
      const [x] = fraction(e);
      const lo = Math.min(x, down.at[0]);
      const hi = Math.max(x, down.at[0]);
      this.mmZoom.hidden = false;
      Object.assign(this.mmZoom.style, { left: `${lo * 100}%`, width: `${(hi - lo) * 100}%` });
    });
    this.minimap.addEventListener("pointerup", (e) => {
      if (!down) return;
      const [x, y] = fraction(e);
      if (Math.abs(e.clientX - down.x) >= 5) {
        const lo = Math.min(x, down.at[0]);
        const hi = Math.max(x, down.at[0]);
        if (hi - lo > 0.001) this.setView([lo, hi]);
      } else {
        const total = this.rows.length * ROW_H;
        this.scroller.scrollTop = Math.max(0, y * total - this.scroller.clientHeight / 2);
      }
      down = null;
    });
    this.minimap.addEventListener("dblclick", () => this.setView([0, 1]));
  }

  // ---- input -------------------------------------------------------------------------------------------

  spanAt(target) {
    const row = target.closest?.(".wf-row");
    return row ? this.rows[Number(row.dataset.index)] : null;
  }

  onClick(e) {
    const span = this.spanAt(e.target);
    if (!span) return;
    if (e.target.closest(".toggle")) this.toggle(span);
    else this.select(this.selected === span ? null : span, { scroll: false });
  }

  onKey(e) {
    const i = this.selected ? this.rows.indexOf(this.selected) : -1;
    const go = (j) => {
      e.preventDefault();
      const span = this.rows[Math.max(0, Math.min(this.rows.length - 1, j))];
      if (span) this.select(span);
    };
    if (e.key === "ArrowDown") go(i + 1);
    else if (e.key === "ArrowUp") go(i < 0 ? 0 : i - 1);
    else if (e.key === "ArrowLeft" && this.selected) {
      e.preventDefault();
      if (this.selected.children.length && !this.collapsed.has(this.selected)) this.toggle(this.selected);
      else if (this.selected.parent) this.select(this.selected.parent);
    } else if (e.key === "ArrowRight" && this.selected && this.collapsed.has(this.selected)) {
      e.preventDefault();
      this.toggle(this.selected);
    } else if (e.key === "Escape" && this.selected) {
      e.preventDefault();
      this.select(null, { scroll: false });
    }
  }
}
