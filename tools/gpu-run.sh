#!/usr/bin/env bash
# Everything a GPU run does, in one command that stays inside 8 minutes on the lent GPU machine (one H200,
# 16 cores, no network, a Python torch with CUDA, nvcc, CMake, ninja):
#   1. host facts (GPU, driver, torch, nvcc, compiler, commit)
#   2. our Debian dependencies (.deps/debs, made here by tools/fetch-gpu-debs.sh) unpacked into a prefix
#   3. configure and build against the machine's own torch (torch.utils.cmake_prefix_path)
#   4. the random-weight 1.7B and 0.6B model folders (build/make_model, in the background during 5)
#   5. the whole ctest suite with ALEXANDRIA_TEST_DEVICE=cuda
#   6. benchmarks: training (passes/s, peak GPU memory; batch 1/4/8, r 32/64, clips 5/10/15 s), synthesis
#      (ms/frame, batched frames/s, time to first audio, as far as bench_synth offers them) and codec RTF
#   7. $OUT/gpu-run.json and $OUT/gpu-run.md (plus gpu-run.log, build.log, ctest.log)
# Each step has a time budget; a step that would start with too little time left is skipped and the report says
# so. Files come back from the device tool only from $OUT (at most 8), so only those five are written there.
#
#   here:  tools/fetch-gpu-debs.sh                       (once per change of dependencies or ../shared)
#   there: ALEXANDRIA_COMMIT=<hash> tools/gpu-run.sh     (device tool: carry [".deps"], timeout_s 540)
#   CI:    tools/gpu-run.sh --dry-run --build-dir build  (CPU, tiny presets: GPU steps printed, benchmark steps
#                                                         and report files exercised; registered as a ctest)
#
# Options: --dry-run  --out DIR (default $OUT, else ./gpu-out)  --build-dir DIR (default build-gpu; dry run:
#          build)  --budget SECONDS (default 470; dry run 170)  --jobs N (default nproc)
set -uo pipefail

command_line="tools/gpu-run.sh $*"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
mode=gpu
out="${OUT:-}"
build_dir=""
budget=""
jobs="$(nproc)"
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) mode=dry ;;
    --out) out="$2"; shift ;;
    --build-dir) build_dir="$2"; shift ;;
    --budget) budget="$2"; shift ;;
    --jobs) jobs="$2"; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-run: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  [ $# -gt 0 ] && shift
done
case "$budget" in
  "") budget=$([ $mode = dry ] && echo 170 || echo 470) ;;
  *[!0-9]*) echo "gpu-run: --budget '$budget' is not a whole number of seconds" >&2; exit 2 ;;
