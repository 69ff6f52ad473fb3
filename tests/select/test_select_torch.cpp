// tests/select/test_select_torch.cpp: prune_global against torch.nn.utils.prune (the
// independent truth). torch_global.py writes random-normal weights of six tensors and the
// masks of global_unstructured(L1Unstructured, amount=0.1) after 1, 3 and 7 applications,
// plus the counts pruned by global RandomUnstructured; ours must give bit-identical L1
// masks (any thread count, both internal paths) and the same random counts.
#include <prune/importance/scores.hpp>
#include <prune/select.hpp>

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

template <class T>
std::vector<T> read_raw(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in.good());
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<T> values(bytes.size() / sizeof(T));
    std::memcpy(values.data(), bytes.data(), values.size() * sizeof(T));
    return values;
}

fs::path run_torch(const std::string& steps) {
    std::string name = "prune_select_torch_";
    name += std::to_string(::getpid());
    const fs::path dir = fs::temp_directory_path() / name;
    fs::create_directories(dir);
    std::string command = PRUNE_TEST_PYTHON;
    command += " " PRUNE_SOURCE_DIR "/tests/select/torch_global.py ";
    command += dir.string();
    command += " 7 0.1 ";
    command += steps;
    REQUIRE(std::system(command.c_str()) == 0);
    return dir;
}

}  // namespace

TEST_CASE("global L1 magnitude masks are bit-identical to torch's global_unstructured", "[select][torch]") {
    const fs::path dir = run_torch("1,3,7");
    std::vector<prune::shape> shapes;
    {
        std::ifstream in(dir / "shapes.txt");
        std::string line;
        while (std::getline(in, line)) {
            std::istringstream fields(line);
            std::vector<std::size_t> extents;
            std::size_t e = 0;
            while (fields >> e) extents.push_back(e);
            shapes.emplace_back(extents);
        }
    }
    REQUIRE(shapes.size() == 6);
    std::vector<std::vector<float>> weights;
    for (std::size_t t = 0; t < shapes.size(); ++t) {
        std::string file = "w";
        file += std::to_string(t);
        file += ".f32";
        weights.push_back(read_raw<float>(dir / file));
        REQUIRE(weights.back().size() == shapes[t].numel());
    }
    std::vector<prune::score_source> scores;
    for (std::size_t t = 0; t < shapes.size(); ++t) {
        scores.push_back(prune::magnitude(prune::make_view(weights[t].data(), shapes[t])));
    }
    auto fresh = [&] {
        std::vector<prune::element_mask> masks;
        for (const auto& s : shapes) masks.emplace_back(s);
        return masks;
    };

    for (unsigned threads : {1u, 2u, 3u}) {
        for (std::size_t buffer : {std::size_t{8} << 20, std::size_t{0}})
        for (int variant = 0; variant < 3; ++variant) {
            const bool sampling = variant < 2;
            const bool speculate = variant == 0;
            INFO("threads " << threads << ", buffer " << buffer << ", variant " << variant);
            auto masks = fresh();
            for (int step = 1; step <= 7; ++step) {
                prune::prune_global(scores, masks, 0.1, {threads, buffer, sampling, speculate});
                if (step == 1 || step == 3 || step == 7) {
                    for (std::size_t t = 0; t < shapes.size(); ++t) {
                        INFO("step " << step << ", tensor " << t);
                        std::string file = "l1_";
                        file += std::to_string(step);
                        file += "_";
                        file += std::to_string(t);
                        file += ".u8";
                        const auto expected = read_raw<std::uint8_t>(dir / file);
                        REQUIRE(masks[t].to_bytes() == expected);
                    }
                }
            }
        }
    }

    // RandomUnstructured: the same count (the draw itself is torch's RNG, not ours)
    std::ifstream counts(dir / "random_counts.txt");
    std::vector<std::pair<int, std::size_t>> torch_counts;
    int step = 0;
    std::size_t pruned = 0;
    while (counts >> step >> pruned) torch_counts.emplace_back(step, pruned);
    REQUIRE(torch_counts.size() == 3);
    std::vector<prune::score_source> random;
    for (std::size_t t = 0; t < shapes.size(); ++t) random.push_back(prune::random_scores(shapes[t], 123));
    auto masks = fresh();
    std::size_t done = 0;
    for (int s = 1; s <= 7; ++s) {
        prune::prune_global(random, masks, 0.1, {2});
        for (const auto& [at, count] : torch_counts) {
            if (at == s) {
                std::size_t ours = 0;
                for (const auto& m : masks) ours += m.count_pruned();
                CHECK(ours == count);
                ++done;
            }
        }
    }
    CHECK(done == 3);
    fs::remove_all(dir);
}
