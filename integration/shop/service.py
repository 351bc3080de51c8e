"""One shop service. Configured by the environment:

  SERVICE_NAME  its name (frontend, catalog, cart, inventory, payment)
  PORT          where it listens (default 8080)
  BIND          address it listens on (default 127.0.0.1)
  OUTBOUND      host:port of its sidecar's outbound listener (default 127.0.0.1:15001)

Like a real application that was only ever instrumented for one format, it
copies ONLY the trace headers of its own format (topology.SERVICES) onto the
calls it makes, then answers 200 with what its callees answered. The answer's
`x-shop-trace-id` header is the trace id as this application saw it.
"""
from __future__ import annotations

import http.client
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    from topology import FORWARDED, PREFIXES, SERVICES
except ImportError:  # imported as integration.shop.service
    from .topology import FORWARDED, PREFIXES, SERVICES


def forwarded_headers(fmt: str, headers: dict[str, str]) -> dict[str, str]:
    """The headers an application speaking only `fmt` passes on."""
    return {k: v for k, v in headers.items()
            if k in FORWARDED[fmt] or any(k.startswith(p) for p in PREFIXES[fmt])}


def trace_id_seen(fmt: str, headers: dict[str, str]) -> str:
    """The trace id in this application's own format, 32 hex characters, or ''."""
    value = ""
    if fmt == "w3c" and headers.get("traceparent", "").count("-") == 3:
        value = headers["traceparent"].split("-")[1]
    elif fmt == "b3":
        value = headers.get("x-b3-traceid") or headers.get("b3", "").split("-")[0]
    elif fmt == "jaeger":
        value = headers.get("uber-trace-id", "").replace("%3A", ":").split(":")[0]
    return value.rjust(32, "0") if value else ""


def make_handler(name: str, outbound: tuple[str, int]):
    fmt, calls = SERVICES[name]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            incoming = {k.lower(): v for k, v in self.headers.items()}
            fwd = forwarded_headers(fmt, incoming)
            results, status = [], 200
            for callee, path in calls:
                code, body = call(outbound, callee, path, fwd)
                results.append({"call": f"{callee}{path}", "status": code, "answer": body})
                if code >= 500 or code == 0:
                    status = 502
            body = json.dumps({"service": name, "forwards": fmt, "calls": results}).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.send_header("x-shop-trace-id", trace_id_seen(fmt, incoming))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def call(outbound: tuple[str, int], callee: str, path: str, headers: dict[str, str]):
    """One call through the sidecar's outbound listener, routed by Host."""
    conn = http.client.HTTPConnection(*outbound, timeout=10)
    try:
        conn.request("GET", path, headers={**headers, "host": callee})
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw.decode(errors="replace")[:200]
    except OSError as err:
        return 0, str(err)
    finally:
        conn.close()


def serve(name: str, bind: str, port: int, outbound: tuple[str, int]) -> ThreadingHTTPServer:
    httpd = ThreadingHTTPServer((bind, port), make_handler(name, outbound))
    httpd.daemon_threads = True
    return httpd


def main() -> None:
    name = os.environ["SERVICE_NAME"]
    host, port = os.environ.get("OUTBOUND", "127.0.0.1:15001").rsplit(":", 1)
    httpd = serve(name, os.environ.get("BIND", "127.0.0.1"), int(os.environ.get("PORT", "8080")),
                  (host, int(port)))
    print(f"{name}: listening on {httpd.server_address}, forwarding only {SERVICES[name][0]} headers",
          flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
