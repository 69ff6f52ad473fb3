// tests/nm/test_nm_torch.cpp: N:M masks and block selection against torch (nm_oracle.py):
// N:M masks of |w| for six patterns, block scores for four reductions and four block shapes
// (partial edges included), and global block selection over two tensors, bit for bit. The
// oracle orders equal scores with torch.sort(stable=True), i.e. by index: the library's rule.
#include <prune/blocks.hpp>
#include <prune/nm.hpp>

#include <catch2/catch.hpp>

#include "../support/files.hpp"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

template <class T>
std::vector<T> read_raw(const std::filesystem::path& path) {
    const std::string bytes = prune_test::read_file(path);
    REQUIRE(!bytes.empty());
    std::vector<T> values(bytes.size() / sizeof(T));
    std::memcpy(values.data(), bytes.data(), values.size() * sizeof(T));
    return values;
}

}  // namespace

TEST_CASE("N:M masks and block selection equal torch's", "[nm][blocks][torch]") {
    prune_test::temp_dir dir("prune_nm_torch");
    const std::string command = std::string(PRUNE_TEST_PYTHON) + " " PRUNE_SOURCE_DIR "/tests/nm/nm_oracle.py " +
                                dir.path().string();
    REQUIRE(std::system(command.c_str()) == 0);
    const std::size_t rows = 37;
    const std::size_t cols = 48;
    const std::size_t rows2 = 21;
    const std::vector<float> w = read_raw<float>(dir.path() / "w.f32");
    const std::vector<float> w2 = read_raw<float>(dir.path() / "w2.f32");
    REQUIRE(w.size() == rows * cols);
    REQUIRE(w2.size() == rows2 * cols);
    const auto s1 = prune::magnitude(prune::make_view(w.data(), {rows, cols}));
    const auto s2 = prune::magnitude(prune::make_view(w2.data(), {rows2, cols}));

    for (const prune::nm_pattern p : {prune::nm_pattern{2, 4}, prune::nm_pattern{4, 8}, prune::nm_pattern{1, 4},
                                      prune::nm_pattern{3, 8}, prune::nm_pattern{5, 16}, prune::nm_pattern{1, 2}}) {
        INFO(p.to_string());
        const std::string name = "nm_" + std::to_string(p.kept) + "_" + std::to_string(p.group) + ".u8";
        CHECK(prune::nm_mask(s1, p).to_bytes() == read_raw<std::uint8_t>(dir.path() / name));
    }

    const std::vector<std::pair<prune::block_reduce, std::string>> reductions = {
        {prune::block_reduce::sum, "sum"}, {prune::block_reduce::mean, "mean"},
        {prune::block_reduce::max, "max"}, {prune::block_reduce::l2, "l2"}};
    for (const prune::block_shape block : {prune::block_shape{4, 4}, prune::block_shape{8, 16},
                                           prune::block_shape{5, 7}, prune::block_shape{1, 8}}) {
        for (const auto& [reduce, label] : reductions) {
            const std::string stem = std::to_string(block.rows) + "_" + std::to_string(block.columns) + "_" + label;
            INFO(stem);
            CHECK(prune::block_scores(s1, block, reduce) == read_raw<float>(dir.path() / ("blocks_" + stem + ".f32")));
            const std::vector<prune::score_source> both = {s1, s2};
            std::vector<prune::element_mask> masks = {prune::element_mask({rows, cols}),
                                                      prune::element_mask({rows2, cols})};
            prune::prune_blocks_global(both, masks, block, reduce, 0.3);
            std::vector<std::uint8_t> got = masks[0].to_bytes();
            const std::vector<std::uint8_t> second = masks[1].to_bytes();
            got.insert(got.end(), second.begin(), second.end());
            CHECK(got == read_raw<std::uint8_t>(dir.path() / ("global_" + stem + ".u8")));
        }
    }
}
