# syntax=docker/dockerfile:1
# The replication in one container: CUDA 13.0, Python 3.11, requirements.lock with torch's CUDA
# build, and vLLM in a virtualenv of its own (FlashAttention-2 on request); ./reproduce.sh is the entrypoint.
#   docker build -t runtime-semantics .                                     # --build-arg WITH_FLASH_ATTN=1 adds FlashAttention-2
#   docker run --gpus all --rm -it -v "$PWD:/app" runtime-semantics          # = ./reproduce.sh
#   docker run --gpus all --rm -it -v "$PWD:/app" -p 127.0.0.1:5000:5000 runtime-semantics ui --host 0.0.0.0
# The host needs an NVIDIA driver for CUDA 13.0 (580 or newer) and the NVIDIA Container Toolkit.
# docs/docker.md has the rest (volumes, the model cache, the CPU fallback).

# ---- build stage: compilers and CUDA headers, for FlashAttention ----
FROM nvidia/cuda:13.0.2-cudnn-devel-ubuntu24.04 AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY docker/install-python /usr/local/bin/install-python
RUN install-python --dev

WORKDIR /app
COPY pyproject.toml README.md requirements.lock requirements-gpu.txt requirements-vllm.lock ./
COPY scripts/ensure-venv scripts/
COPY src/ src/
# The locked environment, exactly as on a CPU machine (scripts/ensure-venv), in /opt/venv. On PyPI,
# torch==2.13.0 for Linux x86_64 is the PyTorch project's CUDA 13.0 build (the CPU build on the
# project's machines is a local wheel); requirements-gpu.txt pins its CUDA libraries. The project
# is installed editable from /app/src, so a checkout mounted at /app runs its own code.
RUN PIP_CONSTRAINT=/app/requirements-gpu.txt RUNTIME_SEMANTICS_VENV=/opt/venv PYTHON=python3.11 scripts/ensure-venv \
 && /opt/venv/bin/python -c "import torch; assert torch.version.cuda, 'not a CUDA build'; print('torch', torch.__version__, 'CUDA', torch.version.cuda)"

# FlashAttention-2, opt-in (--build-arg WITH_FLASH_ATTN=1): params.yaml trains with PyTorch's sdpa, and
# flash-attn has no prebuilt wheel for torch 2.13 / CUDA 13, so it compiles from source (long, and not
# known to build for CUDA 13: MAX_JOBS parallel nvcc jobs; FLASH_ATTN_CUDA_ARCHS 80 = Ampere and Ada,
# 90 = Hopper; add 100;120 for Blackwell). With it, set <profile>.train.attn_implementation: flash_attention_2.
ARG WITH_FLASH_ATTN=0
ARG FLASH_ATTN_CUDA_ARCHS="80;90"
ARG MAX_JOBS=4
# hadolint ignore=DL3013
RUN if [ "$WITH_FLASH_ATTN" = 1 ]; then \
      /opt/venv/bin/pip install -c requirements-gpu.txt einops ninja \
   && /opt/venv/bin/pip install --no-build-isolation --no-deps -c requirements-gpu.txt flash-attn \
   && /opt/venv/bin/python -c "import flash_attn; print('flash-attn', flash_attn.__version__)"; \
    fi

# vLLM, the paper's inference engine, serves the models during evaluation from its own virtualenv
# (it pins transformers and numpy below requirements.lock's versions); every package pinned.
RUN python3.11 -m venv /opt/vllm \
 && /opt/vllm/bin/pip install pip==26.3 \
 && /opt/vllm/bin/pip install --no-deps -r requirements-vllm.lock \
 && /opt/vllm/bin/python -m pip check

# ---- final image: the CUDA runtime, the two environments, the repository ----
FROM nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY docker/install-python /usr/local/bin/install-python
# --triton: gcc, libc6-dev and python3.11-dev, which Triton (TRL's chunked loss kernel, vLLM) compiles its
# launcher with at run time; without them the first Triton kernel fails ("Failed to find C compiler", Python.h)
RUN install-python --triton

# A non-root user with uid 1000 (most hosts' first user, so files written to a bind mount stay
# yours; other uids: docker run --user "$(id -u):$(id -g)"). Ubuntu's image already has uid 1000.
RUN if id ubuntu >/dev/null 2>&1; then userdel --remove ubuntu; fi \
 && useradd --create-home --uid 1000 --shell /bin/bash repro \
 && git config --system --add safe.directory /app \
 && install -d -m 1777 /hf-cache

COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/vllm /opt/vllm
WORKDIR /app
COPY --chown=repro:repro . .
RUN install -d -o repro -g repro -m 1777 artifacts

ENV RUNTIME_SEMANTICS_VENV=/opt/venv \
    RUNTIME_SEMANTICS_VLLM_PYTHON=/opt/vllm/bin/python \
    HF_HOME=/hf-cache \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1
USER 1000:1000
# Outputs live in artifacts/ (and paper/): mount a checkout at /app, or a volume at /app/artifacts,
# to keep them; the model cache is /hf-cache (docs/docker.md). No VOLUME line on purpose: it would
# put an anonymous volume over the artifacts/ of a checkout mounted at /app.
EXPOSE 5000
ENTRYPOINT ["./reproduce.sh"]
