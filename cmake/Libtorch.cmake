# libtorch: the C++ library inside PyPI's torch wheel, unpacked by tools/install-libtorch.sh into
# ALEXANDRIA_LIBTORCH. The imported target `torch` is built here from that prefix rather than through the wheel's
# TorchConfig.cmake, because that config is made for the CUDA build the wheel is: it would search for the CUDA
# toolkit and link libtorch_cuda even for a CPU build. A CPU build links libtorch_cpu and libc10 only.
#   -DALEXANDRIA_CUDA=ON       also link the wheel's CUDA parts (tools/build-cuda.sh)
#   -DALEXANDRIA_LIBTORCH=system  use find_package(Torch) instead (Debian's libtorch-dev 1.13, or Torch_DIR)
set(_default_libtorch "$ENV{ALEXANDRIA_DEPS}")
if(NOT _default_libtorch)
  set(_default_libtorch "$ENV{HOME}/.cache/alexandria")
endif()
set(ALEXANDRIA_LIBTORCH "${_default_libtorch}/libtorch-2.11.0" CACHE STRING
    "unpacked libtorch prefix (tools/install-libtorch.sh), or 'system' for find_package(Torch)")
option(ALEXANDRIA_CUDA "Link libtorch's CUDA parts and compile the CUDA code paths" OFF)

if(ALEXANDRIA_LIBTORCH STREQUAL "system")
  find_package(Torch REQUIRED)
  # libgomp, libtorch's OpenMP runtime, which src/model/kernels.cpp calls (GOMP_parallel): the copy PyPI's torch
  # keeps beside libtorch, else the system's (GCC's runtime). Not the compiler's OpenMP: with clang that would be
  # libomp, a second set of threads beside libtorch's.
  find_library(ALEXANDRIA_GOMP NAMES libgomp.so.1 gomp HINTS "${TORCH_INSTALL_PREFIX}/lib")
  if(NOT ALEXANDRIA_GOMP)
    message(FATAL_ERROR "libgomp (libtorch's OpenMP runtime) not found beside ${TORCH_INSTALL_PREFIX}/lib or on the system")
  endif()
  target_link_libraries(torch INTERFACE "${ALEXANDRIA_GOMP}")
  set(ALEXANDRIA_LIBTORCH_VERSION "${Torch_VERSION}")
  if(ALEXANDRIA_CUDA)
    target_compile_definitions(torch INTERFACE ALEXANDRIA_CUDA=1)
  endif()
  return()
endif()

set(_lt "${ALEXANDRIA_LIBTORCH}")
if(NOT EXISTS "${_lt}/lib/libtorch_cpu.so" OR NOT EXISTS "${_lt}/include/torch/csrc/api/include/torch/torch.h")
  message(FATAL_ERROR "libtorch not found in ${_lt}: run tools/install-libtorch.sh "
                      "(or pass -DALEXANDRIA_LIBTORCH=<prefix>|system)")
endif()
file(READ "${_lt}/version.txt" ALEXANDRIA_LIBTORCH_VERSION)
string(STRIP "${ALEXANDRIA_LIBTORCH_VERSION}" ALEXANDRIA_LIBTORCH_VERSION)
message(STATUS "libtorch ${ALEXANDRIA_LIBTORCH_VERSION} from ${_lt}")

add_library(torch INTERFACE IMPORTED GLOBAL)
set_target_properties(torch PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${_lt}/include;${_lt}/include/torch/csrc/api/include")
# libgomp: libtorch's own OpenMP runtime, which src/model/kernels.cpp also uses (one runtime, one set of threads).
target_link_libraries(torch INTERFACE "${_lt}/lib/libtorch_cpu.so" "${_lt}/lib/libc10.so" "${_lt}/lib/libgomp.so.1")
if(ALEXANDRIA_CUDA)
  if(NOT EXISTS "${_lt}/lib/libtorch_cuda.so")
    message(FATAL_ERROR "${_lt} has no CUDA parts: run tools/install-libtorch.sh --cuda")
  endif()
  find_package(CUDAToolkit REQUIRED)
  # libtorch_cuda registers the CUDA kernels from static initialisers; nothing references it by symbol, so
  # --no-as-needed keeps the linker from dropping it.
  target_link_libraries(torch INTERFACE -Wl,--no-as-needed "${_lt}/lib/libtorch_cuda.so" "${_lt}/lib/libc10_cuda.so"
    -Wl,--as-needed CUDA::cudart)
  target_compile_definitions(torch INTERFACE ALEXANDRIA_CUDA=1 USE_CUDA=1)
  # libtorch_cuda.so needs cuFile, cuSPARSELt and NVSHMEM, which the CUDA toolkit does not ship (the GPU machine's
  # torch brings them): link without resolving them here.
  target_link_options(torch INTERFACE -Wl,--allow-shlib-undefined "-Wl,-rpath-link,${CUDAToolkit_LIBRARY_DIR}")
endif()
