// /trace/{id}: the header, the propagation diagnostics, then the waterfall (with the span detail pane)
// or the statistics. View state in the URL: ?span= (selected), uiFind= (find-in-trace), view=stats.

import { h, clear, download } from "../dom.js";
import * as api from "../api.js";
import { count, duration, serviceColor, time } from "../format.js";
import { loadTrace } from "../data.js";
import { buildTrace, criticalPath, criticalTimes, findSpans } from "../model/trace.js";
import { fromTrace } from "../model/summary.js";
import { Waterfall } from "../views/waterfall.js";
import { spanDetail } from "../views/spandetail.js";
import { statsView } from "../views/stats.js";
import { diagnosticsPanel } from "../views/diagnostics.js";

export const TRACE_ID = /^[0-9a-f]{1,32}$/i;

export function notFound(main, id, err) {
  const gone = err?.status === 404;
  main.append(h("section", { class: "empty" },
    h("h1", { text: gone ? "Trace not found" : "Could not load the trace" }),
    h("p", {}, gone ? ["No trace ", h("code", { text: id }), " in this collector: it may have expired (retention) or not arrived yet."] : err.message),
    h("p", {}, h("a", { href: "/search", text: "Back to search" }))));
}

function header(trace, id, { navigate, signal, doc }) {
  const summary = fromTrace(trace);
  const errors = summary.errorCount;
  const compareInput = h("input", { name: "other", placeholder: "other trace id", "aria-label": "Trace id to compare with", size: 16, spellcheck: "false" });
  return h("header", { class: "trace-header" },
    h("div", { class: "trace-title" },
      h("h1", {}, h("span", { class: "svc", text: summary.rootService }), ": ", summary.rootName),
      h("span", { class: "trace-id mono", title: "Trace id", text: trace.traceId || id })),
    h("dl", { class: "trace-facts" },
      [["Start", time(trace.start)], ["Duration", duration(trace.duration)], ["Services", count(trace.services.size)],
        ["Depth", count(trace.depth)], ["Spans", count(trace.spans.length)], ["Errors", count(errors)]]
        .map(([k, v]) => h("div", { class: ["fact", k === "Errors" && errors > 0 && "bad"] }, h("dt", { text: k }), h("dd", { text: v })))),
    h("div", { class: "service-chips" }, [...trace.services].sort((a, b) => b[1].spans - a[1].spans).map(([name, v]) =>
      h("a", { class: "svc-chip", href: `/service/${encodeURIComponent(name)}`, title: `${v.spans} spans, ${v.errors} errors` },
        h("i", { class: "swatch", style: { background: serviceColor(name) } }), `${name} (${v.spans})`))),
    h("div", { class: "trace-actions" },
      h("button", { type: "button", text: "Download OTLP JSON", on: { click: () => download(`trace-${trace.traceId}.otlp.json`, JSON.stringify(doc.result ?? doc, null, 1)) } }),
      h("button", {
        type: "button", text: "Download Jaeger JSON",
        on: {
          click: async () => {
            const body = await api.get(`/api/traces/${trace.traceId}`, {}, { raw: true, signal });
            download(`trace-${trace.traceId}.jaeger.json`, body);
          },
        },
      }),
      h("form", {
        class: "compare-form",
        on: {
          submit: (e) => {
            e.preventDefault();
            const other = compareInput.value.trim().toLowerCase();
            if (TRACE_ID.test(other)) navigate(`/trace/${trace.traceId}...${other}`);
          },
        },
      }, compareInput, h("button", { type: "submit", text: "Compare" }))));
}

