# gpt - build rules.
#
#   make               library, the gpt command and the tests (CPU only)
#                      (plus the test variants: libgpt_test.a, gpt-test)
#   make run           build, then the default run: train the tiny model on
#                      Tiny Shakespeare and print a sample
#   make test          build and run the test suite
#   make NATIVE=1      compile everything for this machine's CPU (-march=native;
#                      not needed for speed: the CPU kernels dispatch at run time)
#   make CUDA=1        also the CUDA backend (sm_90 + PTX); needs nvcc; with
#                      NCCL when found (NCCL_HOME=..., NCCL=0 to leave out)
#   make MPI=0         without MPI (found by pkg-config or mpicc otherwise)
#   make VULKAN=0|1    without / with the Vulkan backend (default: with it when
#                      pkg-config finds vulkan and glslc is on the PATH)
#   make test-cuda     CUDA op tests against the CPU backend (GPU machine)
#   make SAN=1 test    the suite under AddressSanitizer + UBSan (build-san/)
#   make fuzz          libFuzzer targets (clang) in build-fuzz/
#   make CC=aarch64-linux-gnu-gcc   cross-compile for arm64 into build-aarch64/
#                      (no -march=native; OpenBLAS only if the target's is
#                      installed, else the built-in kernels); run the tests
#                      with bash tests/arm64.sh (qemu-user)
#   make install       bin/gpt, lib/libgpt.a, lib/libgpt.so (soname
#                      libgpt.so.MAJOR), include/gpt*.h, lib/pkgconfig/gpt.pc
#                      and gpt-static.pc, share/man/man1/gpt.1, under
#                      $(DESTDIR)$(PREFIX) (PREFIX=/usr/local); make uninstall
#
# Sources are found by folder: src/*.c and src/<part>/*.c (the library;
# src/dist/ picks its files by what was found),
# src/cuda/*.cu (CUDA backend), src/vulkan/*.c and src/vulkan/shaders/*.comp
# (Vulkan backend), tools/*.c (the gpt command), tests/test_*.c
# (one program each), bench/*.c (benchmarks), fuzz/*.c (fuzz targets).
#
# Test builds: the library's C files are compiled a second time with
# -DGPT_TEST_BUILD into $(BUILD)/test-obj/ and archived as libgpt_test.a,
# which the test programs and $(BUILD)/gpt-test (the gpt command on it,
# tests/run.sh exports it as GPT_TEST_BIN) link. Checks and hooks that only
# tests need live behind that macro (src/backend_check.c: backend.h's
# early-input rule); build/gpt and libgpt.a never contain them. The CUDA
# objects are shared: nothing in src/cuda/ looks at the macro.

CC      ?= cc
NVCC    ?= nvcc
CUDA    ?= 0
SAN     ?= 0
NATIVE  ?= 0
BLAS    ?= auto
VULKAN  ?= auto
GLSLC   ?= glslc
PYTHON  ?= python3

# Cross-compiling when the compiler's target is not this machine: then no
# -march=native (it would describe the build machine), a build folder of
# its own, and only the target's libraries (no MPI, Vulkan or libmicrohttpd
# unless MPI=1, VULKAN=1 or MHD=1 says so: pkg-config would find the build
# machine's).
TRIPLET     := $(shell $(CC) -dumpmachine 2>/dev/null)
TARGET_ARCH := $(firstword $(subst -, ,$(TRIPLET)))
CROSS       := $(if $(filter $(TARGET_ARCH),$(shell uname -m)),0,1)
ifeq ($(CROSS),1)
  NATIVE := 0
  MPI    ?= 0
  MHD    ?= 0
  ifeq ($(VULKAN),auto)
    VULKAN := 0
  endif
endif

BUILD   := build$(if $(filter 1,$(CROSS)),-$(TARGET_ARCH))
OPT     := -O3
ifeq ($(SAN),1)
  BUILD := build-san
  OPT   := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif
ifeq ($(CUDA),1)
  BUILD := $(BUILD)-cuda
endif

UNAME := $(shell uname -s)
CFLAGS  += -std=c11 -Wall -Wextra -Wshadow -Wno-unused-parameter $(OPT) -fno-math-errno -fopenmp-simd -Iinclude -D_DEFAULT_SOURCE

