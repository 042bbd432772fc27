#!/usr/bin/env bash
# Installs the Debian packages that the test suite uses, when they are missing:
#   g++-aarch64-linux-gnu + qemu-user  (ARM cross build, run under qemu-aarch64 -cpu max)
#   pocl-opencl-icd + ocl-icd-opencl-dev (OpenCL on the CPU, for TVM's mobile-GPU kernels)
#   chromium (headless: renders the profiler HTML report in a test)
# Needs root (or sudo) only when something is missing.
set -euo pipefail

need=()
command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 || need+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null 2>&1 || need+=(qemu-user)
[ -e /etc/OpenCL/vendors/pocl.icd ] || need+=(pocl-opencl-icd)
[ -e /usr/include/CL/cl.h ] || need+=(ocl-icd-opencl-dev)
[ -e /usr/include/simde/x86/avx512.h ] || need+=(libsimde-dev)   # AVX-512 kernels checked through SIMDe on CPUs without AVX-512
command -v chromium >/dev/null 2>&1 || need+=(chromium)   # profiler HTML report test (headless)
for extra in ${LOWBIT_EXTRA_APT:-}; do
  dpkg -s "$extra" >/dev/null 2>&1 || need+=("$extra")
done

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

echo "lowbit: installing Debian packages: ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "lowbit: need root to install: apt-get install ${need[*]}" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "lowbit: no apt-get here; install the equivalents of: ${need[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
