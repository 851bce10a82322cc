# One image for every lookups process: api, orchestrator, gpu and llm workers.
# CPU torch by default; a CUDA build with: --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
FROM python:3.11-slim

ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG LLAMA_VERSION=0.3.36

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    LOOKUPS_CACHE_DIR=/data/cache

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*

# torch first, from the chosen index, so pip never pulls the multi-GB CUDA build by accident.
RUN pip install --index-url "$TORCH_INDEX_URL" "$TORCH_SPEC"
# A portable llama.cpp build (no -march=native), as setup.sh does.
RUN CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
    pip install --no-binary llama-cpp-python "llama-cpp-python==$LLAMA_VERSION"

WORKDIR /app
# Exactly the packages pyproject's [tool.setuptools.packages.find] names, one COPY each
# (tests/integration/test_docker_image.py compares the two lists and installs from these files).
COPY pyproject.toml README.md ./
COPY api api
COPY lookups lookups
COPY plugins plugins
COPY services services
COPY workers workers
RUN pip install -e ".[all]"

RUN useradd --create-home lookups && mkdir -p /data && chown lookups /data
USER lookups
VOLUME /data
CMD ["lookups", "--help"]
