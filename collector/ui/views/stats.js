// The statistics of a trace: per service and per (service, operation), the count, total and self time
// (where the time went: a span's self time is the part of it no child covers). Sortable by any column.

import { h } from "../dom.js";
import { count, duration, percent, serviceColor } from "../format.js";
import { statistics } from "../model/trace.js";

const COLUMNS = [
  ["service", "Service", (r) => r.service, "text"],
  ["name", "Operation", (r) => r.name ?? "", "text"],
  ["count", "Spans", (r) => r.count, "num"],
  ["errors", "Errors", (r) => r.errors, "num"],
  ["total", "Total time", (r) => r.total, "dur"],
  ["avg", "Avg", (r) => r.avg, "dur"],
  ["max", "Max", (r) => r.max, "dur"],
  ["self", "Self time", (r) => r.self, "dur"],
  ["selfShare", "Share of self time", (r) => r.selfShare, "share"],
];

function table(rows, title, withOperation) {
  const columns = COLUMNS.filter(([key]) => withOperation || key !== "name");
  let sortKey = "self";
  let desc = true;
  const tbody = h("tbody");
  const draw = () => {
    const col = columns.find(([k]) => k === sortKey);
    const sorted = rows.slice().sort((a, b) => {
      const x = col[2](a);
      const y = col[2](b);
      const c = typeof x === "string" ? x.localeCompare(y) : x - y;
      return desc ? -c : c;
    });
    tbody.replaceChildren(...sorted.map((r) => h("tr", {}, columns.map(([key, , get, kind]) => {
      const v = get(r);
      if (key === "service") return h("td", {}, h("i", { class: "swatch", style: { background: serviceColor(v) } }), v);
      if (kind === "num") return h("td", { class: ["num", key === "errors" && v > 0 && "err"], text: count(v) });
      if (kind === "dur") return h("td", { class: "num", text: duration(v) });
      if (kind === "share") {
        return h("td", { class: "share" }, h("span", { class: "share-bar", style: { width: `${Math.round(v * 100)}%` } }), h("span", { text: percent(v) }));
      }
      return h("td", { text: v });
    }))));
    for (const th of thead.querySelectorAll("th")) {
      th.setAttribute("aria-sort", th.dataset.key === sortKey ? (desc ? "descending" : "ascending") : "none");
    }
  };
  const thead = h("thead", {}, h("tr", {}, columns.map(([key, label]) => h("th", {
    scope: "col", dataset: { key },
  }, h("button", {
    type: "button", class: "sort", text: label,
    on: { click: () => { desc = sortKey === key ? !desc : key !== "service" && key !== "name"; sortKey = key; draw(); } },
  })))));
  const el = h("table", { class: "stats" }, h("caption", { text: title }), thead, tbody);
  draw();
  return el;
}

export function statsView(trace) {
  const { services, operations } = statistics(trace);
  const bottleneck = services[0];
  return h("div", { class: "stats-view" },
    bottleneck ? h("p", { class: "lead" },
      "Most of the time is spent in ", h("b", { text: bottleneck.service }), ` itself: ${duration(bottleneck.self)} of self time, ${percent(bottleneck.selfShare)} of all the work in this trace.`) : null,
    table(services, "By service", false),
    table(operations, "By service and operation", true));
}
