# prune_install.cmake: install rules and the CMake package (pruneConfig.cmake + an
# ARCH_INDEPENDENT version file). Every component is installed, whatever this machine has;
# each target goes into an export file of its own, so that pruneConfig.cmake loads a target
# only when its dependencies are found on the consumer's machine (prune::prune always;
# prune::eigen with Eigen3, ...).
set(PRUNE_CMAKE_DIR "${CMAKE_INSTALL_DATADIR}/cmake/prune")

foreach(component prune text io bpe eigen xtensor nn bert sparsify decoder mpi)
  if(TARGET prune_${component})
    set(extra)
    if(component STREQUAL "nn" AND TARGET prune_blas)  # prune_blas exists where Eigen was found
      set(extra prune_blas)
    endif()
    install(TARGETS prune_${component} ${extra} EXPORT prune-${component}
            FILE_SET HEADERS DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
    install(EXPORT prune-${component} NAMESPACE prune:: DESTINATION ${PRUNE_CMAKE_DIR}
            FILE prune-${component}-targets.cmake)
  endif()
endforeach()
# The torch adapter is one header, installed whether or not libtorch is on this machine:
# pruneConfig.cmake finds Torch on the consumer's and defines prune::torch there.
install(FILES "${PROJECT_SOURCE_DIR}/include/prune/adapters/torch.hpp"
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/prune/adapters)

configure_package_config_file(cmake/pruneConfig.cmake.in "${PROJECT_BINARY_DIR}/pruneConfig.cmake"
                              INSTALL_DESTINATION ${PRUNE_CMAKE_DIR})
write_basic_package_version_file("${PROJECT_BINARY_DIR}/pruneConfigVersion.cmake"
                                 COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES "${PROJECT_BINARY_DIR}/pruneConfig.cmake" "${PROJECT_BINARY_DIR}/pruneConfigVersion.cmake"
        DESTINATION ${PRUNE_CMAKE_DIR})
install(FILES LICENSE DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/prune)