export async function render(main, { captures, params, signal, navigate, setParams }) {
  const [id] = captures;
  document.title = `Trace ${id.slice(0, 7)} · meshtrace`;
  if (!TRACE_ID.test(id)) {
    notFound(main, id, new Error(`"${id}" is not a trace id (1 to 32 hex digits)`));
    return;
  }
  main.append(h("p", { class: "loading", text: "Loading trace…" }));
  const started = performance.now();
  let loaded;
  try {
    loaded = await loadTrace(id, signal);
  } catch (err) {
    if (signal.aborted) return;
    clear(main);
    notFound(main, id, err);
    return;
  }
  const { doc, trace } = loaded;
  const diagPromise = api.get(`/api/meshtrace/traces/${trace.traceId}/diagnostics`, {}, { signal }).catch((err) => err);

  const segments = criticalPath(trace);
  const bySpan = new Map();
  for (const seg of segments) {
    if (!bySpan.has(seg.span)) bySpan.set(seg.span, []);
    bySpan.get(seg.span).push(seg);
  }
  const criticalTime = criticalTimes(segments);
  const spanById = new Map(trace.spans.map((s) => [s.spanId, s]));
  let contextSources = new Map();

  const detailBox = h("div", { class: "detail-box", hidden: true });
  const body = h("div", { class: "trace-body" });
  const showDetail = (span) => {
    setParams({ span: span?.spanId });
    detailBox.hidden = !span;
    body.classList.toggle("with-detail", Boolean(span));
    if (!span) return clear(detailBox);
    clear(detailBox).append(spanDetail(trace, span, {
      criticalTime: criticalTime.get(span) ?? 0,
      contextSource: contextSources.get(span.spanId) ?? sourceAttribute(span),
      onSelect: (s) => waterfall.select(s),
      onClose: () => waterfall.select(null, { scroll: false }),
    }));
  };
  const waterfall = new Waterfall(trace, { critical: bySpan, onSelect: showDetail });

  // Find in trace.
  const find = h("input", { type: "search", placeholder: "Find in trace", "aria-label": "Find in trace", value: params.get("uiFind") ?? "", spellcheck: "false" });
  const findCount = h("span", { class: "find-count", "aria-live": "polite" });
  let matches = [];
  let at = -1;
  const runFind = () => {
    findTimer = 0;
    matches = findSpans(trace, find.value);
    at = -1;
    waterfall.setMatches(matches);
    findCount.textContent = find.value.trim() ? `${matches.length} ${matches.length === 1 ? "match" : "matches"}` : "";
    setParams({ uiFind: find.value.trim() });
  };
  const step = (d) => {
    if (!matches.length) return;
    at = (at + d + matches.length) % matches.length;
    findCount.textContent = `${at + 1} of ${matches.length}`;
    waterfall.select(matches[at]);
  };
  // Typing in a 10,000-span trace: search when the typing pauses, not on every key.
  let findTimer = 0;
  find.addEventListener("input", () => {
    clearTimeout(findTimer);
    findTimer = setTimeout(runFind, trace.spans.length > 2000 ? 200 : 60);
  });
  find.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      if (findTimer) {
        clearTimeout(findTimer);
        findTimer = 0;
        runFind();
      }
      step(e.shiftKey ? -1 : 1);
    }
  });
  const critical = h("input", { type: "checkbox", checked: true, on: { change: () => waterfall.setCritical(critical.checked) } });
  const cpTotal = segments.reduce((sum, s) => sum + s.end - s.start, 0);

  const toolbar = h("div", { class: "wf-toolbar" },
    h("button", { type: "button", text: "Expand all", on: { click: () => waterfall.expandAll() } }),
    h("button", { type: "button", text: "Collapse all", on: { click: () => waterfall.collapseAll() } }),
    h("label", { class: "check", title: "The chain of spans that decides the trace's end-to-end latency" }, critical,
      h("span", { class: "cp-key" }), `Critical path (${criticalTime.size} spans, ${duration(cpTotal)})`),
    h("div", { class: "find" }, find,
      h("button", { type: "button", "aria-label": "Previous match", text: "↑", on: { click: () => step(-1) } }),
      h("button", { type: "button", "aria-label": "Next match", text: "↓", on: { click: () => step(1) } }),
      findCount));

  const timelineTab = h("button", { type: "button", role: "tab", text: "Timeline" });
  const statsTab = h("button", { type: "button", role: "tab", text: "Statistics" });
  const timeline = h("div", { class: "timeline" }, toolbar, h("div", { class: "wf-and-detail" }, waterfall.el, detailBox));
  const stats = h("div", { class: "stats-box" });
  const showView = (view) => {
    const isStats = view === "stats";
    timeline.hidden = isStats;
    stats.hidden = !isStats;
    timelineTab.setAttribute("aria-selected", String(!isStats));
    statsTab.setAttribute("aria-selected", String(isStats));
    if (isStats && !stats.firstChild) stats.append(statsView(trace));
    setParams({ view: isStats ? "stats" : "" });
    if (!isStats) waterfall.refresh();
  };
  timelineTab.addEventListener("click", () => showView("timeline"));
  statsTab.addEventListener("click", () => showView("stats"));

  const diagBox = h("div", { class: "diag-box" }, h("p", { class: "muted", text: "Checking propagation…" }));
  body.append(timeline, stats);
  clear(main).append(h("div", { class: "trace-page" },
    header(trace, id, { navigate, signal, doc }),
    diagBox,
    h("div", { class: "tabs", role: "tablist" }, timelineTab, statsTab),
    body));
  showView(params.get("view"));
  if (find.value) runFind();
  const selected = spanById.get(params.get("span") ?? "");
  if (selected) waterfall.select(selected);
  performance.mark("meshtrace:trace-rendered", { detail: { spans: trace.spans.length, ms: performance.now() - started } });

  diagPromise.then((diag) => {
    if (signal.aborted) return;
    if (!(diag instanceof Error)) {
      contextSources = new Map((diag.contextSources ?? []).map((c) => [c.spanId, c.source]));
    }
    clear(diagBox).append(diagnosticsPanel(diag, trace, (span) => waterfall.select(span)));
  });
  return () => waterfall.destroy();
}

function sourceAttribute(span) {
  const hit = span.attributes.find(([k]) => k === "meshtrace.context.source");
  return hit ? String(hit[1]) : "";
}
