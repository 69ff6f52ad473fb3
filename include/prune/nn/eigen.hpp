// prune/nn/eigen.hpp: how the runtime includes Eigen, and the row-major types it uses.
//
// GCC 12 reports false "(may be) used uninitialized" warnings inside Eigen's AVX-512 packet
// code (the `__Y` of avx512fintrin.h's _mm512_undefined_*) when Eigen's products are compiled
// with -march=native. GCC attributes them to the intrinsic's line, so they are silenced over
// the region where Eigen (and through it <immintrin.h>) is first included; the pragmas are
// pushed and popped, so a warning in the includer's own code is still reported
// (tests/nn/CMakeLists.txt checks that). Include this header before any other Eigen header.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <Eigen/Core>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace prune::nn {

/// A row-major matrix of scalar S ([out, in] for weights, [tokens, features] for activations).
template <class S>
using row_matrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

}  // namespace prune::nn
