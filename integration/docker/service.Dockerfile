# The shop's services and its load generator: one small Python program each,
# parametrised by the environment (integration/shop/service.py, loadgen.py).
# Build context: the repository root.
FROM python:3.11-slim-bookworm
COPY integration/shop/ /opt/shop/
USER nobody
ENV PYTHONUNBUFFERED=1
CMD ["python", "/opt/shop/service.py"]
