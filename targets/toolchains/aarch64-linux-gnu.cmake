# Cross build for 64-bit ARM Linux with Debian's cross compiler (apt-get install g++-aarch64-linux-gnu).
# Usage: cmake -S native -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=targets/toolchains/aarch64-linux-gnu.cmake
# Binaries are linked statically so they run under qemu-aarch64 without an ARM sysroot.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
find_program(LB_AARCH64_CXX aarch64-linux-gnu-g++)
find_program(LB_AARCH64_CC aarch64-linux-gnu-gcc)
if(NOT LB_AARCH64_CXX OR NOT LB_AARCH64_CC)
  message(FATAL_ERROR "aarch64 cross compiler not found. Install it with: apt-get install g++-aarch64-linux-gnu")
endif()
set(CMAKE_C_COMPILER ${LB_AARCH64_CC})
set(CMAKE_CXX_COMPILER ${LB_AARCH64_CXX})
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-cpu;max;-L;/usr/aarch64-linux-gnu)
