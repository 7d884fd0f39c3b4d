#!/usr/bin/env bash
# PyPI's CUDA libtorch (libtorch_cuda.so) NEEDs cuFile, cuSPARSELt and NVSHMEM, which come from nvidia-* wheels and
# are not part of the CUDA toolkit. On a machine without a GPU nothing CUDA is ever called, so to load such a
# libtorch (the parity venv's torch, or tools/build-cuda.sh's test run) this writes one stub shared library per
# library the loader cannot find, defining each symbol libtorch imports from it (with its symbol version) as a
# function that aborts.
#
#   tools/cuda-stubs.sh TORCH_LIB_DIR OUT_DIR
# OUT_DIR must then be on the loader's path (an RPATH of libtorch, or LD_LIBRARY_PATH).
set -euo pipefail
libdir="$(cd "$1" && pwd)"
mkdir -p "$2"
out="$(cd "$2" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$libdir"
prefix_of() {  # the symbol prefix each optional CUDA library exports
  case "$1" in
    libcufile.so.*) echo 'cuFile' ;;
    libcusparseLt.so.*) echo 'cusparseLt' ;;
    libnvshmem_host.so.*) echo 'nvshmem' ;;
    *) echo '' ;;
  esac
}
for round in 1 2 3; do
  missing=$(for l in *.so*; do LD_LIBRARY_PATH="$out${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ldd "$l" 2>/dev/null \
              | awk '/not found/{print $1}'; done | sort -u | grep -v '^libcuda\.so\.1$' || true)
  [[ -z "$missing" ]] && break
  for lib in $missing; do
    p="$(prefix_of "$lib")"
    if [[ -z "$p" ]]; then echo "cuda-stubs: no symbol prefix known for $lib" >&2; exit 1; fi
    nm -D --undefined-only ./*.so* 2>/dev/null | awk '{print $NF}' | { grep "^$p" || true; } | sort -u > "$tmp/syms"
    : > "$tmp/stub.c"; : > "$tmp/vers"
    echo '#include <stdlib.h>' >> "$tmp/stub.c"
    declare -A nodes=()
    while read -r s; do
      name="${s%%@*}"
      echo "void $name(void) { abort(); }" >> "$tmp/stub.c"
      if [[ "$s" == *@* ]]; then nodes["${s##*@}"]+="$name; "; else nodes["__none__"]+="$name; "; fi
    done < "$tmp/syms"
    for n in "${!nodes[@]}"; do
      [[ "$n" == "__none__" ]] && continue
      echo "$n { global: ${nodes[$n]} };" >> "$tmp/vers"
    done
    flags=()
    [[ -s "$tmp/vers" ]] && flags=(-Wl,--version-script="$tmp/vers")
    gcc -shared -fPIC -o "$out/$lib" -Wl,-soname,"$lib" "${flags[@]}" "$tmp/stub.c"
    unset nodes
    echo "cuda-stubs: stub $lib ($(wc -l < "$tmp/syms") symbols)" >&2
  done
done
