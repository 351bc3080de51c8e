// /search: the form on the left, the results on the right (a scatter plot and a sortable list). The form
// writes the URL; the URL draws the page. Two results can be picked for a comparison.

import { h, clear } from "../dom.js";
import * as api from "../api.js";
import { ago, count, duration, serviceColor, time } from "../format.js";
import {
  DIAGNOSTICS, LOOKBACKS, MAX_LIMIT, SORTS, formatLogfmt, fromParams, parseLogfmt, sortSummaries, toParams,
  validate, window as searchWindow,
} from "../model/query.js";
import { searchTraces } from "../data.js";
import { scatterPlot } from "../views/scatter.js";

const CHUNK = 150; // list rows appended per frame: 1,500 results stay responsive while they draw

function toLocalInput(us) {
  if (!us) return "";
  const d = new Date(Number(us) / 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function fromLocalInput(text) {
  const ms = new Date(text).getTime();
  return Number.isFinite(ms) ? String(ms * 1000) : "";
}

function field(label, control, hint) {
  return h("label", { class: "field" }, h("span", { class: "label", text: label }), control,
    hint ? h("span", { class: "hint", text: hint }) : null);
}

export async function render(main, { params, signal, navigate }) {
  const state = fromParams(params);
  document.title = state.service ? `${state.service} · Search · meshtrace` : "Search · meshtrace";

  const services = await api.data("/api/services", {}, { signal });
  services.sort((a, b) => a.localeCompare(b));
  if (!services.length) {
    main.append(h("section", { class: "empty" },
      h("h1", { text: "No traces yet" }),
      h("p", { text: "The collector has not received any spans. Send OTLP to its receivers (port 4318 for OTLP/HTTP, 4317 for gRPC, 9411 for Zipkin), or run `make demo`, then reload." })));
    return;
  }
  if (!state.service || !services.includes(state.service)) {
    const missing = state.service;
    state.service = services[0];
    if (missing) state.operation = "";
  }

  const operations = h("select", { name: "operation", "aria-label": "Operation" }, h("option", { value: "", text: "All operations" }));
  const loadOperations = async (service, selected) => {
    const ops = await api.data(`/api/services/${encodeURIComponent(service)}/operations`, {}, { signal });
    operations.replaceChildren(h("option", { value: "", text: "All operations" }),
      ...ops.sort((a, b) => a.localeCompare(b)).map((op) => h("option", { value: op, text: op })));
    operations.value = ops.includes(selected) ? selected : "";
  };
  const service = h("select", {
    name: "service", "aria-label": "Service", value: state.service,
    on: { change: () => { loadOperations(service.value, ""); serviceLink.href = `/service/${encodeURIComponent(service.value)}`; } },
  }, services.map((s) => h("option", { value: s, text: s })));
  const serviceLink = h("a", { href: `/service/${encodeURIComponent(state.service)}`, class: "small", text: "Service page →" });
  await loadOperations(state.service, state.operation);

  const tags = h("input", {
    name: "tags", value: formatLogfmt(state.tags), placeholder: "http.response.status_code=500 error=true",
    spellcheck: "false", autocomplete: "off",
  });
  const lookback = h("select", { name: "lookback", value: state.lookback }, LOOKBACKS.map(([v, t]) => h("option", { value: v, text: t })));
  const startIn = h("input", { type: "datetime-local", name: "start", value: toLocalInput(state.start) });
  const endIn = h("input", { type: "datetime-local", name: "end", value: toLocalInput(state.end) });
  const custom = h("div", { class: "custom-range", hidden: state.lookback !== "custom" },
    field("From", startIn), field("To", endIn));
  lookback.addEventListener("change", () => {
    custom.hidden = lookback.value !== "custom";
    if (!custom.hidden && !startIn.value) {
      startIn.value = toLocalInput((Date.now() - 3600e3) * 1000);
      endIn.value = toLocalInput(Date.now() * 1000);
    }
  });
  const minD = h("input", { name: "minDuration", value: state.minDuration, placeholder: "e.g. 100ms", size: 8 });
  const maxD = h("input", { name: "maxDuration", value: state.maxDuration, placeholder: "e.g. 1.5s", size: 8 });
  const limit = h("input", { name: "limit", type: "number", min: 1, max: MAX_LIMIT, value: state.limit });
  const diag = DIAGNOSTICS.map(([key, label, why]) => h("label", { class: "check", title: why },
    h("input", { type: "checkbox", name: "diagnostics", value: key, checked: state.diagnostics.includes(key) }), label));
  const problem = h("p", { class: "form-error", role: "alert", hidden: true });

  const form = h("form", {
    class: "search-form", "aria-label": "Find traces",
    on: {
      submit: (event) => {
        event.preventDefault();
        const next = {
          ...state,
          service: service.value,
          operation: operations.value,
          tags: parseLogfmt(tags.value),
          lookback: lookback.value,
          start: lookback.value === "custom" ? fromLocalInput(startIn.value) : "",
          end: lookback.value === "custom" ? fromLocalInput(endIn.value) : "",
          minDuration: minD.value.trim(),
          maxDuration: maxD.value.trim(),
          limit: Math.min(MAX_LIMIT, Math.max(1, Number(limit.value) || 20)),
          diagnostics: diag.map((l) => l.querySelector("input")).filter((i) => i.checked).map((i) => i.value),
        };
        const why = validate(next);
        problem.hidden = !why;
        problem.textContent = why;
        if (!why) navigate(`/search?${toParams(next)}`);
      },
    },
  },
  h("h2", { text: "Find traces" }),
  field("Service", service), serviceLink,
  field("Operation", operations),
  field("Tags", tags, "logfmt: key=value pairs, quote values with spaces"),
  field("Lookback", lookback), custom,
  h("div", { class: "row2" }, field("Min duration", minD), field("Max duration", maxD)),
  field("Limit results", limit),
  h("fieldset", { class: "diagnostics" }, h("legend", { text: "Only traces with" }), diag),
  problem,
  h("button", { type: "submit", class: "primary", text: "Find traces" }));

  const results = h("section", { class: "results", "aria-live": "polite" }, h("p", { class: "loading", text: "Searching…" }));
  main.append(h("div", { class: "search-page" }, form, results));

  const why = validate(state);
  if (why) {
    clear(results).append(h("p", { class: "form-error", text: why }));
    return;
  }
  const started = performance.now();
  let summaries;
  try {
    summaries = await searchTraces(state, signal);
  } catch (err) {
    if (signal.aborted) return;
    clear(results).append(h("div", { class: "error-box", role: "alert" }, h("h2", { text: "Search failed" }), h("p", { text: err.message })));
    return;
  }
  return showResults(results, summaries, state, { navigate, signal, started });
}

function showResults(results, summaries, state, { navigate, signal, started }) {
  clear(results);
  const picked = new Set();
  const compareButton = h("button", {
    type: "button", disabled: true, text: "Compare 2 traces",
    on: { click: () => { const [a, b] = [...picked]; navigate(`/trace/${a}...${b}`); } },
  });
  const sort = h("select", {
    "aria-label": "Sort", value: state.sort,
    on: { change: () => { state.sort = sort.value; navigate(`/search?${toParams(state)}`, { replace: true }); } },
  }, SORTS.map(([v, t]) => h("option", { value: v, text: t })));
  const header = h("div", { class: "results-header" },
    h("h2", { class: "result-count", text: `${count(summaries.length)} ${summaries.length === 1 ? "trace" : "traces"}` }),
    h("div", { class: "results-tools" }, compareButton, h("label", { class: "inline" }, "Sort ", sort)));
  results.append(header);
  if (!summaries.length) {
    results.append(h("p", { class: "empty-results", text: "No traces match. Widen the lookback, or remove a tag or a duration bound." }));
    return;
  }
  const open = (t) => navigate(`/trace/${t.traceId}`);
  const plotBox = h("div", { class: "scatter-box" });
  results.append(plotBox);
  const drawPlot = () => clear(plotBox).append(scatterPlot(summaries, { width: Math.max(320, plotBox.clientWidth || 800), onOpen: open }));
  drawPlot();
  const observer = new ResizeObserver(() => drawPlot());
  observer.observe(plotBox);

  sortSummaries(summaries, state.sort);
  const maxDuration = Math.max(...summaries.map((t) => t.duration), 1);
  const list = h("ol", { class: "result-list" });
  results.append(list);
  const row = (t) => {
    const box = h("input", {
      type: "checkbox", "aria-label": `Pick ${t.traceId} to compare`,
      on: {
        change: () => {
          if (box.checked) picked.add(t.traceId);
          else picked.delete(t.traceId);
          compareButton.disabled = picked.size !== 2;
        },
      },
    });
    const badges = [
      h("span", { class: "badge", text: `${count(t.spanCount)} ${t.spanCount === 1 ? "span" : "spans"}` }),
      t.errorCount ? h("span", { class: "badge error", text: `${count(t.errorCount)} ${t.errorCount === 1 ? "error" : "errors"}` }) : null,
      t.orphanCount ? h("span", { class: "badge warn", text: `${t.orphanCount} orphan${t.orphanCount === 1 ? "" : "s"}` }) : null,
      t.rootCount > 1 ? h("span", { class: "badge warn", text: `${t.rootCount} roots` }) : null,
      t.untracedCalleeCount ? h("span", { class: "badge info", title: "CLIENT spans with no SERVER span below them", text: `${t.untracedCalleeCount} untraced callee${t.untracedCalleeCount === 1 ? "" : "s"}` }) : null,
      t.clockSkewCount ? h("span", { class: "badge warn", text: "clock skew" }) : null,
    ];
    const bar = h("div", { class: "result-bar" }, h("div", { style: { width: `${(100 * t.duration) / maxDuration}%` } }));
    return h("li", { class: "result" },
      box,
      h("div", { class: "result-main" },
        h("div", { class: "result-title" },
          h("a", { href: `/trace/${t.traceId}`, class: "result-name" },
            h("span", { class: "svc", text: t.rootService || "(no root)" }), ": ", t.rootName),
          h("span", { class: "trace-id mono", text: t.traceId.slice(0, 7) }),
          h("span", { class: "result-duration", text: duration(t.duration) })),
        bar,
        h("div", { class: "result-meta" },
          badges,
          h("span", { class: "services" }, t.services.map((s) => h("span", { class: "svc-chip", title: `${s.name}: ${s.spanCount} spans, ${s.errorCount} errors` },
            h("i", { class: "swatch", style: { background: serviceColor(s.name) } }), `${s.name} (${s.spanCount})`,
            s.errorCount ? h("b", { class: "err", text: ` ${s.errorCount}!` }) : null))),
          h("span", { class: "when", title: time(t.start), text: `${time(t.start).slice(0, 19)} · ${ago(t.start)}` }))));
  };
  // The first rows at once, the rest a chunk per frame.
  let next = 0;
  const appendChunk = () => {
    if (signal.aborted) return;
    const frag = document.createDocumentFragment();
    for (const end = Math.min(summaries.length, next + CHUNK); next < end; next++) frag.append(row(summaries[next]));
    list.append(frag);
    if (next < summaries.length) requestAnimationFrame(appendChunk);
    else performance.mark("meshtrace:search-rendered", { detail: { results: summaries.length, ms: performance.now() - started } });
  };
  appendChunk();
  return () => observer.disconnect();
}
