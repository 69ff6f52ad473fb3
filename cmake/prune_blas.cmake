# prune_blas.cmake: the GEMM back-end of the runtime (prune/nn/gemm.hpp). Sets
# PRUNE_BLAS_TARGET to an INTERFACE target that links Debian's OpenBLAS when one is found
# (PRUNE_HAVE_BLAS is then true), else nothing. The headers never test a macro for it: they
# look OpenBLAS's entry points up in the running process (dlsym), so every translation unit
# compiles the same inline code and a program without OpenBLAS uses Eigen's products.
if(NOT TARGET prune_blas)
  add_library(prune_blas INTERFACE)
  set(BLA_VENDOR OpenBLAS)
  find_package(BLAS QUIET)
  if(BLAS_FOUND)
    # Nothing references OpenBLAS at link time (the runtime finds it with dlsym): keep it
    # even where the toolchain links with --as-needed by default.
    if(CMAKE_SYSTEM_NAME STREQUAL "Linux")
      target_link_options(prune_blas INTERFACE "LINKER:--no-as-needed")
    endif()
    target_link_libraries(prune_blas INTERFACE BLAS::BLAS)
    message(STATUS "prune: GEMM back-end: OpenBLAS (${BLAS_LIBRARIES}), found at run time")
  else()
    message(STATUS "prune: GEMM back-end: Eigen (no OpenBLAS found)")
  endif()
  target_link_libraries(prune_blas INTERFACE ${CMAKE_DL_LIBS})
  set_property(GLOBAL APPEND PROPERTY PRUNE_EXPORTED_TARGETS prune_blas)
endif()
set(PRUNE_BLAS_TARGET prune_blas)
set(PRUNE_HAVE_BLAS ${BLAS_FOUND})
