// A trace as a tree, and what the trace view computes from it: depth, self time, the critical path,
// statistics per service and operation, clock skew, find-in-trace. Pure functions over the span shape of
// spans.js; no DOM. Everything walks the tree with explicit stacks: a 10,000-span chain must not overflow
// the call stack.

import { valueText } from "./spans.js";

/**
 * Links spans into a tree. Returns
 *   { traceId, spans, top, start, end, duration, depth, services: Map(name -> {spans, errors}),
 *     orphans: [span], roots: [span], skewed: [span] }
 * and sets on every span: parent (span|null), children (by start time), depth, orphan (its parent never
 * arrived), skew (µs the span starts before its parent, 0 when it does not), selfTime.
 * Top-level rows are the roots, the orphans, and any span caught in a parent cycle (hostile data).
 */
export function buildTrace(spans) {
  const byId = new Map();
  for (const span of spans) {
    span.children = [];
    span.parent = null;
    span.orphan = false;
    span.skew = 0;
    // Spans sharing an id (Zipkin's shared client/server halves): the first one is the parent.
    if (!byId.has(span.spanId)) byId.set(span.spanId, span);
  }
  const roots = [];
  const orphans = [];
  for (const span of spans) {
    const parent = span.parentId ? byId.get(span.parentId) : undefined;
    if (parent && parent !== span) {
      span.parent = parent;
      parent.children.push(span);
    } else if (span.parentId && !parent) {
      span.orphan = true;
      orphans.push(span);
    } else {
      roots.push(span);
    }
  }
  const byStart = (a, b) => a.start - b.start || a.end - b.end;
  for (const span of spans) span.children.sort(byStart);
  const top = [...roots, ...orphans].sort(byStart);

  // Depth-first from the top; whatever is not reached sits in a cycle and is shown at the top.
  const seen = new Set();
  let depth = 0;
  const visit = (start) => {
    const stack = [[start, 0]];
    while (stack.length) {
      const [span, d] = stack.pop();
      if (seen.has(span)) continue;
      seen.add(span);
      span.depth = d;
      depth = Math.max(depth, d + 1);
      for (let i = span.children.length - 1; i >= 0; i--) stack.push([span.children[i], d + 1]);
    }
  };
  top.forEach(visit);
  for (const span of spans) {
    if (seen.has(span)) continue;
    if (span.parent) span.parent.children = span.parent.children.filter((c) => c !== span);
    span.parent = null;
    span.orphan = true;
    orphans.push(span);
    top.push(span);
    visit(span);
  }

  let start = Infinity;
  let end = -Infinity;
  const services = new Map();
  const skewed = [];
  for (const span of spans) {
    start = Math.min(start, span.start);
    end = Math.max(end, span.end);
    const svc = services.get(span.service) ?? { spans: 0, errors: 0 };
    svc.spans += 1;
    if (span.error) svc.errors += 1;
    services.set(span.service, svc);
    if (span.parent && span.start < span.parent.start) {
      span.skew = span.parent.start - span.start;
      skewed.push(span);
    }
    span.selfTime = selfTime(span);
  }
  if (!spans.length) start = end = 0;
  return {
    traceId: spans[0]?.traceId ?? "",
    spans, top, roots, orphans, skewed, services, depth,
    start, end, duration: end - start,
  };
}

/** The span's time not covered by any child (children clipped to the span), in µs. */
export function selfTime(span) {
  if (!span.children.length) return span.duration;
  const intervals = span.children
    .map((c) => [Math.max(c.start, span.start), Math.min(c.end, span.end)])
    .filter(([a, b]) => b > a)
    .sort((x, y) => x[0] - y[0]);
  let covered = 0;
  let curStart = -Infinity;
  let curEnd = -Infinity;
  for (const [a, b] of intervals) {
    if (a > curEnd) {
      covered += curEnd - curStart > 0 ? curEnd - curStart : 0;
      curStart = a;
      curEnd = b;
    } else {
      curEnd = Math.max(curEnd, b);
    }
  }
  covered += curEnd - curStart > 0 ? curEnd - curStart : 0;
  return Math.max(0, span.duration - covered);
}

/**
 * The critical path: the chain of span segments that decides when the trace ends. From the top-level span
 * that ends last, walking back from its end: the child that finished last before the current point is what
 * the parent waited for, so the path goes through it; between children, and before the first one, the
 * parent's own work is on the path. Children are clipped to their parent (clock skew must not stretch it).
 *
 * Returns segments [{span, start, end}] in time order; every span on the path has at least one.
 */
