// /service/{name}: request rate, error rate and p50/p95/p99 latency over the last hour, for the service
// and per operation, from the collector's own span metrics (Jaeger's Monitor-tab API, `/api/metrics/*`),
// its callers and callees from the service graph, and links to example traces: slow ones and failed ones.

import { h } from "../dom.js";
import * as api from "../api.js";
import { ago, duration, percent, rate, serviceColor } from "../format.js";
import { fromParams, toParams } from "../model/query.js";
import { searchTraces } from "../data.js";
import { lineChart } from "../views/chart.js";

const HOUR_MS = 3600_000;
const STEP_MS = 60_000;

/** `[{operation, points: [[ms, value]]}]` from a Jaeger metrics family. */
export function series(family) {
  return (family?.metrics ?? []).map((m) => ({
    operation: (m.labels ?? []).find((l) => l.name === "operation")?.value ?? "",
    points: (m.metricPoints ?? []).map((p) => [Date.parse(p.timestamp), Number(p.gaugeValue?.doubleValue ?? p.gaugeValue)]),
  }));
}

function mean(points) {
  const vs = points.map(([, v]) => v).filter(Number.isFinite);
  return vs.length ? vs.reduce((a, b) => a + b, 0) / vs.length : NaN;
}

function searchLink(service, operation, extra) {
  const state = { service, operation, tags: {}, lookback: "1h", limit: 20, diagnostics: [], ...extra };
  return `/search?${toParams(state)}`;
}

