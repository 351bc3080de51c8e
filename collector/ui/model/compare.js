// Comparing two traces on one tree. Spans are grouped by their path of (service, operation) from the top
// (the same call made twice under one parent is one node with count 2), the two trees are merged, and
// every node says whether it is only in A, only in B, called a different number of times, or slower or
// faster by more than DURATION_CHANGE (and more than MIN_DELTA_US).

export const DURATION_CHANGE = 0.2;
export const MIN_DELTA_US = 1000;

function opTree(trace) {
  const root = { children: new Map() };
  // A stack walk in document order: children are pushed last-first, so they are met (and their nodes
  // created, which sets the display order) first-first.
  const stack = trace.top.map((span) => [span, root]).reverse();
  while (stack.length) {
    const [span, parentNode] = stack.pop();
    const key = `${span.service}\u0000${span.name}`;
    let node = parentNode.children.get(key);
    if (!node) parentNode.children.set(key, (node = { service: span.service, name: span.name, count: 0, duration: 0, errors: 0, children: new Map() }));
    node.count += 1;
    node.duration += span.duration;
    node.errors += span.error ? 1 : 0;
    for (let i = span.children.length - 1; i >= 0; i--) stack.push([span.children[i], node]);
  }
  return root;
}

/** How a node differs: "onlyA", "onlyB", "count", "slower", "faster" or "same". */
export function change(a, b) {
  if (!b) return "onlyA";
  if (!a) return "onlyB";
  if (a.count !== b.count) return "count";
  const delta = b.duration - a.duration;
  if (Math.abs(delta) > MIN_DELTA_US && Math.abs(delta) > DURATION_CHANGE * Math.max(a.duration, b.duration)) {
    return delta > 0 ? "slower" : "faster";
  }
  return "same";
}

/**
 * The merged tree: [{service, name, a: {count, duration, errors}|null, b: ..., change, children: [...]}],
 * children ordered as in A, then B's extra ones. Also returns counts of each kind of change.
 */
export function compareTraces(traceA, traceB) {
  const counts = { onlyA: 0, onlyB: 0, count: 0, slower: 0, faster: 0, same: 0 };
  const pick = (n) => (n ? { count: n.count, duration: n.duration, errors: n.errors } : null);
  const merge = (mapA, mapB) => {
    const keys = [...mapA.keys(), ...[...mapB.keys()].filter((k) => !mapA.has(k))];
    return keys.map((key) => {
      const a = mapA.get(key);
      const b = mapB.get(key);
      const node = {
        service: (a ?? b).service,
        name: (a ?? b).name,
        a: pick(a),
        b: pick(b),
        change: change(a, b),
        children: [],
      };
      counts[node.change] += 1;
      node.children = merge(a?.children ?? new Map(), b?.children ?? new Map());
      return node;
    });
  };
  const nodes = merge(opTree(traceA).children, opTree(traceB).children);
  return { nodes, counts };
}

/** The merged tree flattened for display, pre-order, with depth. */
export function flatten(nodes) {
  const rows = [];
  const stack = nodes.slice().reverse().map((n) => [n, 0]);
  while (stack.length) {
    const [node, depth] = stack.pop();
    rows.push({ node, depth });
    for (let i = node.children.length - 1; i >= 0; i--) stack.push([node.children[i], depth + 1]);
  }
  return rows;
}
