# run_consumer.cmake: configures, builds and runs one consumer project (ctest driver).
#   -DMODE=find_package|subdirectory -DCONSUMER=<consumer source dir> -DWORK=<scratch dir>
#   -DPRUNE_SOURCE=<prune source dir> -DPRUNE_BUILD=<prune build dir>
#   -DGENERATOR=<generator> -DCXX=<C++ compiler>
# find_package: `cmake --install PRUNE_BUILD --prefix WORK/prefix` first, checks the
# installed files and that the version file is architecture-independent, then the
# consumer finds the package there (package registries off).
cmake_minimum_required(VERSION 3.25)
foreach(var MODE CONSUMER WORK PRUNE_SOURCE PRUNE_BUILD GENERATOR CXX)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_consumer.cmake: -D${var}=... is required")
  endif()
endforeach()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
  if(NOT result EQUAL 0)
    string(REPLACE ";" " " command "${ARGN}")
    message(FATAL_ERROR "failed (${result}): ${command}\n${output}")
  endif()
  message(STATUS "${output}")
endfunction()

file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
set(configure_args -S "${CONSUMER}" -B "${WORK}/build" -G "${GENERATOR}" "-DCMAKE_CXX_COMPILER=${CXX}"
                   -DCMAKE_BUILD_TYPE=Release -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)

if(MODE STREQUAL "find_package")
  set(prefix "${WORK}/prefix")
  run("${CMAKE_COMMAND}" --install "${PRUNE_BUILD}" --prefix "${prefix}")
  foreach(file include/prune/prune.hpp include/prune/mask.hpp include/prune/adapters/eigen.hpp
               include/prune/adapters/xtensor.hpp share/cmake/prune/pruneConfig.cmake
               share/cmake/prune/pruneConfigVersion.cmake share/cmake/prune/prune-prune-targets.cmake)
    if(NOT EXISTS "${prefix}/${file}")
      message(FATAL_ERROR "the install lacks ${file}")
    endif()
  endforeach()
  # ARCH_INDEPENDENT: a 32-bit consumer must accept the package, as a 64-bit one does.
  foreach(pointer_size 4 8)
    set(CMAKE_SIZEOF_VOID_P ${pointer_size})
    set(PACKAGE_FIND_VERSION 0.1)
    set(PACKAGE_FIND_VERSION_MAJOR 0)
    set(PACKAGE_FIND_VERSION_MINOR 1)
    set(PACKAGE_VERSION_UNSUITABLE FALSE)
    set(PACKAGE_VERSION_COMPATIBLE FALSE)
    include("${prefix}/share/cmake/prune/pruneConfigVersion.cmake")
    if(PACKAGE_VERSION_UNSUITABLE OR NOT PACKAGE_VERSION_COMPATIBLE)
      message(FATAL_ERROR "pruneConfigVersion.cmake rejects a consumer with CMAKE_SIZEOF_VOID_P=${pointer_size} "
                          "(expected ARCH_INDEPENDENT)")
    endif()
  endforeach()
  run("${CMAKE_COMMAND}" ${configure_args} "-DCMAKE_PREFIX_PATH=${prefix}" "-DPRUNE_EXPECTED_PREFIX=${prefix}")
elseif(MODE STREQUAL "subdirectory")
  run("${CMAKE_COMMAND}" ${configure_args} "-DPRUNE_SOURCE=${PRUNE_SOURCE}")
else()
  message(FATAL_ERROR "run_consumer.cmake: MODE must be find_package or subdirectory, not ${MODE}")
endif()
run("${CMAKE_COMMAND}" --build "${WORK}/build")
run("${WORK}/build/consumer")