# OpenMP: the library does not use it (the CPU backend has its own pool,
# src/cpu/cpu_pool.c); benchmarks do, for their own measurements. GCC and
# LLVM clang have it; Apple's clang has it only through
# Homebrew's libomp (brew install libomp), which is used where installed.
# Without it the code builds single-threaded (src/omp_shim.h).
OMP ?= auto
ifeq ($(OMP),auto)
  ifeq ($(UNAME),Darwin)
    LIBOMP := $(firstword $(wildcard /opt/homebrew/opt/libomp /usr/local/opt/libomp))
    OMP := $(if $(LIBOMP),brew,0)
  else
    OMP := 1
  endif
endif
ifeq ($(OMP),1)
  CFLAGS += -fopenmp
else ifeq ($(OMP),brew)
  CFLAGS += -Xpreprocessor -fopenmp -I$(LIBOMP)/include
  LDLIBS += -L$(LIBOMP)/lib -lomp
else
  CFLAGS += -DGPT_NO_OPENMP -Wno-unknown-pragmas
endif

# The version is the one in include/gpt.h; the shared library's soname
# carries its major number.
version_part = $(shell sed -n 's/^\#define GPT_VERSION_$(1) \([0-9][0-9]*\).*/\1/p' include/gpt.h)
VERSION_MAJOR := $(call version_part,MAJOR)
VERSION       := $(VERSION_MAJOR).$(call version_part,MINOR).$(call version_part,PATCH)

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
# The library's objects go into libgpt.so too: position-independent, and
# calls between its own functions still bound at link time (no
# interposition), so -fPIC costs the static library nothing measurable.
PIC := -fPIC -fno-semantic-interposition
ifeq ($(NATIVE),1)
  CFLAGS += -march=native
endif
LDLIBS  += -lm -lpthread

# Matrix products: the CPU backend's own packed kernels (src/cpu/cpu_gemm*.c),
# chosen at run time for the CPU they run on, so the default build needs
# neither -march=native nor a BLAS that recognises the CPU (docs/CPU.md
# has the measurements behind this). BLAS=openblas links OpenBLAS's sgemm
# instead (for comparison); on macOS Accelerate stays the BLAS.
# Only the target's own pkg-config files count (a cross build must not pick
# up the build machine's OpenBLAS).
OPENBLAS_OMP := $(firstword $(wildcard /usr/lib/$(TRIPLET)/openblas-openmp/pkgconfig/openblas.pc))
ifeq ($(CROSS),1)
  OPENBLAS_PC := PKG_CONFIG_LIBDIR=$(if $(OPENBLAS_OMP),$(dir $(OPENBLAS_OMP)):)/usr/lib/$(TRIPLET)/pkgconfig pkg-config
else
  OPENBLAS_PC := $(if $(OPENBLAS_OMP),PKG_CONFIG_PATH=$(dir $(OPENBLAS_OMP)) ,)pkg-config
endif
ifeq ($(BLAS),auto)
  ifeq ($(UNAME),Darwin)
    BLAS := accelerate
  else
    BLAS := none
  endif
endif
ifeq ($(BLAS),openblas)
  OPENBLAS_LIBDIR := $(shell $(OPENBLAS_PC) --variable=libdir openblas)
  CFLAGS += -DGPT_HAVE_CBLAS $(shell $(OPENBLAS_PC) --cflags openblas)
  LDLIBS += $(shell $(OPENBLAS_PC) --libs openblas) -Wl,-rpath,$(OPENBLAS_LIBDIR)
else ifeq ($(BLAS),accelerate)
  CFLAGS += -DGPT_HAVE_CBLAS -DGPT_ACCELERATE -DACCELERATE_NEW_LAPACK
  LDLIBS += -framework Accelerate
endif

# gpt serve's HTTP library: libmicrohttpd from pkg-config, or unpacked with
# `dpkg -x libmicrohttpd-dev_*.deb .deps && dpkg -x libmicrohttpd12_*.deb .deps`
# into MHD_DIR (default .deps: machines without the package installed).
# Without it, gpt is built without the server and says so.
MHD_DIR ?= .deps
MHD     ?= auto
MHD_DEPS_H := $(wildcard $(MHD_DIR)/usr/include/microhttpd.h)
ifeq ($(MHD),0)
  # asked for (or a cross build): gpt without `gpt serve`
