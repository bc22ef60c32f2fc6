# Switchboard's image: one image, every role, chosen by the command (see compose.yaml and
# the README's "Production"). Build: docker build -t switchboard .

# Build stage: the package and its dependencies into a virtualenv, copied alone below
# (no compiler, pip cache or sources in the final image).
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/switchboard
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core ./core
COPY adapters ./adapters
COPY bots ./bots
RUN /opt/switchboard/bin/pip install --no-cache-dir .

FROM python:3.11-slim
# A fixed uid, so a mounted data volume can be given to it (chown 10001).
RUN useradd --system --uid 10001 --user-group --home-dir /data --create-home switchboard
COPY --from=build /opt/switchboard /opt/switchboard
ENV PATH=/opt/switchboard/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data \
    PORT=3978
USER switchboard
WORKDIR /data
# The embedded SQLite database and Qdrant shard (when DATABASE_URL and QDRANT_URL are unset).
VOLUME /data
EXPOSE 3978
# Ready: the database (and the knowledge index, where this process opens it) answers.
# Python's urllib: the slim image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('PORT', '3978'), timeout=4)"]
# One process that does everything, on the embedded defaults (compose.yaml runs the roles).
# Beyond localhost the API answers only with SWITCHBOARD_API_KEYS set.
CMD ["switchboard", "serve", "--host", "0.0.0.0"]