esac
[ -n "$out" ] || out="$root/gpu-out"
[ -n "$build_dir" ] || build_dir=$([ $mode = dry ] && echo build || echo build-gpu)
case "$build_dir" in /*) ;; *) build_dir="$root/$build_dir" ;; esac
case "$out" in /*) ;; *) out="$root/$out" ;; esac
mkdir -p "$out" || { echo "gpu-run: cannot create $out" >&2; exit 2; }

# The scratch folder stays out of $OUT: the device tool brings back at most 8 files from there.
if [ $mode = dry ]; then
  work="$(mktemp -d "${TMPDIR:-/tmp}/gpu-run-dry.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
else
  work="$build_dir-work"
  rm -rf "$work"
  mkdir -p "$work"
fi
deps="$root/.deps"
prefix="$work/prefix"
t0=$SECONDS
reserve=8  # seconds kept for the report
export mode work out build_dir deps prefix jobs root

# step NAME BUDGET MIN FUNCTION [ARGS...]: runs FUNCTION under a time limit of min(BUDGET, time left) and records
# the outcome in $work/steps.tsv (name, status, seconds, limit, note). Skipped when less than MIN seconds are left.
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" >>"$work/steps.tsv"; }
step() {
  local name="$1" want="$2" min="$3" fn="$4"
  shift 4
  local left=$((budget - (SECONDS - t0) - reserve))
  if [ "$left" -lt "$min" ]; then
    echo "== $name: skipped, time budget spent (${left}s left, needs ${min}s)"
    record "$name" skipped 0 "$want" "time budget spent: ${left}s left of ${budget}s, step needs ${min}s"
    return 3
  fi
  local lim=$((want < left ? want : left)) s=$SECONDS rc
  echo "== $name (limit ${lim}s, $((SECONDS - t0))s into the run)"
  STEP_LIMIT=$lim timeout --kill-after=5 "$lim" bash -c "$fn \"\$@\"" _ "$@"
  rc=$?
  local took=$((SECONDS - s)) status=ok note=""
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    status=timeout; note="stopped at its ${lim}s limit"
  elif [ $rc -eq 10 ]; then
    status=printed; note="dry run: printed, not run"
  elif [ $rc -ne 0 ]; then
    status=failed; note="exit code $rc"
  fi
  echo "== $name: $status (${took}s)"
  record "$name" "$status" "$took" "$lim" "$note"
  return $rc
}

# In a dry run a GPU step prints its commands and returns 10.
show() {
  printf '  would run:'
  printf ' %q' "$@"
  printf '\n'
}
export -f show

bin() { echo "$build_dir/$1"; }
export -f bin

# ---------------------------------------------------------------------------------------------------------------
host_info() {
  {
    echo "mode=$mode"
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit=${ALEXANDRIA_COMMIT:-$(git -C "$root" rev-parse HEAD 2>/dev/null || cat "$deps/commit" 2>/dev/null || echo unknown)}"
    echo "cores=$(nproc)"
    echo "compiler=$(c++ --version 2>/dev/null | head -1)"
    echo "cmake=$(cmake --version 2>/dev/null | head -1)"
    if command -v nvidia-smi >/dev/null; then
      echo "gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)"
    fi
    command -v nvcc >/dev/null && echo "nvcc=$(nvcc --version | grep -o 'release [0-9.]*' | head -1)"
    if [ "$mode" = gpu ]; then
      python3 -c 'import torch; print("torch=" + torch.__version__); print("torch_cuda=" + str(torch.version.cuda)); print("torch_cmake=" + torch.utils.cmake_prefix_path); print("cuda_available=" + str(torch.cuda.is_available()))'
    elif [ -f "$build_dir/CMakeCache.txt" ]; then
      echo "torch_cmake=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null || echo '<python3 torch>')"
      echo "libtorch=$(sed -n 's/^ALEXANDRIA_LIBTORCH:[A-Z]*=//p' "$build_dir/CMakeCache.txt")"
    fi
  } | tee "$work/host.txt"
}
export -f host_info

# Debian packages are unpacked, not installed: the GPU machine is not a Debian 12 system. .pc files name /usr;
# they are rewritten to the prefix.
unpack_deps() {
  if [ ! -f "$deps/debs/MANIFEST" ]; then
    if [ "$mode" = dry ]; then
      show dpkg-deb -x "$deps/debs/*.deb" "$prefix"
      echo "  (no $deps/debs here: tools/fetch-gpu-debs.sh makes it)"
      return 10
    fi
    echo "gpu-run: $deps/debs/MANIFEST missing: run tools/fetch-gpu-debs.sh before the GPU run and carry .deps" >&2
    return 1
  fi
  rm -rf "$prefix"
  mkdir -p "$prefix"
  local f n=0
  for f in "$deps"/debs/*.deb; do
    if command -v dpkg-deb >/dev/null; then
      dpkg-deb -x "$f" "$prefix" || return 1
    else  # a .deb is an ar archive holding data.tar.{xz,zst,gz}
      local member z
      member=$(ar t "$f" | grep '^data\.tar') || return 1
      case "$member" in *.xz) z=--xz ;; *.zst) z=--zstd ;; *.gz) z=--gzip ;; *) z="" ;; esac
      ar p "$f" "$member" | tar -x $z -C "$prefix" -f - || return 1
    fi
    n=$((n + 1))
  done
  local pc
  for pc in $(find "$prefix" -name '*.pc'); do
    sed -i -e "s#=/usr\\b#=$prefix/usr#g" -e "s#-I/usr/#-I$prefix/usr/#g" -e "s#-L/usr/#-L$prefix/usr/#g" "$pc"
  done
  local want
  want=$(wc -l <"$deps/debs/MANIFEST")
  [ "$n" -eq "$want" ] || { echo "gpu-run: unpacked $n of the $want packages in MANIFEST" >&2; return 1; }
  # The prefix alone must satisfy every pkg-config module the build asks for.
  local pkgconf="$prefix/usr/bin/pkgconf"
  LD_LIBRARY_PATH="$prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    PKG_CONFIG_LIBDIR="$prefix/usr/lib/x86_64-linux-gnu/pkgconfig:$prefix/usr/share/pkgconfig" \
    "$pkgconf" --cflags --libs sndfile soxr libpcre2-8 || return 1
  echo "unpacked $n packages into $prefix"
}
export -f unpack_deps

# The environment every later step uses (set in this shell after unpack_deps). LD_LIBRARY_PATH stays as it is:
# Debian 12's libraries must not replace the machine's own for its programs (grep, python3, ...); ours find
# them through the RPATH configure gives them.
use_prefix() {
  local lib="$prefix/usr/lib/x86_64-linux-gnu"
  [ -d "$lib" ] || return 0
  export PKG_CONFIG_PATH="$lib/pkgconfig:$prefix/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  if ! command -v pkg-config >/dev/null; then
    mkdir -p "$work/bin"
    printf '#!/bin/sh\nLD_LIBRARY_PATH=%q exec %q "$@"\n' "$lib" "$prefix/usr/bin/pkgconf" >"$work/bin/pkg-config"
    chmod +x "$work/bin/pkg-config"
    export PKG_CONFIG="$work/bin/pkg-config"
  fi
  # The tests read ${CMAKE_SOURCE_DIR}/../shared, which does not travel to the GPU machine; .deps/shared does.
  if [ "$mode" = gpu ] && [ ! -e "$root/../shared" ] && [ -d "$deps/shared" ]; then
    ln -s "$deps/shared" "$root/../shared" && echo "linked $root/../shared -> $deps/shared"
  fi
}

configure() {
  local torch_cmake gen=()
  torch_cmake=$(sed -n 's/^torch_cmake=//p' "$work/host.txt")
  command -v ninja >/dev/null && gen=(-G Ninja)
  # ALEXANDRIA_LIBTORCH=system: find_package(Torch) in the machine's own torch (cmake/Libtorch.cmake).
  local args=(cmake -S "$root" -B "$build_dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release
    -DALEXANDRIA_LIBTORCH=system -DALEXANDRIA_CUDA=ON
    # torch's root first: TorchConfig's find_library() would otherwise take any libtorch in the system folders.
    "-DTorch_DIR=$torch_cmake/Torch" "-DCMAKE_PREFIX_PATH=${torch_cmake%/share/cmake};$torch_cmake;$prefix/usr"
    # DT_RPATH (not RUNPATH) so that libsndfile's own dependencies (libFLAC, ...) load from the prefix too.
    "-DCMAKE_BUILD_RPATH=$prefix/usr/lib/x86_64-linux-gnu"
    "-DCMAKE_EXE_LINKER_FLAGS=-Wl,-rpath-link,$prefix/usr/lib/x86_64-linux-gnu -Wl,--disable-new-dtags"
    "-DCMAKE_SHARED_LINKER_FLAGS=-Wl,-rpath-link,$prefix/usr/lib/x86_64-linux-gnu -Wl,--disable-new-dtags")
  [ -n "${PKG_CONFIG:-}" ] && args+=("-DPKG_CONFIG_EXECUTABLE=$PKG_CONFIG")
  [ -d /usr/local/cuda ] && args+=(-DCUDAToolkit_ROOT=/usr/local/cuda)
  if [ "$mode" = dry ]; then
    show env TORCH_CUDA_ARCH_LIST=9.0 "${args[@]}"
    return 10
  fi
  [ -n "$torch_cmake" ] || { echo "gpu-run: python3 found no torch (torch.utils.cmake_prefix_path)" >&2; return 1; }
  # 9.0 (Hopper): torch's CMake files otherwise probe the GPU for an architecture list nothing here compiles.
  TORCH_CUDA_ARCH_LIST=9.0 "${args[@]}"
}
export -f configure

build() {
  if [ "$mode" = dry ]; then
    show cmake --build "$build_dir" -j"$jobs"
    return 10
  fi
  local rc
  cmake --build "$build_dir" -j"$jobs" >"$out/build.log" 2>&1
  rc=$?
  grep -Ev '^\[[0-9]+/[0-9]+\] ' "$out/build.log" | tail -n 60
  return $rc
}
export -f build

# The model folders synthesis needs, written in the background while the tests run (CPU and disk work).
start_models() {
  local tok=() presets
  [ -d "$deps/shared/reference/text-tokenizer" ] && tok=(--tokenizer "$deps/shared/reference/text-tokenizer")
  [ -d "$root/../shared/reference/text-tokenizer" ] && tok=(--tokenizer "$root/../shared/reference/text-tokenizer")
  [ "$mode" = dry ] && presets="tiny" || presets="1.7b 0.6b"
  for p in $presets; do
    local extra=()
    [ "$p" = tiny ] && extra=(--dtype f32) || extra=("${tok[@]}")
    nice -n 5 "$(bin make_model)" --preset "$p" --out "$work/model-$p" "${extra[@]}" >"$work/make_model-$p.log" 2>&1 &
    echo $! >"$work/make_model-$p.pid"
  done
}

wait_model() {  # wait_model PRESET: the folder exists once its writer has exited 0
  local p="$1" pid
  pid=$(cat "$work/make_model-$p.pid" 2>/dev/null) || { echo "gpu-run: no model writer for $p" >&2; return 1; }
  while kill -0 "$pid" 2>/dev/null; do sleep 0.5; done
  grep -q "make_model: wrote" "$work/make_model-$p.log" || { cat "$work/make_model-$p.log" >&2; return 1; }
  cat "$work/make_model-$p.log"
}
export -f wait_model

run_ctest() {
  local args=(ctest --test-dir "$build_dir" -j8 --timeout 100 -E '^gpu_run_dry$' --output-on-failure
    --output-junit "$work/ctest.xml")
  if [ "$mode" = dry ]; then
    show env ALEXANDRIA_TEST_DEVICE=cuda "${args[@]}"
    return 10
  fi
  set -o pipefail
  ALEXANDRIA_TEST_DEVICE=cuda "${args[@]}" 2>&1 | tee "$out/ctest.log" | tail -n 40
}
export -f run_ctest

# Benchmarks. The dry run uses the tiny preset and the smallest settings that still exercise every code path.
# bench_train stops starting cases before the step's limit, so the cases it ran are kept and the rest listed. On the
# GPU the target cases (x-vector, batch 1, 15 s clips, r 64 and 32: passes/s and the 24 GB bound) run first, on
# their own, so the full matrix (both prompt modes) can only cut into what comes after them.
bench_train_step() {  # PRESET
  local p="$1" exe
  exe="$(bin bench_train)"
  if [ "$mode" = dry ]; then
    "$exe" --preset "$p" --device cpu --threads 2 --rank 4,8 --batch 1,2 --clip-seconds 1 \
      --passes 1 --warmup 0 --max-seconds $((STEP_LIMIT > 10 ? STEP_LIMIT - 5 : 5)) --json "$work/train-$p.json" >/dev/null
  else
    "$exe" --preset "$p" --device cuda --prompt xvector --rank 64,32 --batch 1 --clip-seconds 15 \
      --passes 5 --warmup 2 --json "$work/train-$p-targets.json" >/dev/null || return 1
    local left=$((STEP_LIMIT - SECONDS - 15))
    [ $left -gt 5 ] || { echo "no time left for the full matrix"; return 0; }
    "$exe" --preset "$p" --device cuda --rank 32,64 --batch 1,4,8 --clip-seconds 5,10,15 \
      --passes 3 --warmup 1 --max-seconds "$left" --json "$work/train-$p.json" >/dev/null
  fi
}
export -f bench_train_step

# bench_synth is extended by its owner: use the flags its --help offers (--batch, --json), and keep its text
# output (tee'd, so a run stopped at its limit still leaves the lines it printed) for the report to parse.
bench_synth_step() {  # PRESET
  set -o pipefail
  local p="$1" exe help args
  exe="$(bin bench_synth)"
  help=$("$exe" --help 2>&1)
  wait_model "$p" >/dev/null || return 1
  args=(--model "$work/model-$p")
  if [ "$mode" = dry ]; then
    args+=(--device cpu --threads 2 --frames 8 --runs 1)
  else
    args+=(--device cuda --frames 100 --runs 2)
  fi
  if grep -q -- '--batch' <<<"$help"; then
    if [ "$mode" = dry ]; then args+=(--batch 2); else args+=(--batch 8 32 64); fi
    grep -q -- '--lines-per-slot' <<<"$help" && args+=(--lines-per-slot 1)
  else
    echo "bench_synth has no --batch: batched figures not measured" | tee "$work/synth-$p-nobatch.txt"
  fi
  grep -q -- '--json' <<<"$help" && args+=(--json "$work/synth-$p.json")
  "$exe" "${args[@]}" 2>&1 | tee "$work/synth-$p.txt"
}
export -f bench_synth_step

bench_codec_step() {
  if [ "$mode" = dry ]; then
    "$(bin bench_codec)" --preset tiny --device cpu --threads 2 --seconds 1 --repeat 1 --json "$work/codec-fp32.json"
  else
    "$(bin bench_codec)" --preset full --device cuda --dtype fp32 --seconds 10 --repeat 3 \
      --json "$work/codec-fp32.json" &&
      "$(bin bench_codec)" --preset full --device cuda --dtype bf16 --seconds 10 --repeat 3 \
        --json "$work/codec-bf16.json"
  fi
}
export -f bench_codec_step

# ---------------------------------------------------------------------------------------------------------------
main() {
  echo "gpu-run: mode $mode, budget ${budget}s, build $build_dir, out $out"
  : >"$work/steps.tsv"
  local built=1
  step host 30 5 host_info
  if step prefix 30 10 unpack_deps || [ -d "$prefix/usr" ]; then use_prefix; fi
  if [ $mode = dry ]; then
    [ -x "$(bin bench_train)" ] && [ -x "$(bin make_model)" ] ||
      { echo "gpu-run: the dry run needs a built $build_dir (bench_*, make_model)" >&2; built=0; }
    step configure 90 20 configure
    step build 260 60 build
  else
    step configure 90 20 configure && step build 260 60 build || built=0
  fi
  if [ $built = 1 ]; then
    start_models
    step ctest 120 30 run_ctest
    # Most wanted first: the 1.7B figures are the targets; the codec and 0.6B fill what time is left.
    if [ $mode = dry ]; then
      # Limits far above the ~40 s this takes, for CI machines busy with other tests.
      step "train tiny" 60 10 bench_train_step tiny
      step "synth tiny" 60 10 bench_synth_step tiny
      step codec 40 5 bench_codec_step
    else
      step "train 1.7b" 110 30 bench_train_step 1.7b
      step "synth 1.7b" 90 30 bench_synth_step 1.7b
      step codec 40 15 bench_codec_step
      step "train 0.6b" 60 25 bench_train_step 0.6b
      step "synth 0.6b" 60 25 bench_synth_step 0.6b
    fi
    local pidf
    for pidf in "$work"/make_model-*.pid; do kill "$(cat "$pidf")" 2>/dev/null; done
  fi
  local report=(python3 "$root/tools/gpu-run-report.py" --work "$work" --out "$out" --mode "$mode"
    --budget "$budget" --elapsed $((SECONDS - t0)) --command "$command_line")
  [ $mode = dry ] && report+=(--check)
  "${report[@]}"
}

main 2>&1 | tee "$out/gpu-run.log"
rc=${PIPESTATUS[0]}
# Only the tail of a long log is worth the transfer (16 MiB a file at most).
for f in "$out"/*.log; do
  [ "$(stat -c %s "$f")" -gt 8000000 ] && { tail -c 8000000 "$f" >"$f.tmp" && mv "$f.tmp" "$f"; }
done
exit "$rc"
