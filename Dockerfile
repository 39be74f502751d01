# syntax=docker/dockerfile:1
# listener: multi-stage build, non-root, UTC, healthcheck on /healthz.
# Writes only to /var/lib/listener (the state volume) and /tmp, so it runs with a read-only
# root file system (deploy/docker-compose.yml, deploy/kubernetes/deployment.yaml).
#
# Base images are pinned by digest (tests/deploy/test_compose.py checks every FROM): a
# rebuild gets the same Python and Debian until someone moves the pin on purpose. To take
# the current python:3.11-slim (security updates), look its digest up and replace it in
# both FROM lines:
#   docker buildx imagetools inspect python:3.11-slim --format '{{json .Manifest.Digest}}'
#   (or: docker pull python:3.11-slim && docker inspect --format '{{index .RepoDigests 0}}' python:3.11-slim)
FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7 AS build
# Optional extras of pyproject.toml baked into the image. "report" (matplotlib: about
# 200 MB with numpy, pillow and fonttools) lets on-call run `listener report` where the
# state file is (`kubectl exec`, `docker compose exec`); `--build-arg LISTENER_EXTRAS=`
# builds an image without it, e.g. "report,transformers" one with a model backend.
ARG LISTENER_EXTRAS=report
WORKDIR /src
RUN python -m venv /opt/listener \
 && /opt/listener/bin/pip install --no-cache-dir --upgrade pip
# Dependencies first, in their own layer: it depends only on pyproject.toml, so a code
# change rebuilds from the COPY of listener/ below and reuses the installed dependencies.
COPY pyproject.toml ./
RUN python -c 'import sys, tomllib; project = tomllib.load(open("pyproject.toml", "rb"))["project"]; extras = [e for e in sys.argv[1].split(",") if e]; print("\n".join([*project["dependencies"], *(d for e in extras for d in project["optional-dependencies"][e])]))' "$LISTENER_EXTRAS" > requirements.txt \
 && /opt/listener/bin/pip install --no-cache-dir -r requirements.txt
# The code: listener itself only (--no-deps), then pip check that nothing is missing.
COPY README.md ./
COPY listener ./listener
RUN /opt/listener/bin/pip install --no-cache-dir --no-deps . \
 && /opt/listener/bin/pip check

FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7
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
# Numeric, so Kubernetes can check runAsNonRoot without reading /etc/passwd; the same uid
# and gid as deploy/kubernetes/deployment.yaml's securityContext.
USER 10001:10001
VOLUME ["/var/lib/listener"]
EXPOSE 9464
# Probes /healthz where the daemon listens: LISTENER_LISTEN (as `docker run -e` or compose
# may change it), with a wildcard host (0.0.0.0, ::, empty) asked on loopback.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; host, _, port = os.environ.get('LISTENER_LISTEN', '0.0.0.0:9464').rpartition(':'); host = host.strip('[]'); host = {'': '127.0.0.1', '0.0.0.0': '127.0.0.1', '::': '::1'}.get(host, host); host = f'[{host}]' if ':' in host else host; sys.exit(0 if urllib.request.urlopen(f'http://{host}:{port}/healthz', timeout=4).status == 200 else 1)"]
STOPSIGNAL SIGTERM
CMD ["listener", "run", "--config", "/etc/listener/rules.yaml"]
