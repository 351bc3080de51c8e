// The collector's query API, with the bearer token of `--query-token-file` when it asks for one.
//
// The page does not know in advance whether a token is needed: the first 401 opens a dialog, the token is
// kept in this browser's localStorage (only this origin reads it) and every request sends it as
// `Authorization: Bearer ...`. A wrong token asks again; "Forget token" in the footer removes it.

import { h } from "./dom.js";

const TOKEN_KEY = "meshtrace.queryToken";
// Where the token lives when localStorage is disabled (this page only).
let sessionToken = "";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function token() {
  try {
    return localStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

export function forgetToken() {
  try {
    localStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage disabled: nothing kept */
  }
}

let pendingAsk = null;

/** Shows the token dialog once, however many requests are waiting for it. */
function askToken(wrong) {
  if (pendingAsk) return pendingAsk;
  pendingAsk = new Promise((resolve) => {
    const input = h("input", {
      type: "password", name: "token", autocomplete: "current-password", required: true,
      "aria-label": "Query token",
    });
    const dialog = h("dialog", { class: "token-dialog" },
      h("form", {
        method: "dialog",
        on: {
          submit: (event) => {
            event.preventDefault();
            const value = input.value.trim();
            if (!value) return;
            try {
              localStorage.setItem(TOKEN_KEY, value);
            } catch {
              sessionToken = value;
            }
            dialog.close();
            dialog.remove();
            pendingAsk = null;
            document.dispatchEvent(new Event("meshtrace:token"));
            resolve();
          },
        },
      },
      h("h2", { text: "This collector needs a query token" }),
      h("p", { text: wrong
        ? "The token was not accepted. Enter the token from the collector's --query-token-file."
        : "Enter the token from the collector's --query-token-file. It is kept in this browser only." }),
      input,
      h("div", { class: "dialog-actions" }, h("button", { type: "submit", class: "primary", text: "Use token" }))));
    dialog.addEventListener("cancel", (event) => event.preventDefault());
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
  return pendingAsk;
}

function headers(accept) {
  const t = token() || sessionToken;
  const out = { Accept: accept };
  if (t) out.Authorization = `Bearer ${t}`;
  return out;
}

/** The error text an API answer carries, in the Jaeger envelope or the grpc-gateway shape. */
function errorText(status, body) {
  try {
    const json = JSON.parse(body);
    const msg = json?.errors?.[0]?.msg || json?.message || json?.error;
    if (msg) return String(msg);
  } catch {
    /* not JSON */
  }
  return `HTTP ${status}`;
}

/** GETs `path` with `params` (absent and empty values left out) and returns the parsed JSON. */
export async function get(path, params = {}, { raw = false, signal } = {}) {
  const url = new URL(path, location.origin);
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    for (const v of Array.isArray(value) ? value : [value]) url.searchParams.append(key, String(v));
  }
  let asked = false;
  for (;;) {
    const response = await fetch(url, { headers: headers("application/json"), signal });
    if (response.status === 401) {
      const hadToken = Boolean(token() || sessionToken);
      if (hadToken) {
        forgetToken();
        sessionToken = "";
      }
      await askToken(hadToken || asked);
      asked = true;
      continue;
    }
    const body = await response.text();
    if (!response.ok) throw new ApiError(response.status, errorText(response.status, body));
    return raw ? body : JSON.parse(body);
  }
}

/** The `data` of a Jaeger envelope. */
export async function data(path, params, options) {
  return (await get(path, params, options)).data ?? [];
}
