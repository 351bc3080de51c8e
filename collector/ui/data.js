// Where the pages get traces and search results: the collector's Jaeger API v3 (OTLP JSON traces, and
// trace summaries with meshtrace's diagnostics counts, so a search of 1,500 results moves 1,500 small
// records, not 1,500 traces).

import * as api from "./api.js";
import { fromOtlp } from "./model/spans.js";
import { buildTrace } from "./model/trace.js";
import { fromV3Summary } from "./model/summary.js";
import { window as searchWindow } from "./model/query.js";

/** { doc (the OTLP JSON, what "Download OTLP JSON" saves), trace (buildTrace) }; ApiError 404 when unknown. */
export async function loadTrace(id, signal) {
  const doc = await api.get(`/api/v3/traces/${encodeURIComponent(id)}`, {}, { signal });
  const trace = buildTrace(fromOtlp(doc));
  if (!trace.spans.length) throw new api.ApiError(404, "trace not found");
  return { doc, trace };
}

/** Trace summaries (model/summary.js) for a search form state (model/query.js). */
export async function searchTraces(state, signal) {
  const [start, end] = searchWindow(state);
  const body = await api.get("/api/v3/trace-summaries", {
    "query.serviceName": state.service,
    "query.operationName": state.operation,
    "query.startTimeMin": new Date(start / 1000).toISOString(),
    "query.startTimeMax": new Date(end / 1000).toISOString(),
    "query.durationMin": state.minDuration,
    "query.durationMax": state.maxDuration,
    "query.searchDepth": state.limit,
    "query.attributes": Object.keys(state.tags).length ? JSON.stringify(state.tags) : "",
    "query.meshtrace.diagnostics": state.diagnostics.join(","),
  }, { signal });
  return (body.summaries ?? []).map(fromV3Summary);
}
