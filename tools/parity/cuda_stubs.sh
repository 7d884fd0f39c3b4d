#!/usr/bin/env bash
# PyPI's Linux torch wheel is a CUDA build: importing it loads libtorch_cuda.so, whose NEEDED libraries come from
# the nvidia-*/cuda-* wheels. The parity harness runs on the CPU only, so instead of those packages (GBs) this
# writes one stub shared library per library the loader cannot find, defining each symbol torch imports from it
# (with its symbol version) as a function that aborts. Nothing CUDA is ever called on the CPU, so no stub runs.
#
#   tools/parity/cuda_stubs.sh SITE_PACKAGES
# The stubs go to SITE_PACKAGES/nvidia/cu13/lib, a folder on torch's RPATH.
set -euo pipefail
sp="$1"
out="$sp/nvidia/cu13/lib"
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$sp/torch/lib"
prefix_of() {  # the symbol prefix each optional CUDA library exports
  case "$1" in
    libcufile.so.*) echo 'cuFile' ;;
    libcusparseLt.so.*) echo 'cusparseLt' ;;
    libnvshmem_host.so.*) echo 'nvshmem' ;;
    *) echo '' ;;
  esac
}
for round in 1 2 3; do
  missing=$(for l in *.so*; do ldd "$l" 2>/dev/null | awk '/not found/{print $1}'; done | sort -u | grep -v '^libcuda\.so\.1$' || true)
  [[ -z "$missing" ]] && break
  for lib in $missing; do
    p="$(prefix_of "$lib")"
    if [[ -z "$p" ]]; then echo "cuda_stubs.sh: no symbol prefix known for $lib" >&2; exit 1; fi
    nm -D --undefined-only ./*.so* 2>/dev/null | awk '{print $NF}' | grep "^$p" | sort -u > "$tmp/syms"
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
    echo "cuda_stubs.sh: stub $lib ($(wc -l < "$tmp/syms") symbols)" >&2
  done
done
