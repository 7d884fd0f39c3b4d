# libtorch comes from PyPI's torch wheel (cmake/Libtorch.cmake); every other dependency is a Debian package
# (tools/install-deps.sh). On the GPU machine the other packages come from .deb files unpacked into a prefix.
include(Libtorch)
find_package(nlohmann_json 3 REQUIRED)
find_package(fmt REQUIRED)
# fmt header-only, everywhere: libtorch 2.x ships its own fmt (12.x) in its include folder, which shadows Debian's
# (9.x) in every file compiled with libtorch, while the light files see Debian's. Header-only, each file uses the
# headers it sees (their inline namespaces, fmt::v9 and fmt::v12, keep them apart) and nothing links a libfmt
# whose version differs from the headers a file was compiled with.
set_property(TARGET fmt::fmt PROPERTY INTERFACE_COMPILE_DEFINITIONS FMT_HEADER_ONLY=1)
find_package(CLI11 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(SNDFILE REQUIRED IMPORTED_TARGET sndfile)
pkg_check_modules(SOXR REQUIRED IMPORTED_TARGET soxr)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
find_package(Threads REQUIRED)
