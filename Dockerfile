# Zastava: one image, entrypoint `zastava` (observer, webhook, backend and authority are subcommands).
#
#   make image                                   # BASE_IMAGE defaults to the public Python base
#   docker build --build-arg BASE_IMAGE=... .    # any Debian-like base with python3 (>= 3.11) and venv
#
# Offline builds: put wheels in .wheelhouse/ and pass --build-arg PIP_NO_INDEX=1
# --build-arg PIP_FIND_LINKS=/src/.wheelhouse (the tests do this with a locally debootstrapped base).
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG PIP_NO_INDEX=
ARG PIP_FIND_LINKS=
ARG PIP_INDEX_URL=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
COPY .wheelhouse* ./.wheelhouse/
# the otel extra: OpenTelemetry SDK + OTLP/HTTP exporter, so runtime.tracing.otlpEndpoint works in the image
RUN python3 -m venv /opt/zastava \
 && /opt/zastava/bin/pip install --no-compile ".[otel]" \
 && { /opt/zastava/bin/pip uninstall -y pip setuptools wheel >/dev/null 2>&1 || true; } \
 && find /opt/zastava -name '__pycache__' -prune -exec rm -rf {} + \
 && /opt/zastava/bin/zastava --version

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="zastava" \
      org.opencontainers.image.description="Runtime inspector and admission guard for containers" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/zastava /opt/zastava
COPY LICENSE /usr/share/doc/zastava/LICENSE
ENV PATH=/opt/zastava/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# Non-root by default (webhook, backend, authority). The observer needs root for /proc of other users'
# processes and sets runAsUser: 0 with only DAC_READ_SEARCH (+ optional SYS_PTRACE) in its securityContext.
USER 65532:65532
ENTRYPOINT ["/opt/zastava/bin/zastava"]
CMD ["--help"]