export function criticalPath(trace) {
  let root = null;
  for (const span of trace.top) if (!root || span.end > root.end || (span.end === root.end && span.start < root.start)) root = span;
  if (!root) return [];
  const segments = [];
  // A frame is a span on the path with its interval clipped to its parent's: [start, end].
  const frame = (span, start, end) => ({
    span, start, end, cursor: end, i: 0,
    kids: span.children.slice().sort((a, b) => Math.min(b.end, end) - Math.min(a.end, end)),
  });
  const stack = [frame(root, root.start, root.end)];
  while (stack.length) {
    const f = stack[stack.length - 1];
    let next = null;
    let nextEnd = 0;
    while (f.i < f.kids.length) {
      const c = f.kids[f.i++];
      const ce = Math.min(c.end, f.end);
      if (ce <= f.cursor && ce > f.start && c.start < f.cursor) {
        next = c;
        nextEnd = ce;
        break;
      }
    }
    if (next) {
      if (nextEnd < f.cursor) segments.push({ span: f.span, start: nextEnd, end: f.cursor });
      const nextStart = Math.max(next.start, f.start);
      f.cursor = nextStart;
      stack.push(frame(next, nextStart, nextEnd));
    } else {
      if (f.cursor > f.start) segments.push({ span: f.span, start: f.start, end: f.cursor });
      stack.pop();
    }
  }
  return segments.sort((a, b) => a.start - b.start);
}

/** Time on the critical path per span. */
export function criticalTimes(segments) {
  const out = new Map();
  for (const seg of segments) out.set(seg.span, (out.get(seg.span) ?? 0) + seg.end - seg.start);
  return out;
}

/**
 * Statistics per (service, operation) and per service: count, total and self time (sum over spans),
 * average, min, max, errors. Sorted by self time, largest first: where the time went.
 */
export function statistics(trace) {
  const ops = new Map();
  const services = new Map();
  const add = (map, key, init, span) => {
    let row = map.get(key);
    if (!row) map.set(key, (row = { ...init, count: 0, errors: 0, total: 0, self: 0, min: Infinity, max: -Infinity }));
    row.count += 1;
    row.errors += span.error ? 1 : 0;
    row.total += span.duration;
    row.self += span.selfTime;
    row.min = Math.min(row.min, span.duration);
    row.max = Math.max(row.max, span.duration);
  };
  for (const span of trace.spans) {
    add(ops, `${span.service}\u0000${span.name}`, { service: span.service, name: span.name }, span);
    add(services, span.service, { service: span.service }, span);
  }
  const totalSelf = trace.spans.reduce((sum, s) => sum + s.selfTime, 0) || 1;
  const finish = (rows) => rows
    .map((r) => ({ ...r, avg: r.total / r.count, selfShare: r.self / totalSelf }))
    .sort((a, b) => b.self - a.self || a.service.localeCompare(b.service));
  return { operations: finish([...ops.values()]), services: finish([...services.values()]) };
}

/** The rows shown, in order: a pre-order walk that skips the subtrees of collapsed spans. */
export function visibleRows(trace, collapsed) {
  const rows = [];
  const stack = trace.top.slice().reverse();
  while (stack.length) {
    const span = stack.pop();
    rows.push(span);
    if (collapsed.has(span)) continue;
    for (let i = span.children.length - 1; i >= 0; i--) stack.push(span.children[i]);
  }
  return rows;
}

/** The number of spans below `span`. */
export function descendants(span) {
  let n = 0;
  const stack = [...span.children];
  while (stack.length) {
    const s = stack.pop();
    n += 1;
    stack.push(...s.children);
  }
  return n;
}

/**
 * Spans matching a find-in-trace query (case-insensitive): in the service, the name, the span id, an
 * attribute's key or value, or an event's name. Whitespace-separated words must all match.
 */
export function findSpans(trace, query, text = valueText) {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return [];
  return trace.spans.filter((span) => {
    const hay = [span.service, span.name, span.spanId, span.status.message,
      ...span.attributes.flatMap(([k, v]) => [k, `${k}=${text(v)}`]),
      ...span.resource.flatMap(([k, v]) => [k, `${k}=${text(v)}`]),
      ...span.events.map((e) => e.name)].join("\n").toLowerCase();
    return words.every((w) => hay.includes(w));
  }).sort((a, b) => a.start - b.start);
}

/** The ancestors of `span`, nearest first. */
export function ancestors(span) {
  const out = [];
  for (let p = span.parent; p && out.length < 100_000; p = p.parent) out.push(p);
  return out;
}