else ifneq ($(MHD_DEPS_H),)
  MHD_LIBDIR := $(abspath $(dir $(firstword $(wildcard $(MHD_DIR)/usr/lib/*/libmicrohttpd.so*))))
  CFLAGS += -DGPT_HAVE_MHD -I$(MHD_DIR)/usr/include
  LDLIBS += -L$(MHD_LIBDIR) -Wl,-rpath,$(MHD_LIBDIR) -lmicrohttpd
else ifeq ($(shell pkg-config --exists libmicrohttpd 2>/dev/null && echo yes),yes)
  CFLAGS += -DGPT_HAVE_MHD $(shell pkg-config --cflags libmicrohttpd)
  LDLIBS += $(shell pkg-config --libs libmicrohttpd)
else
  $(info libmicrohttpd not found: building gpt without `gpt serve` (apt-get install libmicrohttpd-dev))
endif

# MPI (data-parallel training on CPUs, and mpirun-launched jobs on GPUs):
# found through pkg-config (Open MPI's mpi-c, MPICH's mpich) or Open MPI's
# mpicc; MPI=0 builds without it. Only src/dist/comm_mpi.c sees mpi.h.
MPI     ?= auto
ifeq ($(MPI),auto)
  MPI_PC := $(firstword $(foreach p,mpi-c mpich,$(if $(shell pkg-config --exists $(p) 2>/dev/null && echo y),$(p))))
  ifneq ($(MPI_PC),)
    MPI := 1
    MPI_CFLAGS := $(shell pkg-config --cflags $(MPI_PC))
    MPI_LIBS   := $(shell pkg-config --libs $(MPI_PC))
  else ifneq ($(shell mpicc --showme:link 2>/dev/null),)
    MPI := 1
    MPI_CFLAGS := $(shell mpicc --showme:compile)
    MPI_LIBS   := $(shell mpicc --showme:link)
  else
    MPI := 0
  endif
endif
DIST_SRC := src/dist/dist.c
ifeq ($(MPI),1)
  CFLAGS   += -DGPT_HAVE_MPI
  LDLIBS   += $(MPI_LIBS)
  DIST_SRC += src/dist/comm_mpi.c
endif

LIB_SRC  := $(wildcard src/*.c) $(filter-out src/cuda/% src/dist/% src/vulkan/%,$(wildcard src/*/*.c)) $(DIST_SRC)
CU_SRC   := $(wildcard src/cuda/*.cu)
TOOL_SRC := $(wildcard tools/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
BENCH_SRC:= $(wildcard bench/*.c)

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(LIB_SRC:%.c=$(BUILD)/test-obj/%.o)
ifeq ($(CUDA),1)
  CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(shell command -v $(NVCC)))
  CFLAGS   += -DGPT_HAVE_CUDA
  NVFLAGS  ?= -O3 -std=c++17 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90 \
              -Iinclude -Isrc -Xcompiler -fPIC --expt-relaxed-constexpr -lineinfo
  LIB_OBJ  += $(CU_SRC:%.cu=$(BUILD)/%.o)
  TEST_OBJ += $(CU_SRC:%.cu=$(BUILD)/%.o)
  LDLIBS   += -L$(CUDA_HOME)/lib64 -L$(CUDA_HOME)/lib64/stubs -lcublasLt -lcublas -lcudart -lstdc++ -ldl -lrt
  # NCCL (data-parallel training on GPUs): NCCL_HOME, else the CUDA
  # toolkit's, else the nvidia-nccl Python package's (which ships only
  # libnccl.so.2); NCCL=0 builds without it.
  NCCL ?= auto
  nccl_lib = $(firstword $(wildcard $(foreach l,lib lib64 lib/x86_64-linux-gnu lib/aarch64-linux-gnu,$(1)/$(l)/libnccl.so $(1)/$(l)/libnccl.so.2)))
  ifeq ($(NCCL),auto)
    ifeq ($(origin NCCL_HOME),undefined)
      NCCL_HOME := $(firstword $(foreach d,$(CUDA_HOME) /usr $(shell python3 -c 'import nvidia.nccl as n; print(n.__path__[0])' 2>/dev/null),$(if $(and $(wildcard $(d)/include/nccl.h),$(call nccl_lib,$(d))),$(d))))
    endif
    NCCL := $(if $(NCCL_HOME),1,0)
  endif
  ifeq ($(NCCL),1)
    NCCL_LIB := $(call nccl_lib,$(NCCL_HOME))
    ifeq ($(NCCL_LIB),)
      $(error NCCL_HOME=$(NCCL_HOME) has no lib/libnccl.so(.2))
    endif
    CFLAGS   += -DGPT_HAVE_NCCL
    LDLIBS   += $(NCCL_LIB) -Wl,-rpath,$(dir $(NCCL_LIB))
    LIB_OBJ  += $(BUILD)/src/dist/comm_nccl.o
    TEST_OBJ += $(BUILD)/test-obj/src/dist/comm_nccl.o
  endif
endif

# Vulkan: the host code against the loader (libvulkan), the shaders compiled
# to SPIR-V by glslc (twice: fp32 and fp16 PARAM/ACT) and embedded as C
# arrays in one generated file.
ifeq ($(VULKAN),auto)
  VULKAN := $(shell pkg-config --exists vulkan 2>/dev/null && command -v $(GLSLC) >/dev/null 2>&1 && echo 1 || echo 0)
endif
VK_DIR   := $(BUILD)/vk
ifeq ($(VULKAN),1)
  VK_CFLAGS := $(shell pkg-config --cflags vulkan 2>/dev/null)
  VK_LIBS   := $(shell pkg-config --libs vulkan 2>/dev/null || echo -lvulkan)
  CFLAGS   += -DGPT_HAVE_VULKAN $(VK_CFLAGS)
  LDLIBS   += $(VK_LIBS)
  VK_SRC   := $(wildcard src/vulkan/*.c)
  VK_NAMES := $(basename $(notdir $(wildcard src/vulkan/shaders/*.comp)))
  # the cooperative-matrix product exists only in half precision
  VK_INCS  := $(foreach n,$(VK_NAMES),$(if $(findstring _coop,$(n)),,$(VK_DIR)/$(n).f32.inc) $(VK_DIR)/$(n).f16.inc)
  # ... and, where Python runs, also rewritten from SPV_NV_cooperative_matrix
  # to SPV_KHR_cooperative_matrix (src/vulkan/spv_khr.py says why); without
  # Python the backend has only the NV path
  ifneq ($(shell command -v $(PYTHON) 2>/dev/null),)
    VK_INCS += $(patsubst %,$(VK_DIR)/%.khr.inc,$(filter %_coop,$(VK_NAMES)))
  endif
  LIB_OBJ  += $(VK_SRC:%.c=$(BUILD)/%.o) $(VK_DIR)/shaders.o
  TEST_OBJ += $(VK_SRC:%.c=$(BUILD)/test-obj/%.o) $(VK_DIR)/shaders.o
endif
GLSLC_FLAGS ?= --target-env=vulkan1.2 -O

LIB      := $(BUILD)/libgpt.a
GPT      := $(BUILD)/gpt
# The manual page is printed by the gpt just built: not in a cross build.
MAN      := $(if $(filter 1,$(CROSS)),,$(BUILD)/gpt.1)
# The shared library is built for Linux (ELF sonames); elsewhere make
# install leaves it out.
ifeq ($(UNAME),Linux)
  SONAME := libgpt.so.$(VERSION_MAJOR)
  SHLIB  := $(BUILD)/libgpt.so.$(VERSION)
endif
TEST_LIB := $(BUILD)/libgpt_test.a
GPT_TEST := $(BUILD)/gpt-test
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
ifeq ($(CUDA),1)
  TESTS  += $(patsubst tests/gpu/%.c,$(BUILD)/tests/gpu/%,$(wildcard tests/gpu/test_*.c))
endif
ifeq ($(VULKAN),1)
  TESTS  += $(patsubst tests/vulkan/%.c,$(BUILD)/tests/vulkan/%,$(wildcard tests/vulkan/test_*.c))
endif
ifeq ($(MPI),1) # run under mpirun by tests/test_dist_mpi.sh
  TESTS  += $(patsubst tests/dist/%.c,$(BUILD)/tests/dist/%,$(wildcard tests/dist/*.c))
endif
BENCHES  := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all run test test-cuda bench clean fuzz install uninstall shared print-shlib
all: $(LIB) $(SHLIB) $(GPT) $(MAN) $(TEST_LIB) $(GPT_TEST) $(TESTS) $(BENCHES)

# Include paths by layer (docs/ARCHITECTURE.md): the library sees src/;
# the command line sees include/ and tools/ only (its one window into the
# library's internals is src/tools_internal.h, named by path); tests and
# benchmarks are white-box.
HEADERS := $(wildcard include/*.h src/*.h src/*/*.h)
LIB_INC := -Isrc
TOOL_INC:= -Itools
TEST_INC:= -Isrc -Itools

# The arm64 int8 kernel for cores with the dot product is built for them
# (cpu_q8_arm.c runs it only where the CPU reports the feature).
ifneq ($(filter aarch64 arm64,$(TARGET_ARCH)),)
$(BUILD)/src/cpu/cpu_q8_neondot.o $(BUILD)/test-obj/src/cpu/cpu_q8_neondot.o: CFLAGS += -march=armv8.2-a+dotprod
endif

# Objects depend on the flags they were built with (VULKAN=0/1, OMP, ...):
# a change of either rebuilds everything.
FLAGS_STAMP := $(BUILD)/.flags
FLAGS_NOW   := $(CC) $(CFLAGS) $(LDLIBS) VULKAN=$(VULKAN)
$(shell mkdir -p $(BUILD) && (echo '$(FLAGS_NOW)' | cmp -s - $(FLAGS_STAMP) || echo '$(FLAGS_NOW)' > $(FLAGS_STAMP)))
HEADERS += $(FLAGS_STAMP)

$(BUILD)/src/%.o: src/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PIC) $(LIB_INC) -c $< -o $@

$(BUILD)/test-obj/src/%.o: src/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LIB_INC) -DGPT_TEST_BUILD -c $< -o $@

