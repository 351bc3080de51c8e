// Where the pages get traces and search results. The collector answers Jaeger's API v3 (OTLP JSON traces,
// trace summaries with meshtrace's diagnostics counts); a collector without it (an older build behind the
// same viewer) is read through Jaeger's legacy API instead, with the summaries computed here.

import * as api from "./api.js";
import { fromJaeger, fromOtlp } from "./model/spans.js";
import { buildTrace } from "./model/trace.js";
import { fromTrace, fromV3Summary } from "./model/summary.js";
import { window as searchWindow } from "./model/query.js";

let v3 = true;

function missingEndpoint(err) {
  return err instanceof api.ApiError && err.status === 404 && /no such api endpoint/i.test(err.message);
}

/** { doc (what "Download OTLP JSON" saves, or null), trace (buildTrace) }; ApiError 404 when unknown. */
export async function loadTrace(id, signal) {
  if (v3) {
    try {
      const doc = await api.get(`/api/v3/traces/${encodeURIComponent(id)}`, {}, { signal });
      const trace = buildTrace(fromOtlp(doc));
      if (!trace.spans.length) throw new api.ApiError(404, "trace not found");
      return { doc, trace };
    } catch (err) {
      if (!missingEndpoint(err)) throw err;
      v3 = false;
    }
  }
  const [jaeger] = await api.data(`/api/traces/${encodeURIComponent(id)}`, {}, { signal });
  const trace = buildTrace(fromJaeger(jaeger));
  if (!trace.spans.length) throw new api.ApiError(404, "trace not found");
  return { doc: null, trace };
}

/** Trace summaries (model/summary.js) for a search form state (model/query.js). */
export async function searchTraces(state, signal) {
  const [start, end] = searchWindow(state);
  if (v3) {
    const params = {
      "query.serviceName": state.service,
      "query.operationName": state.operation,
      "query.startTimeMin": new Date(start / 1000).toISOString(),
      "query.startTimeMax": new Date(end / 1000).toISOString(),
      "query.durationMin": state.minDuration,
      "query.durationMax": state.maxDuration,
      "query.searchDepth": state.limit,
      "query.attributes": Object.keys(state.tags).length ? JSON.stringify(state.tags) : "",
      "query.meshtrace.diagnostics": state.diagnostics.join(","),
    };
    try {
      const body = await api.get("/api/v3/trace-summaries", params, { signal });
      return (body.summaries ?? []).map(fromV3Summary);
    } catch (err) {
      if (!missingEndpoint(err)) throw err;
      v3 = false;
    }
  }
  const traces = await api.data("/api/traces", {
    service: state.service,
    operation: state.operation,
    tags: Object.keys(state.tags).length ? JSON.stringify(state.tags) : "",
    start: Math.floor(start),
    end: Math.ceil(end),
    minDuration: state.minDuration,
    maxDuration: state.maxDuration,
    limit: state.limit,
  }, { signal });
  const wanted = {
    orphans: (t) => t.orphanCount > 0,
    multipleRoots: (t) => t.rootCount > 1,
    untracedCallees: (t) => t.untracedCalleeCount > 0,
    clockSkew: (t) => t.clockSkewCount > 0,
  };
  return traces.map((t) => fromTrace(buildTrace(fromJaeger(t))))
    .filter((t) => state.diagnostics.every((d) => wanted[d]?.(t) ?? true));
}
