# compile_check.cmake: compiles one source file with the project's compiler and asserts
# the outcome. Run as
#   cmake -DCOMPILER=c++ -DSOURCE=ko.cpp -DINCLUDES="dir1|dir2" -DSYSTEM_INCLUDES="dir3|dir4"
#         -DEXPECT=fail -DPATTERNS="text1|text2" -P compile_check.cmake
# SYSTEM_INCLUDES (third-party headers, e.g. libtorch's) are passed with -isystem, as the
# project's targets pass them, so that their own warnings do not fail an ok_* file.
# EXPECT=pass: the file must compile (with -Wall -Wextra -Wpedantic -Wshadow -Wconversion
# -Wsign-conversion -Werror, a strict consumer's warning set).
# EXPECT=fail: the file must fail to compile and the compiler's output must contain
# every pattern (plain substrings).
cmake_minimum_required(VERSION 3.25)
foreach(var COMPILER SOURCE EXPECT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "compile_check.cmake: -D${var}=... is required")
  endif()
endforeach()
set(flags -std=c++20 -fsyntax-only -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Werror)
if(INCLUDES)
  string(REPLACE "|" ";" include_list "${INCLUDES}")
  foreach(dir IN LISTS include_list)
    list(APPEND flags "-I${dir}")
  endforeach()
endif()
if(SYSTEM_INCLUDES)
  string(REPLACE "|" ";" system_list "${SYSTEM_INCLUDES}")
  foreach(dir IN LISTS system_list)
    if(NOT dir MATCHES "^/usr(/local)?/include/?$")  # already searched; -isystem would break #include_next
      list(APPEND flags -isystem "${dir}")
    endif()
  endforeach()
endif()
set(ENV{LC_ALL} C)  # plain quotes in the compiler's messages
execute_process(COMMAND "${COMPILER}" ${flags} "${SOURCE}"
                RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
if(EXPECT STREQUAL "pass")
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "expected ${SOURCE} to compile, but it failed:\n${output}")
  endif()
  message(STATUS "${SOURCE} compiles, as expected")
elseif(EXPECT STREQUAL "fail")
  if(result EQUAL 0)
    message(FATAL_ERROR "expected ${SOURCE} to fail to compile, but it compiled")
  endif()
  string(REPLACE "|" ";" pattern_list "${PATTERNS}")
  foreach(pattern IN LISTS pattern_list)
    string(FIND "${output}" "${pattern}" found)
    if(found EQUAL -1)
      message(FATAL_ERROR "${SOURCE} failed to compile, but the output lacks \"${pattern}\":\n${output}")
    endif()
  endforeach()
  message(STATUS "${SOURCE} fails to compile with the expected message")
else()
  message(FATAL_ERROR "compile_check.cmake: EXPECT must be pass or fail, not ${EXPECT}")
endif()