$(BUILD)/tools/%.o: tools/%.c $(HEADERS) $(wildcard tools/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TOOL_INC) -c $< -o $@

$(BUILD)/test-obj/tools/%.o: tools/%.c $(HEADERS) $(wildcard tools/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TOOL_INC) -DGPT_TEST_BUILD -c $< -o $@

$(BUILD)/src/dist/comm_mpi.o $(BUILD)/test-obj/src/dist/comm_mpi.o: CFLAGS += $(MPI_CFLAGS)
$(BUILD)/src/dist/comm_nccl.o $(BUILD)/test-obj/src/dist/comm_nccl.o: CFLAGS += -I$(CUDA_HOME)/include -I$(NCCL_HOME)/include

# Vulkan structs are initialised as {sType} and zero the rest on purpose.
$(BUILD)/src/vulkan/%.o $(BUILD)/test-obj/src/vulkan/%.o: CFLAGS += -Wno-missing-field-initializers

$(VK_DIR)/%.f32.inc: src/vulkan/shaders/%.comp src/vulkan/shaders/common.glsl
	@mkdir -p $(dir $@)
	$(GLSLC) $(GLSLC_FLAGS) -DF16=0 -mfmt=c $< -o $@

$(VK_DIR)/%.f16.inc: src/vulkan/shaders/%.comp src/vulkan/shaders/common.glsl
	@mkdir -p $(dir $@)
	$(GLSLC) $(GLSLC_FLAGS) -DF16=1 -mfmt=c $< -o $@

