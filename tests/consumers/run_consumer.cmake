# run_consumer.cmake: configures, builds and runs one consumer project (ctest driver).
#   -DMODE=find_package|subdirectory|component -DCONSUMER=<consumer source dir> -DWORK=<scratch dir>
#   -DPRUNE_SOURCE=<prune source dir> -DPRUNE_BUILD=<prune build dir>
#   -DGENERATOR=<generator> -DCXX=<C++ compiler>
# find_package: `cmake --install PRUNE_BUILD --prefix WORK/prefix` first, checks the
# installed files and that the version file is architecture-independent, then the
# consumer finds the package there (package registries off).
# component: the same install, then tests/consumers/component with
#   -DCOMPONENTS=a|b    the required components     -DOPTIONAL=c|d  optional ones (hidden: must be FALSE)
#   -DPROGRAM=<name>    the program built and run (none: configure only)
#   -DTRIPWIRES=P|Q     packages that must not be searched for: a PConfig.cmake that fails
#                       the configure is planted ahead of the real one
#   -DHIDE=P|Q          packages made unfindable (CMAKE_DISABLE_FIND_PACKAGE_P)
#   -DEXPECT_ERROR=<regex>  the configure must fail with a message matching it
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

set(prefix "${WORK}/prefix")
if(MODE STREQUAL "find_package" OR MODE STREQUAL "component")
  run("${CMAKE_COMMAND}" --install "${PRUNE_BUILD}" --prefix "${prefix}")
endif()
if(MODE STREQUAL "component")
  foreach(var COMPONENTS OPTIONAL TRIPWIRES HIDE)
    string(REPLACE "|" ";" ${var} "${${var}}")
  endforeach()
  set(tripwires "${WORK}/tripwires")
  foreach(package IN LISTS TRIPWIRES)
    # find_package reads the version file of every candidate (even for a versioned search that
    # would reject a config without one): the tripwire fires there, and in the config.
    set(trip "message(FATAL_ERROR \"TRIPWIRE: ${package} was searched for, but the consumer asked prune only for "
             "components '${COMPONENTS}' (optional '${OPTIONAL}'), which do not need it\")\n")
    file(WRITE "${tripwires}/lib/cmake/${package}/${package}ConfigVersion.cmake" "${trip}")
    file(WRITE "${tripwires}/lib/cmake/${package}/${package}Config.cmake" "${trip}")
  endforeach()
  set(hidden)
  foreach(package IN LISTS HIDE)
    list(APPEND hidden "-DCMAKE_DISABLE_FIND_PACKAGE_${package}=ON")
  endforeach()
  execute_process(COMMAND "${CMAKE_COMMAND}" ${configure_args} "-DCMAKE_PREFIX_PATH=${tripwires};${prefix}"
                          "-DPRUNE_EXPECTED_PREFIX=${prefix}" "-DPRUNE_COMPONENTS=${COMPONENTS}"
                          "-DPRUNE_OPTIONAL=${OPTIONAL}" "-DPRUNE_PROGRAM=${PROGRAM}" ${hidden}
                  RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
  message(STATUS "${output}")
  if(DEFINED EXPECT_ERROR)
    if(result EQUAL 0)
      message(FATAL_ERROR "the consumer configured, but a failure matching '${EXPECT_ERROR}' was expected")
    endif()
    if(NOT output MATCHES "${EXPECT_ERROR}")
      message(FATAL_ERROR "the consumer failed, but without a message matching '${EXPECT_ERROR}'")
    endif()
    return()
  endif()
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "the consumer failed to configure (${result})")
  endif()
  if(NOT PROGRAM)
    return()
  endif()
elseif(MODE STREQUAL "find_package")
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
  message(FATAL_ERROR "run_consumer.cmake: MODE must be find_package, subdirectory or component, not ${MODE}")
endif()
run("${CMAKE_COMMAND}" --build "${WORK}/build")
run("${WORK}/build/consumer")
