// Building the page with DOM APIs only. Span data is untrusted (names, attributes and service names come
// from whatever sent the spans), so text always goes in through textContent / attribute setters, never
// through HTML parsing; there is deliberately no helper that takes markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function apply(el, props) {
  if (!props) return el;
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false || key === "value") continue;
    if (key === "class") el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (key === "text") el.textContent = String(value);
    else if (key === "on") for (const [event, fn] of Object.entries(value)) el.addEventListener(event, fn);
    else if (key === "style") Object.assign(el.style, value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && typeof value !== "string" && el.namespaceURI !== SVG_NS) el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: h("a", {href, class, text, on: {click}}, ...children). Strings become text nodes. */
export function h(tag, props, ...children) {
  const el = append(apply(document.createElement(tag), props), children);
  // After the children, so that a <select> has its options when its value is set.
  if (props && props.value !== undefined && props.value !== null) el.value = props.value;
  return el;
}

/** An SVG element, same conventions as h(). */
export function s(tag, props, ...children) {
  return append(apply(document.createElementNS(SVG_NS, tag), props), children);
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

/** A link inside the app: the router handles the click (see app.js), the href works for new tabs. */
export function link(href, text, props = {}) {
  return h("a", { href, ...props }, text);
}

/** Saves `text` as a file the browser downloads. */
export function download(filename, text, type = "application/json") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