# The KHR cooperative-matrix modules: glslc compiles the NV form, spv_khr.py
# rewrites it (the .khr.spv stays for tests/test_vulkan_spirv_khr.sh, which
# runs spirv-val on it).
$(VK_DIR)/%.nv.spv: src/vulkan/shaders/%.comp src/vulkan/shaders/common.glsl
	@mkdir -p $(dir $@)
	$(GLSLC) $(GLSLC_FLAGS) -DF16=1 $< -o $@

.PRECIOUS: $(VK_DIR)/%.nv.spv
$(VK_DIR)/%.khr.inc: $(VK_DIR)/%.nv.spv src/vulkan/spv_khr.py
	$(PYTHON) src/vulkan/spv_khr.py $< $(VK_DIR)/$*.khr.spv $@

$(VK_DIR)/shaders.c: $(VK_INCS) src/vulkan/embed.sh
	sh src/vulkan/embed.sh $(VK_DIR) $(VK_NAMES) > $@

$(VK_DIR)/shaders.o: $(VK_DIR)/shaders.c src/vulkan/vk_internal.h
	$(CC) $(CFLAGS) $(LIB_INC) -Isrc/vulkan -c $< -o $@

$(BUILD)/%.o: %.cu $(wildcard include/*.h src/*.h src/cuda/*.cuh)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c $< -o $@

# The GPT-2 vocabulary files are assembled into this object (.incbin).
$(BUILD)/src/tokenizer/gpt2_data.o: data/gpt2/encoder.json data/gpt2/vocab.bpe

$(BUILD)/test-obj/src/tokenizer/gpt2_data.o: data/gpt2/encoder.json data/gpt2/vocab.bpe

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# libgpt.so exports the functions the public headers declare, nothing of
# the library's internals (the version script is made from include/*.h).
$(BUILD)/libgpt.map: $(wildcard include/*.h)
	@mkdir -p $(dir $@)
	{ echo '{ global:'; sed -n 's/^[a-z][^(]*[ *]\(gpt_[a-z0-9_]*\)(.*/    \1;/p' include/*.h | sort -u; \
	  echo '  local: *; };'; } > $@

