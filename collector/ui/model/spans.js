// Spans from the wire into one plain shape the views share:
//
//   { traceId, spanId, parentId, service, name, kind, start, duration, end,   (times in µs since the epoch)
//     status: {code: "ok"|"error"|"unset", message}, error,
//     attributes: [[key, value]], resource: [[key, value]], scope: {name, version},
//     events: [{time, name, attributes}], links: [{traceId, spanId, attributes}] }
//
// from OTLP JSON (`/api/v3/traces/{id}`: `{"result": {"resourceSpans": [...]}}`). Pure functions, no DOM.

const KINDS = ["unspecified", "internal", "server", "client", "producer", "consumer"];

/** OTLP's decimal-string nanoseconds to µs without losing precision to 2^53. */
export function nanosToMicros(ns) {
  const s = String(ns ?? "0");
  if (s.length <= 3) return Number(s) / 1000;
  return Number(s.slice(0, -3)) + Number(s.slice(-3)) / 1000;
}

/** An OTLP id (hex, or base64 as protobuf's JSON mapping writes bytes) as lower-case hex. */
export function hexId(id) {
  const s = String(id ?? "");
  if (/^[0-9a-fA-F]*$/.test(s)) return s.toLowerCase();
  try {
    return Array.from(atob(s), (c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join("");
  } catch {
    return s;
  }
}

/** An OTLP AnyValue as a JS value (arrays and maps nested, int64 kept as its decimal string). */
export function anyValue(v) {
  if (!v || typeof v !== "object") return v ?? "";
  if ("stringValue" in v) return v.stringValue;
  if ("boolValue" in v) return v.boolValue;
  if ("intValue" in v) return String(v.intValue);
  if ("doubleValue" in v) return v.doubleValue;
  if ("bytesValue" in v) return hexId(v.bytesValue);
  if ("arrayValue" in v) return (v.arrayValue?.values ?? []).map(anyValue);
  if ("kvlistValue" in v) return Object.fromEntries(attributes(v.kvlistValue?.values));
  return "";
}

function attributes(list) {
  return (list ?? []).map((kv) => [String(kv.key), anyValue(kv.value)]);
}

function kindOf(kind) {
  if (typeof kind === "number") return KINDS[kind] ?? "unspecified";
  const k = String(kind ?? "").toLowerCase().replace(/^span_kind_/, "");
  return KINDS.includes(k) ? k : "unspecified";
}

function statusOf(status) {
  const c = status?.code;
  const code = c === 2 || c === "STATUS_CODE_ERROR" ? "error" : c === 1 || c === "STATUS_CODE_OK" ? "ok" : "unset";
  return { code, message: String(status?.message ?? "") };
}

function finish(span) {
  span.end = span.start + span.duration;
  span.error = span.status.code === "error";
  // The fields buildTrace fills in, present from the start so every span object has one shape.
  span.parent = null;
  span.children = [];
  span.depth = 0;
  span.orphan = false;
  span.skew = 0;
  span.selfTime = 0;
  return span;
}

/** Every span of an OTLP JSON document (`TracesData`, or the v3 API's `{result: TracesData}`). */
export function fromOtlp(doc) {
  const out = [];
  const resourceSpans = doc?.result?.resourceSpans ?? doc?.resourceSpans ?? [];
  for (const rs of resourceSpans) {
    const resource = attributes(rs.resource?.attributes);
    const serviceEntry = resource.find(([k]) => k === "service.name");
    const service = serviceEntry ? String(serviceEntry[1]) : "unknown_service";
    const resourceRest = resource.filter(([k]) => k !== "service.name");
    for (const ss of rs.scopeSpans ?? rs.instrumentationLibrarySpans ?? []) {
      const scope = { name: String(ss.scope?.name ?? ""), version: String(ss.scope?.version ?? "") };
      for (const sp of ss.spans ?? []) {
        const start = nanosToMicros(sp.startTimeUnixNano);
        const endNs = nanosToMicros(sp.endTimeUnixNano);
        out.push(finish({
          traceId: hexId(sp.traceId),
          spanId: hexId(sp.spanId),
          parentId: hexId(sp.parentSpanId),
          service,
          name: String(sp.name ?? ""),
          kind: kindOf(sp.kind),
          start,
          duration: Math.max(0, endNs - start),
          status: statusOf(sp.status),
          attributes: attributes(sp.attributes),
          resource: resourceRest,
          scope,
          events: (sp.events ?? []).map((e) => ({
            time: nanosToMicros(e.timeUnixNano), name: String(e.name ?? ""), attributes: attributes(e.attributes),
          })),
          links: (sp.links ?? []).map((l) => ({
            traceId: hexId(l.traceId), spanId: hexId(l.spanId), attributes: attributes(l.attributes),
          })),
        }));
      }
    }
  }
  return out;
}

/** An attribute value as one line of text. */
export function valueText(v) {
  if (typeof v === "string") return v;
  if (v === null || v === undefined) return "";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}
