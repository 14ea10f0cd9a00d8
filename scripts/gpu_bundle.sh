#!/usr/bin/env bash
# gpu_bundle.sh: packs what the GPU machine needs to run binaries built HERE.
#
# The GPU machine (reached through the device tool) has the CUDA toolkit, its
# driver and PyTorch, but not the Debian runtime libraries cuvae links against
# (cJSON, OpenBLAS with libgfortran/libquadmath, libpng, zlib), and it cannot
# install packages. This script collects every shared library that `ldd`
# reports for build/cuvae and build/tests/*, except glibc, the compiler
# runtime (libgcc_s, libstdc++) and the CUDA libraries (libcudart, libcublas,
# libcublasLt, libcurand: those come from the toolkit there), into
# .device/lib.tar.xz (xz: OpenBLAS alone is 36 MB raw, about 4 MB packed; the
# device tool carries at most 64 MiB per call). .device/ is git-ignored.
#
# Usage, here:
#   make && bash scripts/gpu_bundle.sh
# then call the device tool's run with
#   command: bash scripts/gpu_run.sh
#   carry:   [".device", "build/cuvae", "data/mnist"]
# (the binaries only: nothing is built there; scripts/gpu_run.sh unpacks the
# libraries and the test binaries, .device/tests.tar.xz, there and runs the tests.)
# It fails when the tracked files and the carry list exceed the tool's 64 MiB.
#
# The binaries look for the CUDA libraries through their rpath
# ($(CUDA_HOME)/lib64 here, CUDA 13: libcublas.so.13, libcurand.so.10,
# libcudart.so.13); gpu_run.sh also searches the toolkit and PyTorch's
# nvidia-* wheels there. Should the GPU machine lack CUDA 13, set
# CUVAE_BUNDLE_CUDA_LIBS=1 to pack this machine's CUDA libraries too; the script
# refuses when the packed bundle would exceed CUVAE_BUNDLE_MAX_MB (default 40):
# libcublasLt.so.13 alone is about 540 MB, so in practice this does not fit.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
DEST=.device
MAX_MB=${CUVAE_BUNDLE_MAX_MB:-40}

binaries=()
[ -x "$BUILD/cuvae" ] && binaries+=("$BUILD/cuvae")
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] && [ -f "$t" ] && binaries+=("$t")
done
if [ ${#binaries[@]} -eq 0 ]; then
    echo "gpu_bundle: error: no binaries in $BUILD/ (run make first)" >&2
    exit 1
fi

# libraries the GPU machine provides itself
is_provided_there() {
    case "$1" in
        linux-vdso.so*|ld-linux*|libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*) return 0 ;;
        libresolv.so*|libutil.so*|libmvec.so*|libgcc_s.so*|libstdc++.so*) return 0 ;;
        libcuda.so*|libcudart.so*|libcublas.so*|libcublasLt.so*|libcurand.so*) return 0 ;;
        libnccl.so*) return 0 ;;   # (218 MB: the toolkit or PyTorch's nvidia-nccl wheel there has it)
    esac
    return 1
}
is_cuda_lib() {
    case "$1" in
        libcudart.so*|libcublas.so*|libcublasLt.so*|libcurand.so*) return 0 ;;
    esac
    return 1
}

rm -rf "$DEST"
mkdir -p "$DEST/lib"

# name => path pairs from ldd, once each
declare -A seen=()
for bin in "${binaries[@]}"; do
    while read -r name arrow path _; do
        [ "$arrow" = "=>" ] || continue
        [ -n "${seen[$name]:-}" ] && continue
        seen[$name]=1
        if [ "$path" = "not" ]; then
            echo "gpu_bundle: error: $bin needs $name, which is not found here" >&2
            exit 1
        fi
        if is_provided_there "$name"; then
            if [ "${CUVAE_BUNDLE_CUDA_LIBS:-0}" = "1" ] && is_cuda_lib "$name"; then
                cp -L "$path" "$DEST/lib/$name"
            fi
            continue
        fi
        cp -L "$path" "$DEST/lib/$name"
    done < <(ldd "$bin")
done

echo "gpu_bundle: libraries (unpacked sizes):"
(cd "$DEST/lib" && ls -laL | awk 'NR > 1 && $NF != "." && $NF != ".." {printf "  %8.1f MB  %s\n", $5 / 1e6, $NF}')

# newest glibc symbol version the bundle needs (the GPU machine's glibc must be at least this)
need_glibc=$( (for f in "${binaries[@]}" "$DEST"/lib/*; do objdump -T "$f" 2>/dev/null; done) \
              | grep -o 'GLIBC_[0-9][0-9.]*' | sort -t. -k1,1 -k2,2n -k3,3n -u | tail -1 || true)
echo "gpu_bundle: needs ${need_glibc:-GLIBC (unknown)} or newer on the GPU machine"

tar -C "$DEST" -cJf "$DEST/lib.tar.xz" lib
rm -rf "$DEST/lib"

# the test binaries without their debug sections (36 MB with them: with the libraries, build/cuvae
# and data/mnist over the carry limit), packed; gpu_run.sh unpacks them into build/tests there
mkdir -p "$DEST/tests"
for t in "${binaries[@]}"; do
    case "$t" in "$BUILD"/tests/*) objcopy --strip-debug "$t" "$DEST/tests/$(basename "$t")" ;; esac
done
tar -C "$DEST" -cJf "$DEST/tests.tar.xz" tests
rm -rf "$DEST/tests"
echo "gpu_bundle: $DEST/tests.tar.xz: $(du -m "$DEST/tests.tar.xz" | cut -f1) MB ($(ls "$BUILD"/tests/test_* | grep -vc '\.d$') test binaries, debug sections stripped)"
packed_mb=$(du -m "$DEST/lib.tar.xz" | cut -f1)
echo "gpu_bundle: $DEST/lib.tar.xz: ${packed_mb} MB"
if [ "$packed_mb" -gt "$MAX_MB" ]; then
    echo "gpu_bundle: error: the bundle is ${packed_mb} MB, over ${MAX_MB} MB (the device tool carries 64 MiB in all)" >&2
    exit 1
fi

# what the device tool carries: the tracked files (the working tree it copies) and the carry list
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    total_kb=$(git ls-files -z | du -ck --files0-from=- 2>/dev/null | tail -1 | cut -f1 || true)
    total_kb=${total_kb:-0}
    echo "gpu_bundle: tracked files: $((total_kb / 1024)) MB"
else
    total_kb=0
    echo "gpu_bundle: not a git checkout: the tracked files are not counted below"
fi
for p in "$DEST" "$BUILD/cuvae" data/mnist; do
    [ -e "$p" ] || continue
    kb=$(du -sk "$p" | cut -f1)
    total_kb=$((total_kb + kb))
    echo "gpu_bundle: carry $p: $((kb / 1024)) MB"
done
echo "gpu_bundle: in all $((total_kb / 1024)) MB of the device tool's 64 MiB; carry [\"$DEST\", \"$BUILD/cuvae\", \"data/mnist\"]"
if [ "$total_kb" -gt $((64 * 1024)) ]; then
    echo "gpu_bundle: error: $((total_kb / 1024)) MB is over the device tool's 64 MiB" >&2
    exit 1
fi
