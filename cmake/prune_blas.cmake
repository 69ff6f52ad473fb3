# prune_blas.cmake: the GEMM back-end of the reference BERT. Sets PRUNE_BLAS_TARGET to an
# INTERFACE target that brings a CBLAS (Debian's OpenBLAS) when one is found, and
# defines PRUNE_HAVE_CBLAS for the code; otherwise the target is empty and Eigen's own
# products are used.
if(NOT TARGET prune_blas)
  add_library(prune_blas INTERFACE)
  set(BLA_VENDOR OpenBLAS)
  find_package(BLAS QUIET)
  find_path(PRUNE_CBLAS_INCLUDE_DIR cblas.h
            PATHS /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/openblas
            PATH_SUFFIXES openblas-pthread)
  if(BLAS_FOUND AND PRUNE_CBLAS_INCLUDE_DIR)
    target_link_libraries(prune_blas INTERFACE BLAS::BLAS)
    target_include_directories(prune_blas INTERFACE ${PRUNE_CBLAS_INCLUDE_DIR})
    target_compile_definitions(prune_blas INTERFACE PRUNE_HAVE_CBLAS=1)
    message(STATUS "prune: GEMM back-end: OpenBLAS (${PRUNE_CBLAS_INCLUDE_DIR})")
  else()
    message(STATUS "prune: GEMM back-end: Eigen (no OpenBLAS found)")
  endif()
  set_property(GLOBAL APPEND PROPERTY PRUNE_EXPORTED_TARGETS prune_blas)
endif()
set(PRUNE_BLAS_TARGET prune_blas)
