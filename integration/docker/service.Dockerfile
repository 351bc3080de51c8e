# The shop's services and its load generator: one small Python program each,
# parametrised by the environment (integration/shop/service.py, loadgen.py).
# The only image of the compose file with a base to pull: Docker Hub's
# python:3.11-slim-bookworm, pinned by its index digest (see integration/README.md).
# Build context: the repository root.
FROM python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b
COPY integration/shop/ /opt/shop/
USER 65534:65534
ENV PYTHONUNBUFFERED=1
CMD ["python", "/opt/shop/service.py"]
