# alexandria_layer(name DEPS lower... LIGHT file.cpp...) — a layer of the core library, from src/<name>/*.cpp.
#
# Each layer is up to two object libraries: alexandria_<name>_light (the files listed after LIGHT, compiled
# without libtorch) and alexandria_<name> (the rest, with libtorch). The light objects are what the `alexandria`
# executable itself holds; everything is in libalexandria_torch.so, which the executable opens only for commands
# that compute (issue 18: light commands start without loading libtorch).
# A layer's transitive closure (its object libraries and those of the layers below) is kept in a global
# property so tests link exactly the layers they need: an upward include fails to link.
set_property(GLOBAL PROPERTY ALEXANDRIA_LAYERS "")
set_property(GLOBAL PROPERTY ALEXANDRIA_LIGHT_LIBS "")
set(ALEXANDRIA_WARNINGS -Wall -Wextra -Wno-unused-parameter)
# Unity builds: each batch of a target's files compiles as one translation unit, so the inline code of libtorch,
# fmt and nlohmann::json that every file uses is instantiated and optimised once per batch instead of once per file
# (with clang, the first command's compiling: 1,048 s one unit per file, 527 s in batches of 8, 452 s in batches of
# 16, i.e. one unit per target here). Off, each file is its own unit: a one-file rebuild then compiles that file
# alone, which suits an edit-compile loop (-DALEXANDRIA_UNITY=OFF).
option(ALEXANDRIA_UNITY "Compile each target's files in unity batches" ON)
set(ALEXANDRIA_UNITY_BATCH 16 CACHE STRING "files per unity batch")
function(alexandria_unity target)
  if(ALEXANDRIA_UNITY)
    set_target_properties(${target} PROPERTIES UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE ${ALEXANDRIA_UNITY_BATCH})
  endif()
endfunction()
set(ALEXANDRIA_LIGHT_DEPS nlohmann_json::nlohmann_json fmt::fmt PkgConfig::SNDFILE PkgConfig::SOXR PkgConfig::PCRE2
    Threads::Threads)

add_library(alexandria_pch_anchor OBJECT ${CMAKE_SOURCE_DIR}/cmake/pch_anchor.cpp)
target_precompile_headers(alexandria_pch_anchor PRIVATE ${CMAKE_SOURCE_DIR}/cmake/pch.h)
target_include_directories(alexandria_pch_anchor PRIVATE ${CMAKE_SOURCE_DIR}/include)
target_link_libraries(alexandria_pch_anchor PUBLIC torch nlohmann_json::nlohmann_json fmt::fmt)
target_compile_options(alexandria_pch_anchor PRIVATE ${ALEXANDRIA_WARNINGS})

add_library(alexandria_light_pch_anchor OBJECT ${CMAKE_SOURCE_DIR}/cmake/pch_anchor.cpp)
target_precompile_headers(alexandria_light_pch_anchor PRIVATE ${CMAKE_SOURCE_DIR}/cmake/pch_light.h)
target_link_libraries(alexandria_light_pch_anchor PUBLIC nlohmann_json::nlohmann_json fmt::fmt)
target_compile_options(alexandria_light_pch_anchor PRIVATE ${ALEXANDRIA_WARNINGS})

# A precompiled header is only used with the code-model flags it was built with: the anchors are -fPIC (their
# objects go into libalexandria_torch.so), so executables reusing them compile with -fPIC too, not -fPIE.
function(alexandria_match_pch_flags target)
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "EXECUTABLE")
    set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE OFF)
    target_compile_options(${target} PRIVATE -fPIC)
  endif()
endfunction()

function(alexandria_use_pch target)
  target_precompile_headers(${target} REUSE_FROM alexandria_pch_anchor)
  target_compile_options(${target} PRIVATE ${ALEXANDRIA_WARNINGS})
  alexandria_match_pch_flags(${target})
endfunction()

