// The viewer's shell: a router over the History API. Every view is a URL (Jaeger UI's conventions), so a
// link, back, forward and reload land on the same view. Pages are modules loaded on first use:
//
//   /  /search?...                 pages/search.js
//   /trace/{id}                    pages/trace.js      (?span=&uiFind=&view= kept with replaceState)
//   /trace/{a}...{b}               pages/compare.js
//   /dependencies                  pages/dependencies.js
//   /service/{name}                pages/service.js
//
// A page module exports `render(main, ctx)` and may return a cleanup function; ctx carries the URL's
// params, the route's captures, an AbortSignal that fires when the user moves on, and `navigate`/`setParams`.

import { h, clear } from "./dom.js";
import { forgetToken, token } from "./api.js";

const ROUTES = [
  { path: /^\/(?:search\/?)?$/, nav: "search", load: () => import("./pages/search.js") },
  { path: /^\/trace\/([^/]+?)\.\.\.([^/]+?)\/?$/, nav: "", load: () => import("./pages/compare.js") },
  { path: /^\/trace\/([^/]+?)\/?$/, nav: "", load: () => import("./pages/trace.js") },
  { path: /^\/dependencies\/?$/, nav: "dependencies", load: () => import("./pages/dependencies.js") },
  { path: /^\/service\/(.+?)\/?$/, nav: "", load: () => import("./pages/service.js") },
];

const main = document.getElementById("main");
let current = { controller: null, cleanup: null };

export function navigate(url, { replace = false } = {}) {
  const target = new URL(url, location.origin);
  if (target.origin !== location.origin) {
    location.assign(target);
    return;
  }
  if (replace) history.replaceState(null, "", target);
  else history.pushState(null, "", target);
  route();
}

/** Updates the current URL's params without drawing the page again (view state: selection, find). */
export function setParams(changes) {
  const url = new URL(location.href);
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined || v === null || v === "") url.searchParams.delete(k);
    else url.searchParams.set(k, String(v));
  }
  if (url.href !== location.href) history.replaceState(null, "", url);
}

async function route() {
  current.controller?.abort();
  try {
    current.cleanup?.();
  } catch (err) {
    console.error(err);
  }
  const controller = new AbortController();
  current = { controller, cleanup: null };
  const path = location.pathname;
  const match = ROUTES.map((r) => [r, r.path.exec(path)]).find(([, m]) => m);
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", Boolean(match && a.dataset.nav === match[0].nav));
  }
  if (!match) {
    document.title = "Not found · meshtrace";
    clear(main).append(h("section", { class: "empty" }, h("h1", { text: "No such page" }),
      h("p", {}, "Try ", h("a", { href: "/search", text: "the search" }), ".")));
    return;
  }
  const [routeDef, captures] = match;
  try {
    const page = await routeDef.load();
    if (controller.signal.aborted) return;
    clear(main);
    const cleanup = await page.render(main, {
      params: new URLSearchParams(location.search),
      captures: captures.slice(1).map(decodeURIComponent),
      signal: controller.signal,
      navigate,
      setParams,
    });
    if (controller.signal.aborted) cleanup?.();
    else current.cleanup = cleanup ?? null;
  } catch (err) {
    if (err?.name === "AbortError" || controller.signal.aborted) return;
    console.error(err);
    clear(main).append(h("section", { class: "error-box", role: "alert" },
      h("h2", { text: "Something went wrong" }), h("p", { text: String(err?.message ?? err) })));
  }
}

// In-app links: plain <a href="/..."> everywhere; left clicks without modifiers stay in the page.
document.addEventListener("click", (event) => {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const a = event.target.closest?.("a[href]");
  // getAttribute: an SVG <a> (the service map) has no string .href / .target.
  if (!a || a.getAttribute("target") || a.hasAttribute("download")) return;
  const url = new URL(a.getAttribute("href"), location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/") || url.pathname.startsWith("/ui/")) return;
  event.preventDefault();
  navigate(url);
});

window.addEventListener("popstate", route);

document.getElementById("jump")?.addEventListener("submit", (event) => {
  event.preventDefault();
  const input = event.target.elements.trace;
  const id = input.value.trim().toLowerCase();
  if (!/^[0-9a-f]{1,32}(\.\.\.[0-9a-f]{1,32})?$/.test(id)) {
    input.setCustomValidity("A trace id is 1 to 32 hex digits");
    input.reportValidity();
    return;
  }
  input.setCustomValidity("");
  input.value = "";
  navigate(`/trace/${id}`);
});

function footer() {
  const el = document.getElementById("footer");
  if (!el) return;
  clear(el).append(h("span", { text: "meshtrace collector" }));
  if (token()) {
    el.append(" · ", h("button", {
      type: "button", class: "link", text: "Forget query token",
      on: { click: () => { forgetToken(); footer(); } },
    }));
  }
}

window.addEventListener("storage", footer);
document.addEventListener("meshtrace:token", footer);
footer();
route();