$(SHLIB): $(LIB_OBJ) $(BUILD)/libgpt.map
	$(CC) $(CFLAGS) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=$(BUILD)/libgpt.map \
	    $(LIB_OBJ) -o $@ $(LDLIBS)
	ln -sf $(notdir $(SHLIB)) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $(BUILD)/libgpt.so

shared: $(SHLIB)
print-shlib:
	@echo $(SHLIB)

# The manual page, printed by gpt from the option tables of its commands.
$(MAN): $(GPT)
	$(GPT) --man > $@.tmp && mv $@.tmp $@

$(TEST_LIB): $(TEST_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(GPT): $(TOOL_SRC:%.c=$(BUILD)/%.o) $(LIB)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(GPT_TEST): $(TOOL_SRC:%.c=$(BUILD)/test-obj/%.o) $(TEST_LIB)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/vulkan/%: tests/vulkan/%.c $(wildcard tests/*.h) $(wildcard tests/gpu/*.h) $(TEST_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TEST_INC) -DGPT_TEST_BUILD $< $(TEST_LIB) -o $@ $(LDLIBS)

$(BUILD)/tests/gpu/%: tests/gpu/%.c $(wildcard tests/*.h) $(wildcard tests/gpu/*.h) $(TEST_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TEST_INC) -DGPT_TEST_BUILD $< $(TEST_LIB) -o $@ $(LDLIBS)

# Tests of the command line's own code link the objects they test.
CLI_OBJ := $(BUILD)/test-obj/tools/cli.o $(BUILD)/test-obj/tools/cli_help.o
$(BUILD)/tests/test_cli_parse: tests/test_cli_parse.c tests/test.h $(CLI_OBJ) $(TEST_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TEST_INC) -DGPT_TEST_BUILD $< $(CLI_OBJ) $(TEST_LIB) -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h) $(TEST_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TEST_INC) -DGPT_TEST_BUILD $< $(TEST_LIB) -o $@ $(LDLIBS)

# Benchmarks may use OpenMP for their own measurements (bench_decode's
# copy bandwidth); the library does not.
$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TEST_INC) $< $(LIB) -o $@ $(LDLIBS)

RUN_ARGS ?=
# make run builds with one job a core unless -j was given: the build is
# part of the default run's time (README).
RUN_JOBS := $(shell getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
run:
	@$(MAKE) --no-print-directory $(if $(filter -j%,$(MAKEFLAGS)),,-j$(RUN_JOBS)) $(GPT)
	$(GPT) train --data data/tinyshakespeare.txt --out runs/tiny $(RUN_ARGS)

test: all
	BUILD=$(BUILD) bash tests/run.sh

test-cuda:
	$(MAKE) CUDA=1 all
	BUILD=build-cuda bash tests/run.sh --cuda

fuzz:
	bash fuzz/run.sh --build

# pkg-config: gpt.pc links the shared library (its dependencies are in
# it); gpt-static.pc links libgpt.a and lists what it needs (OpenMP, BLAS,
# CUDA: the build's own link flags). A sanitizer build's library needs the
# sanitizer runtime in the program too.
PC_LIBDIR := $(if $(filter $(PREFIX)/lib,$(LIBDIR)),$${exec_prefix}/lib,$(LIBDIR))
PC_INCDIR := $(if $(filter $(PREFIX)/include,$(INCLUDEDIR)),$${prefix}/include,$(INCLUDEDIR))
comma     := ,
PC_SAN    := $(if $(filter 1,$(SAN)),-fsanitize=address$(comma)undefined,)
define pc_file
prefix=$(PREFIX)
exec_prefix=$${prefix}
libdir=$(PC_LIBDIR)
includedir=$(PC_INCDIR)

Name: $(1)
Description: GPT-2 style transformers in C: training, evaluation, generation$(if $(filter 1,$(CUDA)), (CUDA build),)
Version: $(VERSION)
Cflags: -I$${includedir}
Libs: $(2) $(PC_SAN)
Libs.private: $(3)
endef
PC_DEPS := $(if $(filter 1,$(OMP)),-fopenmp,) $(LDLIBS)
export PC_SHARED := $(call pc_file,gpt,-L$${libdir} -lgpt,$(PC_DEPS))
export PC_STATIC := $(call pc_file,gpt-static,$${libdir}/libgpt.a $(PC_DEPS),)

INSTALL ?= install
install: $(GPT) $(LIB) $(SHLIB) $(MAN)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) \
	    $(DESTDIR)$(MANDIR)/man1
	$(INSTALL) -m 755 $(GPT) $(DESTDIR)$(BINDIR)/gpt
	$(INSTALL) -m 644 $(LIB) $(DESTDIR)$(LIBDIR)/libgpt.a
	$(INSTALL) -m 644 include/gpt*.h $(DESTDIR)$(INCLUDEDIR)/
ifneq ($(MAN),)
	$(INSTALL) -m 644 $(MAN) $(DESTDIR)$(MANDIR)/man1/gpt.1
endif
	printf '%s\n' "$$PC_STATIC" > $(DESTDIR)$(LIBDIR)/pkgconfig/gpt-static.pc
ifneq ($(SHLIB),)
	$(INSTALL) -m 755 $(SHLIB) $(DESTDIR)$(LIBDIR)/
	ln -sf $(notdir $(SHLIB)) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libgpt.so
	printf '%s\n' "$$PC_SHARED" > $(DESTDIR)$(LIBDIR)/pkgconfig/gpt.pc
endif
	@echo "installed gpt $(VERSION) under $(DESTDIR)$(PREFIX)$(if $(SHLIB),; run ldconfig if $(LIBDIR) is a system folder,)"

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/gpt $(DESTDIR)$(LIBDIR)/libgpt.a $(DESTDIR)$(LIBDIR)/libgpt.so \
	    $(DESTDIR)$(LIBDIR)/libgpt.so.$(VERSION_MAJOR) $(DESTDIR)$(LIBDIR)/libgpt.so.$(VERSION) \
	    $(DESTDIR)$(LIBDIR)/pkgconfig/gpt.pc $(DESTDIR)$(LIBDIR)/pkgconfig/gpt-static.pc \
	    $(DESTDIR)$(MANDIR)/man1/gpt.1 $(addprefix $(DESTDIR)$(INCLUDEDIR)/,$(notdir $(wildcard include/gpt*.h)))

clean:
	rm -rf build build-san build-cuda build-san-cuda build-fuzz build-aarch64
