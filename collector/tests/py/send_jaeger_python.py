"""Reports one trace with the real Python jaeger-client (PyPI `jaeger-client`), which sends thrift compact
over UDP to an agent port, as the Go and Java clients do: a server span and its client child with an
error and a log. Run as a script (the client keeps a tornado loop in a thread of its own); prints the
128-bit trace id and the root's span id. Usage: send_jaeger_python.py HOST:PORT SERVICE"""

import sys
import time

from jaeger_client import Config


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    service = sys.argv[2]
    tracer = Config(
        config={
            "sampler": {"type": "const", "param": 1},
            "local_agent": {"reporting_host": host, "reporting_port": int(port)},
            "reporter_flush_interval": 0.05,
            "generate_128bit_trace_id": True,
        },
        service_name=service,
        validate=True,
    ).new_tracer()
    with tracer.start_span("GET /checkout", tags={"span.kind": "server", "http.status_code": 200}) as root:
        with tracer.start_span("SELECT cart", child_of=root, tags={"span.kind": "client"}) as child:
            child.set_tag("error", True)
            child.log_kv({"event": "retry", "attempt": 2})
    trace_id = format(root.context.trace_id, "032x")
    span_id = format(root.context.span_id, "016x")
    tracer.close()
    # close() hands the last batch to the reporter's own loop thread; UDP has no acknowledgement to wait
    # for, so give that thread a moment to write the datagram (the test then waits on the collector).
    time.sleep(0.5)
    print(trace_id, span_id)


if __name__ == "__main__":
    main()