function(alexandria_use_light_pch target)
  target_precompile_headers(${target} REUSE_FROM alexandria_light_pch_anchor)
  target_compile_options(${target} PRIVATE ${ALEXANDRIA_WARNINGS})
  alexandria_match_pch_flags(${target})
endfunction()

function(alexandria_layer name)
  cmake_parse_arguments(L "" "" "DEPS;LIGHT" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/${name}/*.cpp)
  set(light "")
  foreach(f ${L_LIGHT})
    set(p ${CMAKE_SOURCE_DIR}/src/${name}/${f})
    if(NOT EXISTS ${p})
      message(FATAL_ERROR "alexandria_layer(${name}): LIGHT file ${f} does not exist")
    endif()
    list(APPEND light ${p})
    list(REMOVE_ITEM srcs ${p})
  endforeach()
  set(libs "")
  if(light)
    add_library(alexandria_${name}_light OBJECT ${light})
    target_include_directories(alexandria_${name}_light PUBLIC ${CMAKE_SOURCE_DIR}/include PRIVATE ${CMAKE_SOURCE_DIR}/src)
    target_link_libraries(alexandria_${name}_light PUBLIC ${ALEXANDRIA_LIGHT_DEPS})
    alexandria_use_light_pch(alexandria_${name}_light)
    alexandria_unity(alexandria_${name}_light)
    list(APPEND libs alexandria_${name}_light)
    set_property(GLOBAL APPEND PROPERTY ALEXANDRIA_LIGHT_LIBS alexandria_${name}_light)
  endif()
  if(srcs)
    add_library(alexandria_${name} OBJECT ${srcs})
    target_include_directories(alexandria_${name} PUBLIC ${CMAKE_SOURCE_DIR}/include PRIVATE ${CMAKE_SOURCE_DIR}/src)
    target_link_libraries(alexandria_${name} PUBLIC torch ${ALEXANDRIA_LIGHT_DEPS})
    alexandria_use_pch(alexandria_${name})
    alexandria_unity(alexandria_${name})
    list(APPEND libs alexandria_${name})
  endif()
  set(closure ${libs})
  foreach(d ${L_DEPS})
    get_property(dc GLOBAL PROPERTY ALEXANDRIA_CLOSURE_${d})
    list(APPEND closure ${dc})
  endforeach()
  list(REMOVE_DUPLICATES closure)
  set_property(GLOBAL PROPERTY ALEXANDRIA_CLOSURE_${name} ${closure})
  set_property(GLOBAL APPEND PROPERTY ALEXANDRIA_LAYERS ${name})
endfunction()

# objects of a layer and every layer below it
function(alexandria_layer_objects out name)
  get_property(closure GLOBAL PROPERTY ALEXANDRIA_CLOSURE_${name})
  set(objs "")
  foreach(l ${closure})
    list(APPEND objs $<TARGET_OBJECTS:${l}>)
  endforeach()
  set(${out} ${objs} PARENT_SCOPE)
endfunction()

# every object of every layer
function(alexandria_all_objects out)
  get_property(layers GLOBAL PROPERTY ALEXANDRIA_LAYERS)
  set(objs "")
  foreach(l ${layers})
    get_property(closure GLOBAL PROPERTY ALEXANDRIA_CLOSURE_${l})
    foreach(t ${closure})
      list(APPEND objs $<TARGET_OBJECTS:${t}>)
    endforeach()
  endforeach()
  list(REMOVE_DUPLICATES objs)
  set(${out} ${objs} PARENT_SCOPE)
endfunction()

# libalexandria.a: all layers, for the developer tools that link the library directly.
function(alexandria_core_library)
  alexandria_all_objects(objs)
  add_library(alexandria STATIC ${objs})
  target_include_directories(alexandria PUBLIC ${CMAKE_SOURCE_DIR}/include)
  target_link_libraries(alexandria PUBLIC torch ${ALEXANDRIA_LIGHT_DEPS})
endfunction()
