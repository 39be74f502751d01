# syntax=docker/dockerfile:1
# listener: multi-stage build, non-root, UTC, healthcheck on /healthz.
# Writes only to /var/lib/listener (the state volume) and /tmp, so it runs with a read-only
# root file system (deploy/docker-compose.yml, deploy/kubernetes/deployment.yaml).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY listener ./listener
RUN python -m venv /opt/listener \
 && /opt/listener/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/listener/bin/pip install --no-cache-dir .

FROM python:3.11-slim
ENV TZ=UTC \
    PATH=/opt/listener/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    LISTENER_CONFIG=/etc/listener/rules.yaml \
    LISTENER_STATE=/var/lib/listener/listener.db \
    LISTENER_LISTEN=0.0.0.0:9464 \
    LISTENER_LOG_FORMAT=json
RUN groupadd --system --gid 10001 listener \
 && useradd --system --uid 10001 --gid listener --home-dir /var/lib/listener --shell /usr/sbin/nologin listener \
 && mkdir -p /var/lib/listener /etc/listener \
 && chown listener:listener /var/lib/listener
COPY --from=build /opt/listener /opt/listener
COPY rules.yaml /etc/listener/rules.yaml
USER listener
VOLUME ["/var/lib/listener"]
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4).status == 200 else 1)"]
STOPSIGNAL SIGTERM
CMD ["listener", "run", "--config", "/etc/listener/rules.yaml"]
