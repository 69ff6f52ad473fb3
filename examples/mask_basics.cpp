// mask_basics: element and group masks on an Eigen matrix and a std::vector, the
// smallest tour of the core API. Prints what each step kept and pruned.
//
//   build/bin/mask_basics [--rows 6] [--cols 8] [--keep-every 3]
//
// Masks speak of logical (row-major) element order, so the same mask means the same
// weights for a column-major Eigen matrix and a row-major buffer of the same shape.
#include "common/cli.hpp"

#include <prune/adapters/eigen.hpp>
#include <prune/prune.hpp>

#include <Eigen/Core>

#include <cstddef>
#include <cstdio>
#include <vector>

namespace {

void run(std::size_t rows, std::size_t cols, std::size_t keep_every) {
    if (rows == 0 || cols == 0 || keep_every == 0) {
        throw prune::value_error("--rows, --cols and --keep-every must be positive");
    }
    if (rows % 2 != 0) {
        throw prune::value_error("--rows must be even (the matrix is split into two heads along its rows)");
    }
    // An Eigen weight matrix (column-major storage) filled with 1..rows*cols in logical order.
    Eigen::MatrixXf weight(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t c = 0; c < cols; ++c) {
            weight(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(c)) = static_cast<float>(r * cols + c + 1);
        }
    }
    // The same logical matrix as a flat row-major std::vector.
    std::vector<float> flat(rows * cols);
    for (std::size_t i = 0; i < flat.size(); ++i) {
        flat[i] = static_cast<float>(i + 1);
    }

    // Element mask: keep every keep_every-th weight (logical order).
    prune::element_mask mask(prune::view(weight).extents());
    for (std::size_t i = 0; i < mask.size(); ++i) {
        mask.set(i, i % keep_every == 0);
    }
    prune::apply(mask, weight);
    prune::apply(mask, flat);
    std::printf("element mask %s: kept %zu, pruned %zu, sparsity %.3f\n", mask.extents().to_string().c_str(),
                mask.count_kept(), mask.count_pruned(), mask.sparsity());

    std::size_t agree = 0;
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t c = 0; c < cols; ++c) {
            agree += weight(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(c)) == flat[r * cols + c] ? 1 : 0;
        }
    }
    std::printf("Eigen (column-major) and std::vector (row-major) agree on %zu of %zu weights\n", agree, flat.size());

    // Combining masks: AND, OR, NOT, and the byte form used in mask files.
    const prune::element_mask inverse = ~mask;
    std::printf("~mask keeps %zu; mask | ~mask keeps %zu; mask & ~mask keeps %zu\n", inverse.count_kept(),
                (mask | inverse).count_kept(), (mask & inverse).count_kept());
    const std::vector<std::uint8_t> bytes = mask.to_bytes();
    std::printf("byte round trip equal: %s\n",
                prune::element_mask::from_bytes(bytes, mask.extents()) == mask ? "yes" : "no");

    // Group masks: two layers with different head counts; prune head 1 of layer 0, whose
    // rows are the second half of the matrix.
    prune::group_mask heads(std::vector<std::size_t>{2, 3});
    heads.set(0, 1, false);
    prune::apply_groups(heads, 0, weight, 0);
    std::printf("heads: kept %zu of %zu (layer 0: %zu of %zu, layer 1: %zu of %zu), sparsity %.3f\n",
                heads.count_kept(), heads.total(), heads.count_kept(0), heads.groups(0), heads.count_kept(1),
                heads.groups(1), heads.sparsity());
    std::printf("non-zero weights left in the Eigen matrix: %lld of %zu\n",
                static_cast<long long>((weight.array() != 0.0f).count()), flat.size());
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app("mask_basics: element and group masks on an Eigen matrix and a std::vector", "mask_basics");
    std::size_t rows = 6;
    std::size_t cols = 8;
    std::size_t keep_every = 3;
    app.add_option("--rows", rows, "rows of the weight matrix (even)")->capture_default_str();
    app.add_option("--cols", cols, "columns of the weight matrix")->capture_default_str();
    app.add_option("--keep-every", keep_every, "keep one weight in this many")->capture_default_str();
    return prune_cli::run(app, argc, argv, [&] { run(rows, cols, keep_every); });
}
