# libtorch comes from PyPI's torch wheel (cmake/Libtorch.cmake); every other dependency is a Debian package
# (tools/install-deps.sh). On the GPU machine the other packages come from .deb files unpacked into a prefix.
include(Libtorch)
find_package(nlohmann_json 3 REQUIRED)
find_package(fmt REQUIRED)
find_package(CLI11 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(SNDFILE REQUIRED IMPORTED_TARGET sndfile)
pkg_check_modules(SOXR REQUIRED IMPORTED_TARGET soxr)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
find_package(Threads REQUIRED)
