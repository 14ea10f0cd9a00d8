# cuvae Makefile. `make` builds build/cuvae (with the CUDA backend when nvcc is
# found; `make CUDA=0` for CPU only). See README.md for the targets.

CC      ?= gcc
CUDA_HOME ?= $(shell d=$$(dirname $$(dirname $$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc))); echo $$d)
NVCC    ?= $(CUDA_HOME)/bin/nvcc
CUDA    ?= $(shell test -x $(NVCC) && echo 1 || echo 0)

BUILD   := build
# x86-64-v3 = AVX2 + FMA (any x86 server since 2015); `make ARCH=x86-64` for older CPUs
ARCH    ?= x86-64-v3
CFLAGS  ?= -O3 -g
CFLAGS  += -march=$(ARCH) -fno-math-errno -fopenmp -std=gnu11 -Wall -Wextra -Iinclude -MMD -MP
LDLIBS  := -lcjson -lopenblas -lpng -lz -lm -lpthread

# real code for sm_80 and sm_90 plus PTX for newer GPUs
NVCCFLAGS ?= -O3 -g -lineinfo
NVCCFLAGS += -Iinclude -std=c++17 -MMD -MP -Xcompiler -Wall,-Wextra \
             -gencode arch=compute_80,code=sm_80 \
             -gencode arch=compute_90,code=sm_90 \
             -gencode arch=compute_90,code=compute_90

LIB_SRCS := $(filter-out src/main.c src/backend_cuda.c, $(wildcard src/*.c))
ifeq ($(CUDA),1)
  LIB_SRCS += src/backend_cuda.c
  CU_SRCS  := $(wildcard kernels/*.cu)
  CFLAGS   += -DCUVAE_WITH_CUDA=1 -I$(CUDA_HOME)/include
  LDLIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++
endif

LIB_OBJS := $(LIB_SRCS:src/%.c=$(BUILD)/obj/%.o) $(CU_SRCS:kernels/%.cu=$(BUILD)/obj/kernels/%.o)
TEST_SRCS := $(wildcard tests/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
# record the build flavour so switching CUDA=0/1 rebuilds
FLAVOUR := $(BUILD)/.flavour-cuda$(CUDA)

.PHONY: all deps data run test test-only lectures bench clean help
all: $(BUILD)/cuvae $(TEST_BINS)

$(FLAVOUR):
	@mkdir -p $(BUILD)/obj/kernels $(BUILD)/tests
	@rm -f $(BUILD)/.flavour-cuda* $(BUILD)/obj/*.o $(BUILD)/obj/kernels/*.o
	@touch $@

$(BUILD)/obj/%.o: src/%.c $(FLAVOUR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/kernels/%.o: kernels/%.cu $(FLAVOUR) Makefile
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(BUILD)/libcuvae.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/cuvae: $(BUILD)/obj/main.o $(BUILD)/libcuvae.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/test.h $(BUILD)/libcuvae.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $< $(BUILD)/libcuvae.a -o $@ $(LDLIBS)

-include $(wildcard $(BUILD)/obj/*.d $(BUILD)/obj/kernels/*.d $(BUILD)/tests/*.d)

deps:
	@bash scripts/deps.sh

data:
	@bash scripts/data.sh

run: deps data all
	./$(BUILD)/cuvae train configs/mnist_vae.json --out runs/mnist_vae
	./$(BUILD)/cuvae sample runs/mnist_vae/model.safetensors -n 64 -o runs/mnist_vae/samples.png
	./$(BUILD)/cuvae plot runs/mnist_vae
	@echo "outputs: runs/mnist_vae/ (config.json, log.jsonl, eval.json, model.safetensors, resume.safetensors, samples.png, figures/*.png)"

test: deps data all
	@bash tests/run_tests.sh

lectures: deps data all
	FULL=$(FULL) bash scripts/lectures.sh

bench: deps all
	bash scripts/bench.sh

# tests without the install steps (for a machine already set up)
test-only: all
	@bash tests/run_tests.sh

clean:
	rm -rf $(BUILD)
