"""What only the filter's tests use, beside the test kit (testkit/meshtrace_testkit: the sidecar, Envoy,
ports, waiting): a keep-alive client, the W3C suite's application, and reading the trace context a
request carries in each format.
"""
from __future__ import annotations

import http.client
import json
import urllib.parse

from meshtrace_testkit.net import LOOPBACK
from meshtrace_testkit.sidecar import HttpServer, QuietHandler


class Client:
    """A keep-alive HTTP/1.1 client, for many requests in a row."""

    def __init__(self, port, timeout=10.0):
        self.conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)

    def get(self, path="/", headers=None):
        self.conn.request("GET", path, headers=headers or {})
        resp = self.conn.getresponse()
        resp.read()
        return resp.status

    def close(self):
        self.conn.close()


class TraceContextApp(HttpServer):
    """The application of the W3C trace-context test suite's protocol: a POST
    carries a JSON list of `{"url", "arguments"}`; for each, the app POSTs
    `arguments` to `url` through `outbound_port` (the sidecar's outbound
    listener), forwarding the traceparent and tracestate it received and
    nothing else, and answers once every call is done."""

    def __init__(self):
        self.outbound_port = None
        app = self

        class H(QuietHandler):

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                calls = json.loads(body or b"[]") or []
                fwd = [(k, v) for k, v in self.headers.items() if k.lower() in ("traceparent", "tracestate")]
                for call in calls:
                    url = urllib.parse.urlsplit(call["url"])
                    conn = http.client.HTTPConnection(LOOPBACK, app.outbound_port, timeout=10)
                    try:
                        conn.putrequest("POST", url.path or "/", skip_host=True)
                        conn.putheader("host", url.netloc)
                        for k, v in fwd:
                            conn.putheader(k, v)
                        payload = json.dumps(call.get("arguments", [])).encode()
                        conn.putheader("content-type", "application/json")
                        conn.putheader("content-length", str(len(payload)))
                        conn.endheaders(payload)
                        conn.getresponse().read()
                    finally:
                        conn.close()
                out = b"{}"
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        super().__init__(H)


ALL_PROPAGATORS = ["tracecontext", "baggage", "b3", "b3multi", "jaeger"]


def context_in(headers_of) -> dict:
    """The (trace id, span id, sampled) each format carries in a request."""
    h = headers_of
    out = {}
    if h("traceparent"):
        _, t, s, f = h("traceparent").split("-")
        out["tracecontext"] = (t, s, int(f, 16) & 1 == 1)
    if h("b3"):
        t, s, d = h("b3").split("-")[:3]
        out["b3"] = (t.rjust(32, "0"), s, d in ("1", "d"))
    if h("x-b3-traceid"):
        out["b3multi"] = (h("x-b3-traceid").rjust(32, "0"), h("x-b3-spanid"),
                          h("x-b3-sampled") == "1" or h("x-b3-flags") == "1")
    if h("uber-trace-id"):
        t, s, _, f = h("uber-trace-id").split(":")
        out["jaeger"] = (t.rjust(32, "0"), s.rjust(16, "0"), int(f, 16) & 1 == 1)
    return out