export async function render(main, { captures, signal }) {
  const [service] = captures;
  document.title = `${service} · meshtrace`;
  const base = { service, endTs: Date.now(), lookback: HOUR_MS, step: STEP_MS, ratePer: STEP_MS, spanKind: "server" };
  const get = (kind, extra) => api.get(`/api/metrics/${kind}`, { ...base, ...extra }, { signal });
  main.append(h("div", { class: "service-page" },
    h("div", { class: "page-head" },
      h("h1", {}, h("i", { class: "swatch big", style: { background: serviceColor(service) } }), service),
      h("a", { href: searchLink(service, ""), text: "Search its traces" })),
    h("p", { class: "loading", text: "Loading metrics…" })));
  const [calls, errors, p50, p95, p99, opCalls, opErrors, opP95, deps] = await Promise.all([
    get("calls", { groupByOperation: false }),
    get("errors", { groupByOperation: false }),
    get("latencies", { quantile: 0.5, groupByOperation: false }),
    get("latencies", { quantile: 0.95, groupByOperation: false }),
    get("latencies", { quantile: 0.99, groupByOperation: false }),
    get("calls", { groupByOperation: true }),
    get("errors", { groupByOperation: true }),
    get("latencies", { quantile: 0.95, groupByOperation: true }),
    api.data("/api/dependencies", { endTs: Date.now(), lookback: HOUR_MS }, { signal }),
  ]);
  const first = (f) => series(f)[0]?.points ?? [];
  const ms = (v) => duration(v * 1000);
  const charts = h("div", { class: "charts" },
    lineChart("Requests", [{ label: "rate", cls: "s-rate", points: first(calls) }], { format: rate }),
    lineChart("Errors", [{ label: "error rate", cls: "s-err", points: first(errors) }], { format: (v) => percent(v) }),
    lineChart("Latency", [
      { label: "p50", cls: "s-p50", points: first(p50) },
      { label: "p95", cls: "s-p95", points: first(p95) },
      { label: "p99", cls: "s-p99", points: first(p99) },
    ], { format: ms }));

  const byOp = new Map();
  for (const [key, fam] of [["calls", opCalls], ["errors", opErrors], ["p95", opP95]]) {
    for (const x of series(fam)) {
      if (!byOp.has(x.operation)) byOp.set(x.operation, {});
      byOp.get(x.operation)[key] = x.points;
    }
  }
  const ops = [...byOp].map(([operation, v]) => ({
    operation, ...v, rate: mean(v.calls ?? []), errorRate: mean(v.errors ?? []), latency: mean(v.p95 ?? []),
  })).sort((a, b) => (b.rate || 0) - (a.rate || 0) || a.operation.localeCompare(b.operation));

  const spark = (points, cls) => lineChart("", [{ label: "", cls, points: points ?? [] }], { format: String, width: 120, height: 28, spark: true });
  const opTable = ops.length
    ? h("table", { class: "ops" },
      h("caption", { text: "Operations (server spans), last hour" }),
      h("thead", {}, h("tr", {}, ["Operation", "Requests (hour avg)", "", "Error rate", "", "p95 latency", "", "Example traces"].map((t) => h("th", { scope: "col", text: t })))),
      h("tbody", {}, ops.map((o) => h("tr", {},
        h("td", { class: "op", text: o.operation }),
        h("td", { class: "num", text: rate(o.rate) }), h("td", {}, spark(o.calls, "s-rate")),
        h("td", { class: ["num", o.errorRate > 0 && "err"], text: percent(o.errorRate) }), h("td", {}, spark(o.errors, "s-err")),
        h("td", { class: "num", text: Number.isFinite(o.latency) ? ms(o.latency) : "-" }), h("td", {}, spark(o.p95, "s-p95")),
        h("td", { class: "examples" },
          h("a", { href: searchLink(service, o.operation, { minDuration: Number.isFinite(o.latency) ? `${Math.max(1, Math.floor(o.latency))}ms` : "", sort: "longest" }), text: "slow" }),
          " · ",
          h("a", { href: searchLink(service, o.operation, { tags: { error: "true" } }), text: "failed" }))))))
    : h("p", { class: "muted", text: "No server spans of this service in the last hour." });

  const callers = deps.filter((d) => d.child === service);
  const callees = deps.filter((d) => d.parent === service);
  const neighbours = (title, list, key) => h("div", { class: "neighbours" }, h("h3", { text: title }),
    list.length
      ? h("ul", {}, list.map((d) => h("li", {}, h("a", { href: `/service/${encodeURIComponent(d[key])}`, text: d[key] }),
        h("span", { class: "muted", text: ` ${rate(d.callCount / 3600)}${d.errorCount ? `, ${percent(d.errorCount / d.callCount)} errors` : ""}` }))))
      : h("p", { class: "muted", text: "none" }));

  // Example traces: the slowest of the hour's latest 200, and the latest failed ones.
  const examples = (extra) => searchTraces({ ...fromParams(new URLSearchParams()), service, ...extra }, signal)
    .catch(() => []);
  const [recent, failed] = await Promise.all([examples({ limit: 200 }), examples({ limit: 5, tags: { error: "true" } })]);
  const slow = recent.sort((a, b) => b.duration - a.duration).slice(0, 5);
  const exampleList = (title, list, href) => h("div", { class: "neighbours examples-box" },
    h("h3", {}, title, " ", h("a", { href, class: "small", text: "search →" })),
    list.length
      ? h("ul", {}, list.map((t) => h("li", {},
        h("a", { href: `/trace/${t.traceId}`, text: `${t.rootService}: ${t.rootName}` }),
        h("span", { class: "muted", text: ` ${duration(t.duration)}, ${ago(t.start)}${t.errorCount ? `, ${t.errorCount} errors` : ""}` }))))
      : h("p", { class: "muted", text: "none in the last hour" }));

  main.querySelector(".loading")?.remove();
  main.firstChild.append(
    charts,
    h("div", { class: "neighbour-box" },
      exampleList("Slowest recent traces", slow, searchLink(service, "", { sort: "longest", limit: 200 })),
      exampleList("Failed traces", failed, searchLink(service, "", { tags: { error: "true" } }))),
    opTable,
    h("div", { class: "neighbour-box" }, neighbours("Called by", callers, "parent"), neighbours("Calls", callees, "child")));
}
