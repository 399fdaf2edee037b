# The Triton side: NVIDIA's tritonserver image, the model's Python packages, and this repository's
# launcher, Python-based backend and model repository. Model weights and TensorRT engines are not in
# the image; they come from volumes mounted at /models and /engines, so one image serves any model and
# rebuilding engines needs no new image.
#
# Build from the repository root:  docker build -f docker/triton.Dockerfile -t streamdiffusion-triton .
#
# Why release 25.01 (Triton 2.54.0): its release notes and compatibility matrix give CUDA 12.8.0,
# TensorRT 10.8.0.43 and Ubuntu 24.04 with Python 3.12.
#   - TensorRT 10: the engine runner uses the TensorRT 10 tensor API (StreamDiffusion's own TensorRT 8
#     binding calls were removed in 10).
#   - Its Python-backend stub reads numpy 2 arrays correctly (stubs from 24.11 on do; the 2.51 stub of
#     the local run misreads them), so numpy is no constraint here.
#   - Still CUDA 12: PyPI's torch 2.9.1 wheel is the CUDA 12.8 build and fits; later releases move to
#     CUDA 13, which needs a newer driver and a CUDA 13 torch.
# requirements-triton.txt pins TensorRT's Python bindings to 10.8.0.43 to match; change both together.
FROM nvcr.io/nvidia/tritonserver:25.01-py3

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# The model's packages go into a virtual environment made from the image's Python 3.12, first on PATH:
# the Python-backend stub takes its environment from the first python3 on PATH, as in the local run
# (.venv). Installing into the system Python instead would collide with Ubuntu's own Python packages.
# virtualenv is what the tritonserver image installs for making such environments.
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:${PATH} \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /opt/streamdiffusion

COPY docker/requirements-triton.txt docker/constraints-triton.txt docker/
RUN /usr/bin/python3 -m virtualenv --no-periodic-update /opt/venv \
    && python3 -m pip install --no-cache-dir \
        --extra-index-url https://pypi.nvidia.com \
        -r docker/requirements-triton.txt -c docker/constraints-triton.txt \
    && python3 -c "import tensorrt, torch; print('tensorrt', tensorrt.__version__, 'torch', torch.__version__, 'cuda', torch.version.cuda)"

COPY pyproject.toml README.md ./
COPY sdconfig/ sdconfig/
COPY sdcontract/ sdcontract/
COPY sdlauncher/ sdlauncher/
COPY sdaccel/ sdaccel/
COPY sdmodels/ sdmodels/
COPY sdtools/ sdtools/
COPY backends/ backends/
COPY model_repository/ model_repository/
COPY scripts/ scripts/
COPY config.yaml ./

# The project's packages, importable by the launcher, the scripts and the model's stub alike. Editable,
# so the launcher finds model_repository/ and backends/ beside its package. pyproject.toml lists
# every package of the repository and setuptools wants each folder: frontends/, which this image
# leaves out, is an empty one and installs nothing.
RUN mkdir -p frontends \
    && python3 -m pip install --no-cache-dir --no-deps -e .

# run/ (the rendered model repository and assembled backend directory) and logs/ are written by the
# launcher at start; /models and /engines are created here so fresh named volumes inherit the owner.
# triton-server (uid and gid 1000) is the non-root user the tritonserver image provides.
RUN mkdir -p run logs /models /engines \
    && chown -R triton-server:triton-server run logs /models /engines

# The same settings file as the local run; only what differs in a container is overridden:
# listen on all interfaces, and find weights and engines on the mounted volumes.
ENV SD_CONFIG=/opt/streamdiffusion/config.yaml \
    SD__TRITON__HOST=0.0.0.0 \
    SD__MODEL__MODEL_ID=/models/sd-turbo \
    SD__MODEL__TINY_VAE_ID=/models/sd-turbo/taesd \
    SD__MODEL__ENGINE_DIR=/engines \
    HF_HOME=/models/huggingface \
    XDG_CACHE_HOME=/tmp/.cache

# triton-server, by number so Kubernetes' runAsNonRoot can check it.
USER 1000:1000

# gRPC, HTTP, metrics: config.yaml's triton.grpc_port, http_port, metrics_port.
EXPOSE 8001 8002 8003

# Ready means both models loaded. Loading a real model can take minutes, hence the start period.
HEALTHCHECK --interval=15s --timeout=5s --start-period=600s --retries=3 \
    CMD ["/bin/bash", "-c", "curl -fsS -o /dev/null http://127.0.0.1:${SD__TRITON__HTTP_PORT:-8002}/v2/health/ready"]

# The launcher the local run uses; it finds /opt/tritonserver/bin/tritonserver and its backends itself.
ENTRYPOINT ["python3", "scripts/launch_triton.py"]
CMD ["--config", "/opt/streamdiffusion/config.yaml"]
