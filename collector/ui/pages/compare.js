// /trace/{a}...{b}: two traces on one tree of (service, operation) paths: what is only in one of them,
// what was called a different number of times, and what got slower or faster.

import { h } from "../dom.js";
import { count, duration, serviceColor } from "../format.js";
import { compareTraces, flatten, DURATION_CHANGE } from "../model/compare.js";
import { fromTrace } from "../model/summary.js";
import { loadTrace } from "../data.js";
import { TRACE_ID, notFound } from "./trace.js";

const LABELS = {
  onlyA: "only in A", onlyB: "only in B", count: "count differs", slower: "slower in B", faster: "faster in B", same: "",
};

function side(label, id, trace) {
  const s = fromTrace(trace);
  return h("div", { class: "compare-side" },
    h("span", { class: "side-label", text: label }),
    h("a", { href: `/trace/${id}`, class: "mono", text: id }),
    h("div", {}, h("span", { class: "svc", text: s.rootService }), `: ${s.rootName}`),
    h("div", { class: "muted", text: `${duration(s.duration)} · ${count(s.spanCount)} spans · ${count(s.errorCount)} errors` }));
}

function cell(x, key) {
  if (!x) return h("td", { class: "num muted", text: "-" });
  return h("td", { class: "num", text: key === "count" ? count(x.count) : duration(x.duration) });
}

export async function render(main, { captures, signal }) {
  const [a, b] = captures;
  document.title = `Compare ${a.slice(0, 7)} and ${b.slice(0, 7)} · meshtrace`;
  for (const id of [a, b]) {
    if (!TRACE_ID.test(id)) return notFound(main, id, new Error(`"${id}" is not a trace id`));
  }
  main.append(h("p", { class: "loading", text: "Loading both traces…" }));
  let A;
  let B;
  try {
    [A, B] = await Promise.all([loadTrace(a, signal), loadTrace(b, signal)]);
  } catch (err) {
    if (signal.aborted) return;
    main.replaceChildren();
    return notFound(main, err.status === 404 ? `${a} or ${b}` : a, err);
  }
  const { nodes, counts } = compareTraces(A.trace, B.trace);
  const rows = flatten(nodes);
  const changed = rows.length - counts.same;
  const legend = Object.entries(LABELS).filter(([k]) => k !== "same" && counts[k])
    .map(([k, label]) => h("span", { class: ["badge", `chg-${k}`], text: `${counts[k]} ${label}` }));

  main.replaceChildren(h("div", { class: "compare-page" },
    h("h1", { text: "Compare traces" }),
    h("div", { class: "compare-sides" }, side("A", a, A.trace), side("B", b, B.trace)),
    h("p", { class: "lead" }, changed
      ? `${changed} of ${rows.length} operations differ. `
      : `The two traces call the same ${rows.length} operations the same number of times, within ${Math.round(DURATION_CHANGE * 100)}% of the same time.`, legend),
    h("table", { class: "compare" },
      h("thead", {}, h("tr", {},
        h("th", { text: "Operation" }), h("th", { class: "num", text: "Count A" }), h("th", { class: "num", text: "Count B" }),
        h("th", { class: "num", text: "Time A" }), h("th", { class: "num", text: "Time B" }), h("th", { class: "num", text: "Δ" }),
        h("th", { text: "" }))),
      h("tbody", {}, rows.map(({ node, depth }) => {
        const delta = node.a && node.b ? node.b.duration - node.a.duration : null;
        return h("tr", { class: `chg-${node.change}` },
          h("td", { class: "op-cell", style: { paddingLeft: `${8 + Math.min(depth, 30) * 16}px` } },
            h("i", { class: "swatch", style: { background: serviceColor(node.service) } }),
            h("span", { class: "svc", text: node.service }), " ", h("span", { class: "op", text: node.name })),
          cell(node.a, "count"), cell(node.b, "count"), cell(node.a, "duration"), cell(node.b, "duration"),
          h("td", { class: "num", text: delta === null ? "" : `${delta > 0 ? "+" : ""}${duration(delta)}` }),
          h("td", { class: "chg", text: LABELS[node.change] }));
      })))));
}
