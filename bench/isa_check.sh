#!/bin/bash
# Checks lowbit's native kernels on the machine it runs on, and how they scale with threads.
#
# Made for a borrowed many-core machine (for example one with AVX-512 VNNI, which the development
# VM lacks: there the AVX-512 paths only run under SIMDe emulation). It needs no Python and no
# network: static binaries built elsewhere are enough.
#
#   cmake -S native -B build/devstatic -G Ninja -DCMAKE_EXE_LINKER_FLAGS=-static
#   ninja -C build/devstatic lowbit-tests lowbit-run lowbit-kbench
#   bench/isa_check.sh [BINDIR] [THREADS]      # BINDIR default build/devstatic, THREADS default 1,4,16
#
# Optionally (LB_CHECK_PY=SRC, a source tree) it also builds the Python extension from SRC with the
# local python3 (numpy, pybind11, scikit-build-core, pytest, pytest-xdist must be installed) and runs
# tests/kernels and tests/runtime on the default (best) ISA path.
# Output: $OUT/log.txt (OUT defaults to build/isa-check) and $OUT/kbench.json.
set -u
B=${1:-build/devstatic}
T=${2:-1,4,16}
O=${OUT:-build/isa-check}
mkdir -p "$O"
exec > >(tee "$O/log.txt") 2>&1

section() { echo; echo "== $* ($(date -u +%T))"; }

section machine
lscpu | grep -E "^(Model name|CPU\(s\)|Thread|Core|Socket|L1d|L2|L3|NUMA node\(s\))" || true
grep -o -w -E "avx2|avx512f|avx512bw|avx512vl|avx512_vnni|avx512_vbmi|avx_vnni|amx_int8|avx512_bf16" /proc/cpuinfo |
  sort -u | tr '\n' ' '; echo
"$B/lowbit-run" --info || echo "lowbit-run --info failed"

section "selfcheck: every kernel against its scalar reference, every ISA path this CPU runs"
timeout 90 "$B/lowbit-run" --selfcheck | tail -n 8; echo "selfcheck exit ${PIPESTATUS[0]}"

for isa in scalar avx2 avx512vnni; do
  section "lowbit-tests, LOWBIT_ISA=$isa"
  LOWBIT_ISA=$isa timeout 60 "$B/lowbit-tests" > "$O/tests-$isa.txt" 2>&1
  rc=$?
  tail -n 3 "$O/tests-$isa.txt"; echo "lowbit-tests ($isa) exit $rc"
done

section "kernels, 4096x11008, threads $T"
timeout 200 "$B/lowbit-kbench" --shape 4096x11008 --m 1,128 --formats q4g32,q8,t2g128,c4g64 \
  --threads "$T" --rounds 5 --cold-mb 512 --json "$O/kbench.json"
echo "kbench exit $?"

if [ -n "${LB_CHECK_PY:-}" ]; then
  section "python extension from $LB_CHECK_PY"
  export CMAKE_BUILD_PARALLEL_LEVEL=$(nproc)
  if timeout 200 python3 -m pip install -q --no-build-isolation --no-deps --no-compile \
       --target /tmp/lb-site "$LB_CHECK_PY" > "$O/pip.txt" 2>&1; then
    section "pytest tests/kernels tests/runtime (default ISA)"
    (cd "$LB_CHECK_PY" && PYTHONPATH=/tmp/lb-site timeout 240 python3 -m pytest -q -x -n "$(nproc)" \
       -p no:cacheprovider tests/kernels tests/runtime 2>&1 | tail -n 25)
  else
    tail -n 30 "$O/pip.txt"
  fi
fi
section done
