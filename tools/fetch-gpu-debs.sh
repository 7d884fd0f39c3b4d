#!/usr/bin/env bash
# Prepares, on a machine with Debian's package registry, what a GPU run (tools/gpu-run.sh) needs and the GPU
# machine cannot fetch (it has no network):
#   .deps/debs/    our non-torch Debian dependencies and their runtime libraries, as .deb files + MANIFEST
#   .deps/shared/  the parts of ../shared the tests read (reference configs, tokenizer, voices; seed; spec)
#   .deps/commit   the commit these were made for (the run's copy of the tree may have no .git)
# .deps/ is ignored by git; the device tool takes it along with `carry: [".deps"]`.
#
#   tools/fetch-gpu-debs.sh [--out .deps]
set -euo pipefail
cd "$(dirname "$0")/.."
out=.deps
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fetch-gpu-debs: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

# What the build needs besides torch (the list in tools/install-deps.sh, without libtorch and OpenBLAS), plus
# pkgconf: CMake's FindPkgConfig needs a pkg-config program and the GPU image may have none.
roots=(libsndfile1-dev libsoxr-dev libpcre2-dev libcli11-dev nlohmann-json3-dev libfmt-dev catch2 pkgconf)
# The C library, the compiler's runtime and what they pull in are on any machine with a C++ compiler, and must not
# be shadowed by Debian 12's older copies there.
base='^(libc6|libc6-dev|libc-dev-bin|linux-libc-dev|libgcc-s1|libstdc\+\+6|libgomp1|gcc-[0-9]+-base|libcrypt1|libcrypt-dev|libnsl2|libnsl-dev|libtirpc.*|rpcsvc-proto|libssl3|libcom-err2|libgssapi-krb5-2|libk5crypto3|libkeyutils1|libkrb5-3|libkrb5support0|zlib1g)$'

mapfile -t closure < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
  --no-replaces --no-enhances "${roots[@]}" | grep -v '^[ <]' | sort -u | grep -Ev "$base")
if [ ${#closure[@]} -lt ${#roots[@]} ]; then
  echo "fetch-gpu-debs: apt-cache knows too few packages (${#closure[@]}); run 'apt-get update' first" >&2
  exit 1
fi

debs="$out/debs"
rm -rf "$debs.new"
mkdir -p "$debs.new"
# apt drops privileges to _apt for downloads; a folder it can write avoids the 'unsandboxed' warning.
chmod 777 "$debs.new" 2>/dev/null || true
(cd "$debs.new" && apt-get download -q "${closure[@]}" >/dev/null)
for f in "$debs.new"/*.deb; do dpkg-deb -W --showformat='${Package} ${Version}\n' "$f"; done | sort >"$debs.new/MANIFEST"
n=$(wc -l <"$debs.new/MANIFEST")
if [ "$n" -ne ${#closure[@]} ]; then
  echo "fetch-gpu-debs: asked for ${#closure[@]} packages, got $n .deb files" >&2
  exit 1
fi
rm -rf "$debs"
mv "$debs.new" "$debs"

shared_src=../shared
if [ -d "$shared_src/reference" ]; then
  rm -rf "$out/shared"
  mkdir -p "$out/shared"
  for d in reference seed spec; do
    [ -d "$shared_src/$d" ] && cp -r "$shared_src/$d" "$out/shared/"
  done
else
  echo "fetch-gpu-debs: no $shared_src/reference here; tests that read it will fail on the GPU machine" >&2
fi
git rev-parse HEAD >"$out/commit" 2>/dev/null || echo unknown >"$out/commit"
git diff --quiet HEAD -- 2>/dev/null || echo "fetch-gpu-debs: note: the work tree has uncommitted changes" >&2

echo "fetch-gpu-debs: $n packages ($(du -sh "$debs" | cut -f1)) in $debs, shared data $(du -sh "$out/shared" 2>/dev/null | cut -f1) in $out/shared"
echo "fetch-gpu-debs: device run: carry [\"$out\"], command: ALEXANDRIA_COMMIT=$(cat "$out/commit") tools/gpu-run.sh"
