// A layered layout for the service map, readable at 50 services: callers to the left of what they call.
//   1. cycles are broken by ignoring the edges that close them (found by a depth-first walk);
//   2. each service's layer is the longest chain of calls leading to it;
//   3. within a layer, services are ordered by the average position of their neighbours (a few sweeps
//      left-to-right and back), which uncrosses most edges;
//   4. layers become columns, positions rows; tall columns are centred.
// Pure: nodes and edges in, coordinates out.

export const LAYOUT = { columnGap: 310, rowGap: 46, nodeWidth: 168, nodeHeight: 30, margin: 24 };

/** edges: [{parent, child}] -> { nodes: Map(name -> {name, layer, order, x, y}), width, height, back: Set(edge) } */
export function layeredLayout(edges, extraNodes = []) {
  const names = new Set(extraNodes);
  for (const e of edges) names.add(e.parent).add(e.child);
  const sorted = [...names].sort((a, b) => a.localeCompare(b));
  const out = new Map(sorted.map((n) => [n, []]));
  const inn = new Map(sorted.map((n) => [n, []]));

  // 1. Back edges: a depth-first walk from the nodes nobody calls first (then from any left).
  const back = new Set();
  const state = new Map(); // 1: on the stack, 2: done
  const adjacency = new Map(sorted.map((n) => [n, []]));
  for (const e of edges) if (e.parent !== e.child) adjacency.get(e.parent).push(e);
  const hasCaller = new Set(edges.filter((e) => e.parent !== e.child).map((e) => e.child));
  const starts = [...sorted.filter((n) => !hasCaller.has(n)), ...sorted];
  for (const s of starts) {
    if (state.has(s)) continue;
    const stack = [[s, 0]];
    state.set(s, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [node, i] = top;
      const list = adjacency.get(node);
      if (i >= list.length) {
        state.set(node, 2);
        stack.pop();
        continue;
      }
      top[1] += 1;
      const e = list[i];
      const st = state.get(e.child);
      if (st === 1) back.add(e);
      else if (!st) {
        state.set(e.child, 1);
        stack.push([e.child, 0]);
      }
    }
  }
  for (const e of edges) {
    if (e.parent === e.child || back.has(e)) continue;
    out.get(e.parent).push(e.child);
    inn.get(e.child).push(e.parent);
  }

  // 2. Longest-path layers (Kahn's order over the acyclic part).
  const layer = new Map(sorted.map((n) => [n, 0]));
  const indegree = new Map(sorted.map((n) => [n, inn.get(n).length]));
  const queue = sorted.filter((n) => indegree.get(n) === 0);
  for (let qi = 0; qi < queue.length; qi++) {
    const n = queue[qi];
    for (const c of out.get(n)) {
      layer.set(c, Math.max(layer.get(c), layer.get(n) + 1));
      indegree.set(c, indegree.get(c) - 1);
      if (indegree.get(c) === 0) queue.push(c);
    }
  }
  const layers = [];
  for (const n of sorted) (layers[layer.get(n)] ??= []).push(n);

  // 3. Barycentre sweeps.
  const pos = new Map();
  const renumber = () => layers.forEach((col) => col.forEach((n, i) => pos.set(n, i)));
  renumber();
  const bary = (n, neighbours) => {
    const ps = neighbours.map((m) => pos.get(m));
    return ps.length ? ps.reduce((a, b) => a + b, 0) / ps.length : pos.get(n);
  };
  for (let sweep = 0; sweep < 6; sweep++) {
    const down = sweep % 2 === 0;
    const order = down ? layers.keys() : [...layers.keys()].reverse();
    for (const li of order) {
      const col = layers[li];
      if (!col) continue;
      const key = new Map(col.map((n) => [n, bary(n, down ? inn.get(n) : out.get(n))]));
      col.sort((a, b) => key.get(a) - key.get(b) || a.localeCompare(b));
      col.forEach((n, i) => pos.set(n, i));
    }
  }
  renumber();

  // 4. Coordinates.
  const tallest = Math.max(1, ...layers.map((c) => c?.length ?? 0));
  const { columnGap, rowGap, nodeWidth, nodeHeight, margin } = LAYOUT;
  const nodes = new Map();
  layers.forEach((col, li) => {
    if (!col) return;
    const offset = ((tallest - col.length) * rowGap) / 2;
    col.forEach((name, i) => {
      nodes.set(name, { name, layer: li, order: i, x: margin + li * columnGap, y: margin + offset + i * rowGap });
    });
  });
  return {
    nodes,
    back,
    width: margin * 2 + Math.max(0, layers.length - 1) * columnGap + nodeWidth,
    height: margin * 2 + (tallest - 1) * rowGap + nodeHeight,
  };
}
