# The meshtrace collector. Build context: the repository root.
#   docker build -f integration/docker/collector.Dockerfile -t meshtrace/collector:dev .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY collector collector
RUN cargo build -p meshtrace-collector --release --locked

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/meshtrace-collector /usr/local/bin/meshtrace-collector
# Inside a container the receivers listen on every address; publish ports on
# the host's loopback only (see docker-compose.yaml).
ENV MESHTRACE_OTLP_HTTP_ADDR=0.0.0.0:4318 \
    MESHTRACE_OTLP_GRPC_ADDR=0.0.0.0:4317 \
    MESHTRACE_ZIPKIN_ADDR=0.0.0.0:9411 \
    MESHTRACE_HTTP_ADDR=0.0.0.0:16686 \
    MESHTRACE_DATA_DIR=/var/lib/meshtrace
VOLUME /var/lib/meshtrace
EXPOSE 4317 4318 9411 16686
ENTRYPOINT ["/usr/local/bin/meshtrace-collector"]
