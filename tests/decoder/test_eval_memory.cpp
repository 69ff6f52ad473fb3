// prune-eval holds one decoder layer's weights at a time: on a generated 12-layer Llama (F16 on
// disk, 155 MB as float32, one layer 12.6 MB of it) its peak RSS (--json's peak_rss_bytes, the
// process's VmHWM) stays below half of the model's float32 size, with and without element masks
// and a structure mask -- loading the model as float, as prune-eval did before it streamed, takes
// all of it. Skipped under AddressSanitizer, whose shadow memory and quarantine are no measure of
// the program's own.
#include <prune/io/masks.hpp>
#include <prune/models/decoder/checkpoint.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "../support/decoder_fixtures.hpp"
#include "../support/files.hpp"
#include "../support/run_ok.hpp"
#include "../support/sanitizer.hpp"

#include <fstream>
#include <string>

namespace {

/// Peak RSS of prune-eval on the model in dir/lm with `arguments`.
[[maybe_unused]] long long peak_of(const prune_test::temp_dir& dir, const std::string& arguments) {
    prune_test::run_in(dir.path(), "prune-eval --model lm --data eval.jsonl --threads 1 --json out.json" + arguments);
    const nlohmann::json out = prune_test::read_json(dir.path() / "out.json");
    CHECK(out["sequences"].get<int>() == 8);
    return out["peak_rss_bytes"].get<long long>();
}

}  // namespace

TEST_CASE("prune-eval's peak RSS on a causal LM stays far below the model as float32", "[decoder][cli][memory]") {
#if PRUNE_TEST_ASAN
    WARN("skipped under AddressSanitizer: its shadow memory is no measure of prune-eval's");
#else
    prune_test::temp_dir dir("prune_eval_memory");
    const double float_bytes = prune_test::write_twelve_layer_llama(dir.path(), "eval.jsonl");
    REQUIRE(float_bytes > 150e6);
    prune::io::element_masks masks;  // half of every layer's down_proj
    for (int l = 0; l < 12; ++l) {
        prune::element_mask m(prune::shape{512, 1536});
        for (std::size_t i = 0; i < m.size(); i += 2) m.set(i, false);
        masks.emplace("model.layers." + std::to_string(l) + ".mlp.down_proj.weight", std::move(m));
    }
    prune::io::write_element_masks(dir.path() / "masks.safetensors", masks);
    std::ofstream(dir.path() / "mask.json") << R"({"mlps": [1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1]})";
    const long long plain = peak_of(dir, "");
    const long long masked = peak_of(dir, " --element-mask masks.safetensors --mask mask.json");
    INFO("float32 model " << float_bytes / 1e6 << " MB, peak RSS " << static_cast<double>(plain) / 1e6 << " MB, with masks "
                          << static_cast<double>(masked) / 1e6 << " MB");
    CHECK(static_cast<double>(plain) < 0.5 * float_bytes);
    CHECK(static_cast<double>(masked) < 0.5 * float_bytes);
#endif
}
