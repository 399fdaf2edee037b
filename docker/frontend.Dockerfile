# The frontends: aiohttp, the Triton gRPC client and image codecs. No torch, no model: they reach
# Triton over gRPC, so the image stays small and starts in seconds.
#
# Build from the repository root:  docker build -f docker/frontend.Dockerfile -t streamdiffusion-frontend .
# Python 3.11, as the pinned set in requirements/lock.txt was resolved for.
FROM python:3.11-slim-bookworm

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /app

COPY requirements/frontend.txt requirements/lock.txt requirements/
RUN pip install --no-cache-dir -r requirements/frontend.txt -c requirements/lock.txt \
    && groupadd --system --gid 10001 streamdiffusion \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin streamdiffusion

COPY pyproject.toml README.md ./
COPY sdconfig/ sdconfig/
COPY sdcontract/ sdcontract/
COPY frontends/ frontends/
COPY sdvideo/ sdvideo/
COPY config.yaml ./

# The project's packages, installed editable as in the local run. pyproject.toml lists every
# package of the repository and setuptools wants each folder: the model side's, which this image
# leaves out, are empty ones and install nothing.
RUN mkdir -p backends/streamdiffusion/sdbackend sdlauncher sdaccel sdmodels sdtools \
    && pip install --no-cache-dir --no-deps -e .

# The same settings file as the local run; in a container the server listens on all interfaces and
# finds Triton by its service name (compose: "triton"; Kubernetes sets the list of Triton pods).
ENV SD_CONFIG=/app/config.yaml \
    SD__SERVER__HOST=0.0.0.0 \
    SD__TRITON__URLS="[triton:8001]"

# The unprivileged user made above; numeric so Kubernetes' runAsNonRoot can check it.
USER 10001:10001

EXPOSE 8000

# Ready means the frontend can serve: Triton reachable and both models ready. Python instead of curl,
# so the image needs no extra packages.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('SD__SERVER__PORT', '8000'), timeout=4)"]

# The same entry point as the local run.
CMD ["python", "-m", "frontends"]
