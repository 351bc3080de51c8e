// Durations, times and the colour of a service: one place, so every page says it the same way.

/** A duration in microseconds, in the largest unit that keeps it readable: 850µs, 12.3ms, 4.56s, 2m 5s. */
export function duration(us) {
  if (!Number.isFinite(us)) return "-";
  const abs = Math.abs(us);
  if (us === 0) return "0ms";
  if (abs < 1) return `${Math.round(us * 1000)}ns`;
  if (abs < 1000) return `${trim(us, 0)}µs`;
  if (abs < 1_000_000) return `${trim(us / 1000, abs < 10_000 ? 2 : abs < 100_000 ? 1 : 0)}ms`;
  if (abs < 60_000_000) return `${trim(us / 1e6, 2)}s`;
  const m = Math.floor(abs / 60e6);
  return `${us < 0 ? "-" : ""}${m}m ${Math.round((abs - m * 60e6) / 1e6)}s`;
}

function trim(n, digits) {
  return Number(n.toFixed(digits)).toString();
}

/** A timestamp in microseconds since the epoch, local time with milliseconds. */
export function time(us) {
  const d = new Date(us / 1000);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:` +
    `${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** "3 minutes ago", for search results. */
export function ago(us, nowMs = Date.now()) {
  const s = Math.round((nowMs - us / 1000) / 1000);
  if (s < 5) return "just now";
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function count(n) {
  return Number(n).toLocaleString("en-US");
}

export function percent(x, digits = 1) {
  if (!Number.isFinite(x)) return "-";
  return `${(x * 100).toFixed(digits)}%`;
}

/** A rate per second, compact. */
export function rate(perSecond) {
  if (!Number.isFinite(perSecond)) return "-";
  if (perSecond >= 100) return `${Math.round(perSecond)}/s`;
  if (perSecond >= 1) return `${perSecond.toFixed(1)}/s`;
  if (perSecond * 60 >= 1) return `${(perSecond * 60).toFixed(1)}/min`;
  return `${(perSecond * 3600).toFixed(1)}/h`;
}

// Colours that stay apart on white and on the dark theme; a service keeps its colour on every page.
const PALETTE = [
  "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7",
  "#86bcb6", "#8cd17d", "#d4a6c8", "#a0cbe8", "#ffbe7d", "#79706e", "#d37295", "#499894",
];

export function serviceColor(service) {
  let hash = 2166136261;
  for (let i = 0; i < service.length; i++) {
    hash ^= service.charCodeAt(i);
    hash = Math.imul(hash, 16777619);
  }
  return PALETTE[(hash >>> 0) % PALETTE.length];
}

/** Parses a Go-style duration (`150ms`, `1.5s`, `2m`, `500us`) to microseconds; NaN when malformed. */
export function parseDuration(text) {
  const units = { ns: 1e-3, us: 1, "µs": 1, ms: 1e3, s: 1e6, m: 60e6, h: 3600e6 };
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  const t = String(text).trim();
  if (!t) return NaN;
  let total = 0;
  let at = 0;
  re.lastIndex = 0;
  for (let m; (m = re.exec(t)); at = re.lastIndex) total += Number(m[1]) * units[m[2]];
  return at === t.length ? total : NaN;
}
