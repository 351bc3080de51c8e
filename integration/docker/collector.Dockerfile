# The meshtrace collector, FROM scratch with local artefacts only: `make images`
# assembles dist/images/collector/ (the release binary, the shared libraries it
# loads, busybox for the health check), so nothing is pulled. Build context: the
# repository root.
#   make images && buildah bud -f integration/docker/collector.Dockerfile -t meshtrace/collector:dev .
FROM scratch
COPY dist/images/collector/ /
# The store's directory owned by the collector's user: a named volume mounted
# here starts as a copy of it (owner included), so the collector can write.
COPY --chown=65532:65532 dist/images/collector-data/ /var/lib/meshtrace/
USER 65532:65532
# Inside a container the receivers listen on every address; publish ports on
# the host's loopback only (see docker-compose.yaml).
ENV MESHTRACE_OTLP_HTTP_ADDR=0.0.0.0:4318 \
    MESHTRACE_OTLP_GRPC_ADDR=0.0.0.0:4317 \
    MESHTRACE_ZIPKIN_ADDR=0.0.0.0:9411 \
    MESHTRACE_HTTP_ADDR=0.0.0.0:16686 \
    MESHTRACE_SAMPLING_ADDR=0.0.0.0:5778 \
    MESHTRACE_TEMPO_ADDR=0.0.0.0:3200 \
    MESHTRACE_DATA_DIR=/var/lib/meshtrace
VOLUME /var/lib/meshtrace
EXPOSE 3200 4317 4318 5778 9411 16686
ENTRYPOINT ["/usr/local/bin/meshtrace-collector"]
