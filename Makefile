# cuvae Makefile. `make` builds build/cuvae (with the CUDA backend when nvcc is
# found; `make CUDA=0` for CPU only). See README.md for the targets.
# `make CUDA_EMU=1` builds build-emu/: the CUDA backend and kernels/*.cu linked
# against the emulated CUDA device of tests/cuemu (no GPU needed; a test build,
# never the shipped one). SANITIZE=1 adds ASan + UBSan (folder suffix -san).

CC      ?= gcc
CUDA_HOME ?= $(shell d=$$(dirname $$(dirname $$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc))); echo $$d)
NVCC    ?= $(CUDA_HOME)/bin/nvcc
CUDA_EMU ?= 0
SANITIZE ?= 0
# the sanitized build checks the host code: CPU only unless CUDA=1 is asked for
ifeq ($(SANITIZE),1)
CUDA    ?= 0
else
CUDA    ?= $(shell test -x $(NVCC) && echo 1 || echo 0)
endif
CXX     ?= g++
# the emulator compiles the kernels as host C++ against the real CUDA headers
CUDA_HEADERS := $(shell test -f $(CUDA_HOME)/include/cuda_runtime_api.h -a -f $(CUDA_HOME)/include/cublas_v2.h && echo 1 || echo 0)

BUILD   := build
ifeq ($(CUDA_EMU),1)
  BUILD := build-emu
  CUDA  := 1
endif
ifeq ($(SANITIZE),1)
  BUILD := $(BUILD)-san
endif
# x86-64-v3 = AVX2 + FMA (any x86 server since 2015); `make ARCH=x86-64` for older CPUs
ARCH    ?= x86-64-v3
ifeq ($(SANITIZE),1)
  SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
  CFLAGS   ?= -O1 -g
else
  CFLAGS   ?= -O3 -g
endif
# -fno-math-errno / -fno-trapping-math change no result: nothing reads errno or the FP
# exception flags, and without them gcc will not vectorise a loop with a select around a
# division or a product (the BCE loss, Adam's decay)
# CFLAGS and NVCCFLAGS stay the user's (from the command line or the environment, exported to the
# sub-makes as given); the build's own flags are added in CUVAE_CFLAGS / CUVAE_NVCCFLAGS
CUVAE_CFLAGS := $(CFLAGS) $(SANFLAGS) -march=$(ARCH) -fno-math-errno -fno-trapping-math -fopenmp -std=gnu11 -Wall -Wextra -Iinclude -MMD -MP
LDLIBS  := $(SANFLAGS) -lcjson -lopenblas -lpng -lz -lm -lpthread
# oneDNN (Debian's libdnnl-dev) runs the CPU backend's convolutions when its header is
# found (`make ONEDNN=0` to leave it out: the conv layers then compose im2col / GEMM)
ONEDNN  ?= $(shell test -f /usr/include/oneapi/dnnl/dnnl.h && echo 1 || echo 0)
ifeq ($(ONEDNN),1)
  CUVAE_CFLAGS += -DCUVAE_ONEDNN
  LDLIBS += -ldnnl
endif

# real code for sm_80 and sm_90 plus PTX for newer GPUs
NVCCFLAGS ?= -O3 -g -lineinfo
CUVAE_NVCCFLAGS := $(NVCCFLAGS) -Iinclude -std=c++17 -MMD -MP -Xcompiler -Wall,-Wextra \
             -gencode arch=compute_80,code=sm_80 \
             -gencode arch=compute_90,code=sm_90 \
             -gencode arch=compute_90,code=compute_90

