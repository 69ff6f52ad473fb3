# prune_parts.cmake: the project's own parts (tests, examples, benchmarks) and what they need.
#   prune_part_needs(<PART> <what> <requirement> <found variable> [<requirement> <found variable> ...])
# When PRUNE_BUILD_<PART> is on and a requirement's variable is false:
#   - the user asked for the part (-DPRUNE_BUILD_<PART>=ON, or an earlier configure's cache):
#     a fatal error naming what is missing and the option that turns the part off;
#   - the part was on by default (first configure, top-level project): a warning, and
#     PRUNE_BUILD_<PART> is set OFF in the cache, so that a plain configure + install of the
#     library needs nothing but a compiler and CMake.
# The library's own targets never depend on this.
function(prune_part_needs part what)
  if(NOT PRUNE_BUILD_${part})
    return()
  endif()
  set(missing)
  set(pairs ${ARGN})
  while(pairs)
    list(POP_FRONT pairs requirement found)
    if(NOT ${found})
      list(APPEND missing "${requirement}")
    endif()
  endwhile()
  if(NOT missing)
    return()
  endif()
  list(JOIN missing ", " missing_text)
  if(PRUNE_BUILD_${part}_ASKED)
    message(FATAL_ERROR "prune: ${what} need ${missing_text}, not found. Install it (or point CMAKE_PREFIX_PATH "
                        "at it), or configure with -DPRUNE_BUILD_${part}=OFF to build without ${what}.")
  endif()
  message(WARNING "prune: ${what} need ${missing_text}, not found: ${what} are not built and PRUNE_BUILD_${part} "
                  "is now OFF in the cache. Install it and configure with -DPRUNE_BUILD_${part}=ON to build them.")
  set(PRUNE_BUILD_${part} OFF CACHE BOOL "Build ${what}" FORCE)
  set(PRUNE_BUILD_${part} OFF PARENT_SCOPE)
endfunction()
