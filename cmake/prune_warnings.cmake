# prune_warnings.cmake: build settings for the project's own binaries (tests, examples,
# benchmarks), never for the INTERFACE targets that consumers link.
#   PRUNE_WARNINGS_AS_ERRORS  -Wall -Wextra -Wpedantic -Werror
#   PRUNE_SANITIZE            e.g. "address,undefined" (ASan + UBSan, LSan included)
#   PRUNE_NATIVE              -march=native for speed on the machine that runs them
option(PRUNE_WARNINGS_AS_ERRORS "Warnings are errors in the project's own binaries" OFF)
set(PRUNE_SANITIZE "" CACHE STRING "Sanitizers for the project's own binaries (e.g. address,undefined)")
option(PRUNE_NATIVE "Compile the project's own binaries with -march=native" ON)

function(prune_binary_settings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    # GCC 12 reports -Wrestrict inside libstdc++'s std::string operator+ at -O2/-O3, a false
    # positive (GCC bug 105329, fixed in GCC 13).
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
  if(PRUNE_WARNINGS_AS_ERRORS)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(PRUNE_NATIVE)
    target_compile_options(${target} PRIVATE -march=native)
  endif()
  if(PRUNE_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${PRUNE_SANITIZE} -fno-omit-frame-pointer
                                             -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${PRUNE_SANITIZE})
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      # With sanitizer instrumentation GCC 12 reports -Wmaybe-uninitialized inside libstdc++
      # (std::function in std::regex, used by Catch2's main), and -Wuninitialized inside
      # avx512fintrin.h where Eigen's AVX-512 packet code is inlined at -O1 (the `__Y` of
      # _mm512_undefined_*): false positives, attributed to system headers included before
      # any pragma of ours could take effect.
      target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized -Wno-uninitialized)
    endif()
  endif()
endfunction()