LIB_SRCS := $(filter-out src/main.c src/backend_cuda.c, $(wildcard src/*.c))
# NCCL (shipped with the CUDA toolkit) for the CUDA backend's all-reduce across
# GPUs: used when nccl.h and libnccl are found, `make NCCL=0` without. The
# emulated build emulates a communicator of one rank (tests/cuemu/cuemu_nccl.cpp).
ifeq ($(CUDA_EMU),1)
NCCL    ?= $(shell test -f $(CUDA_HOME)/include/nccl.h && echo 1 || echo 0)
else
NCCL    ?= $(shell test -f $(CUDA_HOME)/include/nccl.h && ls $(CUDA_HOME)/lib64/libnccl.so* >/dev/null 2>&1 && echo 1 || echo 0)
endif
ifeq ($(CUDA),1)
  LIB_SRCS += src/backend_cuda.c
  CU_SRCS  := $(wildcard kernels/*.cu)
  CUVAE_CFLAGS += -DCUVAE_WITH_CUDA=1 -I$(CUDA_HOME)/include
  ifeq ($(NCCL),1)
    CUVAE_CFLAGS += -DCUVAE_WITH_NCCL=1
  endif
  ifeq ($(CUDA_EMU),1)
    LDLIBS += -lstdc++
  else
    LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++
    ifeq ($(NCCL),1)
      LDLIBS += -lnccl
    endif
  endif
endif

# MPI (Open MPI, Debian's libopenmpi-dev) for data-parallel training across
# processes (src/distributed.c): used when mpicc is found, `make MPI=0` without.
# The sanitized build leaves it out (ASan's leak check and Open MPI disagree).
ifeq ($(SANITIZE),1)
MPI     ?= 0
else
MPI     ?= $(shell command -v mpicc >/dev/null 2>&1 && mpicc --showme:compile >/dev/null 2>&1 && echo 1 || echo 0)
endif
ifeq ($(MPI),1)
  CUVAE_CFLAGS += -DCUVAE_WITH_MPI=1 $(shell mpicc --showme:compile)
  LDLIBS += $(shell mpicc --showme:link)
endif

LIB_OBJS := $(LIB_SRCS:src/%.c=$(BUILD)/obj/%.o) $(CU_SRCS:kernels/%.cu=$(BUILD)/obj/kernels/%.o)
TEST_SRCS := $(wildcard tests/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
# record the build flavour so switching CUDA=0/1 (or MPI, NCCL, ONEDNN), ARCH, the compilers or
# their flags rebuilds (`make ARCH=x86-64` after a default build: every object again; the flags
# as a checksum in the stamp's name)
FLAGS_SUM := $(shell echo '$(subst ','',$(CC) $(CXX) $(NVCC) $(CUVAE_CFLAGS) $(CUVAE_NVCCFLAGS))' | cksum | cut -d' ' -f1)
FLAVOUR := $(BUILD)/.flavour-cuda$(CUDA)-mpi$(MPI)-nccl$(NCCL)-onednn$(ONEDNN)-flags$(FLAGS_SUM)

# ---- the emulated CUDA device (tests/cuemu), CUDA_EMU=1 only ----------------
CUEMU := tests/cuemu
EMU_LIB := $(BUILD)/libcuemu.a
EMU_OBJS := $(patsubst $(CUEMU)/%.cpp,$(BUILD)/obj/cuemu/%.o,$(wildcard $(CUEMU)/cuemu_*.cpp)) \
            $(BUILD)/obj/cuemu/cuemu_fiber.o
EMU_CXXFLAGS := $(SANFLAGS) $(if $(filter 1,$(SANITIZE)),-O1,-O2) -g -march=$(ARCH) -std=c++17 \
                -Wall -Wextra -Iinclude -I$(CUEMU) -I$(CUDA_HOME)/include -MMD -MP
# kernels/*.cu (and the emulator's own toy kernels) as host C++
EMU_KERNEL_FLAGS := $(EMU_CXXFLAGS) -include $(CUEMU)/cuemu_device.h
EMU_LINK := $(EMU_LIB)
ifeq ($(CUDA_EMU),1)
  TEST_BINS := $(BUILD)/tests/test_cuda_parity $(BUILD)/tests/test_cuemu
  # the portable ucontext fibers, tested too (not under ASan, which needs the fiber annotations)
  ifneq ($(SANITIZE),1)
    TEST_BINS += $(BUILD)/tests/test_cuemu_ucontext
  endif
endif

# cli_faults.sh's LD_PRELOAD library (a system call failing at a chosen file); never sanitized, so
# that it loads beside a sanitized cuvae too
FAULT_INJECT := $(if $(filter 1,$(CUDA_EMU)),,$(BUILD)/tests/fault_inject.so)

.PHONY: all deps data run test test-only emu lectures bench clean help
all: $(BUILD)/cuvae $(TEST_BINS) $(FAULT_INJECT)

$(BUILD)/tests/fault_inject.so: tests/fault_inject.c Makefile
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -fPIC -shared -std=gnu11 -Wall -Wextra $< -o $@ -ldl

$(FLAVOUR):
	@mkdir -p $(BUILD)/obj/kernels $(BUILD)/tests
	@rm -f $(BUILD)/.flavour-cuda* $(BUILD)/obj/*.o $(BUILD)/obj/kernels/*.o $(BUILD)/obj/cuemu/*.o
	@touch $@

$(BUILD)/obj/%.o: src/%.c $(FLAVOUR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CUVAE_CFLAGS) -c $< -o $@

# the commit the binary is built from, for `cuvae --version` and report's footer: written as make
# starts, and only when it changed (scripts/build_commit.sh)
$(shell sh scripts/build_commit.sh $(BUILD))
$(BUILD)/obj/main.o: CUVAE_CFLAGS += -I$(BUILD)
$(BUILD)/obj/main.o: $(BUILD)/build_commit.h

ifeq ($(CUDA_EMU),1)
# launches and __shared__ declarations rewritten mechanically, #line keeps kernels/X.cu:LINE
$(BUILD)/gen/%.cu.cpp: %.cu $(CUEMU)/cuemu_rewrite.py $(FLAVOUR)
	@mkdir -p $(dir $@)
	python3 $(CUEMU)/cuemu_rewrite.py $< $@

$(BUILD)/obj/kernels/%.o: $(BUILD)/gen/kernels/%.cu.cpp $(CUEMU)/cuemu_device.h Makefile
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_KERNEL_FLAGS) -c $< -o $@

$(BUILD)/obj/cuemu/%.o: $(CUEMU)/%.cpp $(FLAVOUR) Makefile
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -c $< -o $@

$(BUILD)/obj/cuemu/cuemu_fiber.o: $(CUEMU)/cuemu_fiber.c $(FLAVOUR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(SANFLAGS) -O2 -g -std=gnu11 -Wall -Wextra -c $< -o $@

$(EMU_LIB): $(EMU_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/obj/cuemu/toy_kernels.o: $(BUILD)/gen/$(CUEMU)/toy_kernels.cu.cpp $(CUEMU)/cuemu_device.h Makefile
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_KERNEL_FLAGS) -c $< -o $@

# the emulator's self-test: planted bugs in toy kernels must each be caught
$(BUILD)/tests/test_cuemu: $(CUEMU)/test_cuemu.cpp $(BUILD)/obj/cuemu/toy_kernels.o $(EMU_LIB) tests/test.h
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -Itests $< $(BUILD)/obj/cuemu/toy_kernels.o $(EMU_LIB) -o $@ $(LDLIBS)

$(BUILD)/obj/cuemu/cuemu_fiber_ucontext.o: $(CUEMU)/cuemu_fiber.c $(FLAVOUR) Makefile
	@mkdir -p $(dir $@)
	$(CC) -DCUEMU_UCONTEXT=1 -O2 -g -std=gnu11 -Wall -Wextra -c $< -o $@

$(BUILD)/tests/test_cuemu_ucontext: $(CUEMU)/test_cuemu.cpp $(BUILD)/obj/cuemu/toy_kernels.o $(EMU_OBJS) \
                                    $(BUILD)/obj/cuemu/cuemu_fiber_ucontext.o tests/test.h
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -Itests $< $(BUILD)/obj/cuemu/toy_kernels.o \
	    $(filter-out %/cuemu_fiber.o,$(EMU_OBJS)) $(BUILD)/obj/cuemu/cuemu_fiber_ucontext.o -o $@ $(LDLIBS)
else
$(BUILD)/obj/kernels/%.o: kernels/%.cu $(FLAVOUR) Makefile
	@mkdir -p $(dir $@)
	$(NVCC) $(CUVAE_NVCCFLAGS) -c $< -o $@
EMU_LINK :=
endif

$(BUILD)/libcuvae.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/cuvae: $(BUILD)/obj/main.o $(BUILD)/libcuvae.a $(EMU_LINK)
	$(CC) $(CUVAE_CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/test.h $(BUILD)/libcuvae.a $(EMU_LINK)
	@mkdir -p $(dir $@)
	$(CC) $(CUVAE_CFLAGS) -Itests $< $(BUILD)/libcuvae.a $(EMU_LINK) -o $@ $(LDLIBS)

-include $(wildcard $(BUILD)/obj/*.d $(BUILD)/obj/kernels/*.d $(BUILD)/obj/cuemu/*.d $(BUILD)/tests/*.d)

# The targets below that install first (run, test, bench, lectures, fuzz; and test-only) build in a
# sub-make with one job per core (`make test JOBS=1` for one at a time; 0 or empty: the default; the
# cores this process may use, OMP_NUM_THREADS aside); data waits for deps (it needs what deps installs)
override JOBS := $(or $(filter-out 0,$(JOBS)),$(shell env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null || echo 1))

deps:
	@bash scripts/deps.sh

data: | deps
	@bash scripts/data.sh

# (a sub-make after deps: the oneDNN that deps installed is detected)
run: deps data
	@$(MAKE) --no-print-directory -j$(JOBS) all
	./$(BUILD)/cuvae train configs/mnist_vae.json --out runs/mnist_vae --overwrite
	./$(BUILD)/cuvae sample runs/mnist_vae/model.safetensors -n 64 -o runs/mnist_vae/samples.png
	./$(BUILD)/cuvae plot runs/mnist_vae
	@echo "outputs: runs/mnist_vae/ (config.json, log.jsonl, eval.json, model.safetensors, resume.safetensors, samples.png, figures/*.png)"

# `make test SANITIZE=1`: unit tests and the training / error / fault scripts
# under ASan + UBSan (build-san/); .ci/run runs both.
# (a sub-make after deps: what deps installed, e.g. Open MPI, is detected)
ifeq ($(SANITIZE),1)
test: deps data
	@$(MAKE) --no-print-directory -j$(JOBS) SANITIZE=1 all
	@SANITIZE=1 BUILD=$(BUILD) bash tests/run_tests.sh
else
test: deps data
	@$(MAKE) --no-print-directory -j$(JOBS) all emu
	@bash tests/run_tests.sh
endif

# the emulated CUDA device builds (run by tests/run_tests.sh): plain, and under
# ASan + UBSan. Needs the CUDA headers only (no GPU, no driver).
emu:
ifeq ($(CUDA_HEADERS),1)
	$(MAKE) --no-print-directory CUDA_EMU=1 SANITIZE=0 all
	$(MAKE) --no-print-directory CUDA_EMU=1 SANITIZE=1 all
else
	@echo "emu: no CUDA headers under $(CUDA_HOME)/include: the emulated CUDA tests will be skipped"
endif

# ---- fuzzing (tests/fuzz, libFuzzer from Debian's clang) ---------------------
# `make fuzz FUZZ_SECONDS=N` runs every target N seconds (default 300) from its
# seed corpus (tests/fuzz/corpus/<target>; new inputs go to build-fuzz/, never
# into the repository); `make fuzz-smoke` is the 30-second run CI does.
FUZZ_BUILD := build-fuzz
FUZZ_TARGETS := config cli_args idx safetensors resume data_files
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_CFLAGS := -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined \
               -march=$(ARCH) -std=gnu11 -Wall -Wno-unknown-pragmas -Iinclude -Itests/fuzz
FUZZ_OBJS := $(patsubst src/%.c,$(FUZZ_BUILD)/obj/%.o,$(filter-out src/main.c src/backend_cuda.c,$(wildcard src/*.c)))
FUZZ_SECONDS ?= 300

$(FUZZ_BUILD)/obj/%.o: src/%.c Makefile
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h $(FUZZ_OBJS)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_OBJS) -o $@ -lcjson -lopenblas -lpng -lz -lm -lpthread

.PHONY: fuzz fuzz-smoke fuzz-build
.SECONDARY: $(FUZZ_OBJS)
fuzz-build:
	@CUVAE_EXTRA_DEBS="clang libclang-rt-14-dev" bash scripts/deps.sh
	@$(MAKE) --no-print-directory -j$(JOBS) $(FUZZ_BINS)

fuzz: fuzz-build
	@bash tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke: fuzz-build
	@bash tests/fuzz/run.sh 30 $(FUZZ_TARGETS)

# (sub-makes after deps, as for run and test: the oneDNN that deps installed is built in)
lectures: deps data
	@$(MAKE) --no-print-directory -j$(JOBS) all
	FULL=$(FULL) bash scripts/lectures.sh

# (PyTorch and numpy too, where no python3 imports torch and PYTHON names none: the peer whose step
# the ratios are against, Debian's CPU build; a machine that cannot install it benches without it)
bench: deps
	@if [ -z "$(PYTHON)" ] && ! python3 -c 'import torch' 2>/dev/null && ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then \
	    CUVAE_EXTRA_DEBS="python3-torch python3-numpy" bash scripts/deps.sh || \
	    echo "bench: python3-torch could not be installed: the PyTorch columns will be missing" >&2; fi
	@$(MAKE) --no-print-directory -j$(JOBS) all
	bash scripts/bench.sh

# tests without the install steps (for a machine already set up)
test-only:
	@$(MAKE) --no-print-directory -j$(JOBS) all emu
	@bash tests/run_tests.sh

clean:
	rm -rf build build-san build-emu build-emu-san build-fuzz

help:
	@echo "make run        install deps and data, build, train configs/mnist_vae.json (runs/mnist_vae)"
	@echo "make test       install deps and data, build, run the whole test suite"
	@echo "make test-only  the test suite on a machine already set up"
	@echo "make lectures   every lecture experiment and its page, runs/lectures/index.html (FULL=1: lecture length)"
	@echo "make bench      the CPU (or GPU) benchmarks against PyTorch, appended to bench/RESULTS.md"
	@echo "make deps | data | all | emu | fuzz | fuzz-smoke | clean"
	@echo "options: CUDA=0|1  MPI=0|1  NCCL=0|1  ONEDNN=0|1  ARCH=x86-64-v3 (x86-64 for older CPUs)  SANITIZE=1  CUDA_EMU=1"
	@echo "         JOBS=N (build jobs of run, test, bench, lectures, fuzz; default: one per core)"
