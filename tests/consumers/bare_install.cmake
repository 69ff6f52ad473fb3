# bare_install.cmake: a default configure of the source tree on a machine with nothing but a
# compiler and CMake (every third-party package made unfindable), then `cmake --install` and a
# consumer built with -Werror and the full warning set (ctest driver). The consumer's machine
# has Eigen: every component is installed whatever the installing machine had, so the
# consumer gets prune::eigen although prune's configure never saw Eigen.
#   -DPRUNE_SOURCE=<prune source dir> -DWORK=<scratch dir> -DGENERATOR=<generator> -DCXX=<C++ compiler>
# Checks: the configure succeeds and says, for the tests, examples and benchmarks, what is
# missing and which PRUNE_BUILD_* option builds them; asking for the tests explicitly fails
# with a message naming -DPRUNE_BUILD_TESTS=OFF; the install is consumed (run_consumer.cmake).
cmake_minimum_required(VERSION 3.25)
foreach(var PRUNE_SOURCE WORK GENERATOR CXX)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "bare_install.cmake: -D${var}=... is required")
  endif()
endforeach()

set(hidden)
foreach(package Catch2 benchmark Eigen3 nlohmann_json xtensor Torch BLAS CLI11 MPI)
  list(APPEND hidden "-DCMAKE_DISABLE_FIND_PACKAGE_${package}=ON")
endforeach()
file(REMOVE_RECURSE "${WORK}")
set(build "${WORK}/prune-build")
set(configure "${CMAKE_COMMAND}" -S "${PRUNE_SOURCE}" -B "${build}" -G "${GENERATOR}" "-DCMAKE_CXX_COMPILER=${CXX}"
              -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF ${hidden})

execute_process(COMMAND ${configure} RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
message(STATUS "${output}")
if(NOT result EQUAL 0)
  message(FATAL_ERROR "a default configure with no third-party package failed (${result})")
endif()
string(REGEX REPLACE "[ \n]+" " " flat "${output}")  # CMake wraps warnings
foreach(part "tests need Catch2 v2.*PRUNE_BUILD_TESTS is now OFF"
             "examples need Eigen 3.4.*PRUNE_BUILD_EXAMPLES is now OFF"
             "benchmarks need Google Benchmark.*PRUNE_BUILD_BENCHMARKS is now OFF")
  if(NOT flat MATCHES "${part}")
    message(FATAL_ERROR "the configure did not say '${part}'")
  endif()
endforeach()

execute_process(COMMAND ${configure} -DPRUNE_BUILD_TESTS=ON RESULT_VARIABLE result OUTPUT_VARIABLE output
                ERROR_VARIABLE output)
string(REGEX REPLACE "[ \n]+" " " flat "${output}")
if(result EQUAL 0 OR NOT flat MATCHES "tests need Catch2 v2.*configure with -DPRUNE_BUILD_TESTS=OFF")
  message(FATAL_ERROR "-DPRUNE_BUILD_TESTS=ON without Catch2 must fail naming the option; got (${result}):\n${output}")
endif()

execute_process(COMMAND "${CMAKE_COMMAND}" -DMODE=component "-DCONSUMER=${CMAKE_CURRENT_LIST_DIR}/component"
                        "-DWORK=${WORK}/consumer" "-DPRUNE_SOURCE=${PRUNE_SOURCE}" "-DPRUNE_BUILD=${build}"
                        "-DGENERATOR=${GENERATOR}" "-DCXX=${CXX}" -DCOMPONENTS=eigen -DPROGRAM=eigen
                        -DTRIPWIRES=xtensor|nlohmann_json|Torch -P "${CMAKE_CURRENT_LIST_DIR}/run_consumer.cmake"
                RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "the consumer of the bare install failed")
endif()
