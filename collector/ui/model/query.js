// The search in the URL, the way Jaeger UI writes it, so links from logs, Grafana and chat keep working:
//   /search?service=&operation=&tags=&lookback=&start=&end=&minDuration=&maxDuration=&limit=
// `tags` is JSON ({"k":"v"}, Jaeger UI's form) or logfmt (`k=v k2="a b"`, what people type); `start`/`end`
// are µs since the epoch, used when `lookback=custom`. Our own additions: `diagnostics` (comma-separated)
// and `sort`.

import { parseDuration } from "../format.js";

export const LOOKBACKS = [
  ["5m", "Last 5 minutes"], ["15m", "Last 15 minutes"], ["1h", "Last hour"], ["2h", "Last 2 hours"],
  ["3h", "Last 3 hours"], ["6h", "Last 6 hours"], ["12h", "Last 12 hours"], ["24h", "Last 24 hours"],
  ["2d", "Last 2 days"], ["7d", "Last 7 days"], ["custom", "Custom range"],
];

export const DIAGNOSTICS = [
  ["orphans", "Orphan spans", "a span whose parent never arrived"],
  ["multipleRoots", "Several roots", "the trace broke into separate trees"],
  ["untracedCallees", "Untraced callee", "a CLIENT span with no SERVER span below it"],
  ["clockSkew", "Clock skew", "a child starts before its parent"],
];

export const SORTS = [
  ["recent", "Most recent"], ["longest", "Longest first"], ["shortest", "Shortest first"], ["spans", "Most spans"],
];

export const DEFAULT_LIMIT = 20;
export const MAX_LIMIT = 1500;

/** Parses logfmt: `key=value`, values quoted with "..." may hold spaces and \" escapes. */
export function parseLogfmt(text) {
  const out = {};
  const re = /\s*([^\s=]+)(?:=("(?:[^"\\]|\\.)*"|\S*))?/gy;
  const t = String(text ?? "");
  let m;
  re.lastIndex = 0;
  while (re.lastIndex < t.length && (m = re.exec(t))) {
    if (!m[0].trim()) break;
    let value = m[2] ?? "true";
    if (value.startsWith('"')) value = value.slice(1, -1).replace(/\\(.)/g, "$1");
    out[m[1]] = value;
  }
  return out;
}

export function formatLogfmt(tags) {
  return Object.entries(tags)
    .map(([k, v]) => (/[\s"=]/.test(v) || v === "" ? `${k}="${String(v).replace(/(["\\])/g, "\\$1")}"` : `${k}=${v}`))
    .join(" ");
}

/** Tags from the URL's `tags`: JSON or logfmt. */
export function parseTags(param) {
  const t = String(param ?? "").trim();
  if (!t) return {};
  if (t.startsWith("{")) {
    try {
      const json = JSON.parse(t);
      if (json && typeof json === "object") return Object.fromEntries(Object.entries(json).map(([k, v]) => [k, String(v)]));
    } catch {
      /* fall through to logfmt */
    }
  }
  return parseLogfmt(t);
}

const LOOKBACK_US = { m: 60e6, h: 3600e6, d: 86400e6 };

/** Lookback like `1h` or `2d` in µs; NaN when it is not one. */
export function lookbackMicros(lookback) {
  const m = /^(\d+)([mhd])$/.exec(String(lookback));
  return m ? Number(m[1]) * LOOKBACK_US[m[2]] : NaN;
}

/** The search form's state from URL search params (defaults filled in). */
export function fromParams(params) {
  const diagnostics = (params.get("diagnostics") ?? "").split(",").filter((d) => DIAGNOSTICS.some(([k]) => k === d));
  const limit = Math.min(MAX_LIMIT, Math.max(1, Number(params.get("limit")) || DEFAULT_LIMIT));
  return {
    service: params.get("service") ?? "",
    operation: params.get("operation") ?? "",
    tags: parseTags(params.get("tags")),
    lookback: params.get("lookback") || "1h",
    start: params.get("start") ?? "",
    end: params.get("end") ?? "",
    minDuration: params.get("minDuration") ?? "",
    maxDuration: params.get("maxDuration") ?? "",
    limit,
    diagnostics,
    sort: SORTS.some(([k]) => k === params.get("sort")) ? params.get("sort") : "recent",
  };
}

/** The URL search params of a form state, Jaeger UI's names first. */
export function toParams(state) {
  const p = new URLSearchParams();
  const set = (k, v) => v !== undefined && v !== null && v !== "" && p.set(k, String(v));
  set("service", state.service);
  set("operation", state.operation);
  if (Object.keys(state.tags ?? {}).length) set("tags", JSON.stringify(state.tags));
  set("lookback", state.lookback);
  if (state.lookback === "custom") {
    set("start", state.start);
    set("end", state.end);
  }
  set("minDuration", state.minDuration);
  set("maxDuration", state.maxDuration);
  set("limit", state.limit);
  if (state.diagnostics?.length) set("diagnostics", state.diagnostics.join(","));
  if (state.sort && state.sort !== "recent") set("sort", state.sort);
  return p;
}

/** The time window in µs: [start, end], from the lookback or the custom range. */
export function window(state, nowUs = Date.now() * 1000) {
  if (state.lookback === "custom") {
    const end = Number(state.end) || nowUs;
    const start = Number(state.start) || end - 3600e6;
    return [start, end];
  }
  const back = lookbackMicros(state.lookback);
  return [nowUs - (Number.isFinite(back) ? back : 3600e6), nowUs];
}

/** What is wrong with a form state, or "" when it can be searched. */
export function validate(state) {
  for (const key of ["minDuration", "maxDuration"]) {
    if (state[key] && !Number.isFinite(parseDuration(state[key]))) return `${key}: "${state[key]}" is not a duration like 150ms or 1.5s`;
  }
  if (state.minDuration && state.maxDuration && parseDuration(state.minDuration) > parseDuration(state.maxDuration)) {
    return "minDuration is above maxDuration";
  }
  const [start, end] = window(state);
  if (!(start < end)) return "the range ends before it starts";
  return "";
}

/** Sorts trace summaries in place. */
export function sortSummaries(list, sort) {
  const by = {
    recent: (a, b) => b.start - a.start,
    longest: (a, b) => b.duration - a.duration,
    shortest: (a, b) => a.duration - b.duration,
    spans: (a, b) => b.spanCount - a.spanCount || b.start - a.start,
  }[sort] ?? ((a, b) => b.start - a.start);
  return list.sort(by);
}
