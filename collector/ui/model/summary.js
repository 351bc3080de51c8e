// A search result in one shape, whichever API produced it:
//   { traceId, rootService, rootName, start, duration (µs), spanCount, errorCount, orphanCount,
//     rootCount, untracedCalleeCount, clockSkewCount, services: [{name, spanCount, errorCount}] }

import { nanosToMicros } from "./spans.js";

/** From one entry of `/api/v3/trace-summaries` (`summaries[]`). */
export function fromV3Summary(x) {
  const start = nanosToMicros(x.minStartTimeUnixNano);
  const end = nanosToMicros(x.maxEndTimeUnixNano);
  const m = x.meshtrace ?? {};
  return {
    traceId: String(x.traceId ?? ""),
    rootService: String(x.rootServiceName ?? ""),
    rootName: String(x.rootOperationName ?? ""),
    start,
    duration: Math.max(0, end - start),
    spanCount: Number(x.spanCount) || 0,
    errorCount: Number(x.errorSpanCount) || 0,
    orphanCount: Number(x.orphanSpanCount) || 0,
    rootCount: Number(m.rootSpanCount ?? 1),
    untracedCalleeCount: Number(m.untracedCalleeCount) || 0,
    clockSkewCount: Number(m.clockSkewCount) || 0,
    services: (x.services ?? []).map((s) => ({
      name: String(s.name ?? ""), spanCount: Number(s.spanCount) || 0, errorCount: Number(s.errorSpanCount) || 0,
    })).sort((a, b) => b.spanCount - a.spanCount || a.name.localeCompare(b.name)),
  };
}

/** From a trace built by buildTrace (model/trace.js). */
export function fromTrace(trace) {
  const root = trace.roots.slice().sort((a, b) => a.start - b.start)[0] ?? trace.top[0];
  return {
    traceId: trace.traceId,
    rootService: root?.service ?? "",
    rootName: root?.name ?? "",
    start: trace.start,
    duration: trace.duration,
    spanCount: trace.spans.length,
    errorCount: trace.spans.filter((s) => s.error).length,
    orphanCount: trace.orphans.length,
    rootCount: trace.roots.length,
    untracedCalleeCount: trace.spans.filter((s) => s.kind === "client" && !s.children.some((c) => c.kind === "server")).length,
    clockSkewCount: trace.skewed.length,
    services: [...trace.services].map(([name, v]) => ({ name, spanCount: v.spans, errorCount: v.errors }))
      .sort((a, b) => b.spanCount - a.spanCount || a.name.localeCompare(b.name)),
  };
}
