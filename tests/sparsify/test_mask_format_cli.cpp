// --mask-format bits end to end on a tiny F16 Llama whose weights' last axes (36, 44) are not
// multiples of 8: prune-sparsify and prune-magnitude write the same weights (byte for byte) and
// the same report counts with --mask-format bits as with bytes; numpy
// (tests/io/mask_bits_reference.py) unpacks the bits file to exactly the bytes file and packs the
// bytes file to exactly the bits file; prune-eval gives the same perplexity JSON with either
// file; any other --mask-format is a usage error (exit 2).
#include <prune/io/json.hpp>
#include <prune/io/masks.hpp>
#include <prune/models/decoder/checkpoint.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "../support/files.hpp"
#include "support.hpp"

#include <cstdlib>
#include <string>

namespace {

namespace fs = std::filesystem;
namespace dec = prune::decoder;

/// Runs a binary in `dir`; REQUIREs exit 0.
void run_ok(const fs::path& dir, const std::string& command) {
    const prune_test::outcome o = prune_test::run_binary(command, dir, dir / "stderr.txt", "OPENBLAS_NUM_THREADS=1");
    INFO(command << "\n" << o.err);
    REQUIRE(o.code == 0);
}

/// numpy's view of a bytes and a bits mask file (tests/io/mask_bits_reference.py).
nlohmann::json numpy_view(const fs::path& bytes, const fs::path& bits, const fs::path& out) {
    const std::string command = std::string(PRUNE_TEST_PYTHON) + " " + PRUNE_SOURCE_DIR + "/tests/io/mask_bits_reference.py " +
                                bytes.string() + " " + bits.string() + " " + out.string();
    REQUIRE(std::system(command.c_str()) == 0);
    return nlohmann::json::parse(prune_test::read_file(out));
}

/// The two output directories `a` and `b` hold the same weights and mask counts, and their
/// masks files (a: bytes, b: bits) are the same masks to numpy and to the library.
void check_same_outputs(const fs::path& dir, const std::string& a, const std::string& b) {
    CHECK(prune_test::read_file(dir / a / "model.safetensors") == prune_test::read_file(dir / b / "model.safetensors"));
    const auto ra = nlohmann::json::parse(prune_test::read_file(dir / a / "report.json"));
    const auto rb = nlohmann::json::parse(prune_test::read_file(dir / b / "report.json"));
    CHECK(ra["tensors"] == rb["tensors"]);
    CHECK(ra["sparsity"] == rb["sparsity"]);
    const nlohmann::json numpy = numpy_view(dir / a / "masks.safetensors", dir / b / "masks.safetensors", dir / (b + "-numpy.json"));
    CHECK(numpy["layout"] == "bits-lsb");
    REQUIRE(numpy["tensors"].size() == ra["tensors"].size());
    for (const auto& [name, t] : numpy["tensors"].items()) {
        INFO(name);
        CHECK(t["unpacked"] == t["bytes"]);
        CHECK(t["file_bytes"] == t["numpy_bytes"]);
        CHECK(t["file_shape"] == t["numpy_shape"]);
    }
    CHECK(prune::io::read_element_masks(dir / a / "masks.safetensors") == prune::io::read_element_masks(dir / b / "masks.safetensors"));
    // 8 elements a byte, rounded up per row: smaller than the bytes file by about 8x
    CHECK(fs::file_size(dir / b / "masks.safetensors") * 4 < fs::file_size(dir / a / "masks.safetensors"));
}

/// The perplexity JSON of prune-eval with `mask` (or none), without its time and memory fields.
nlohmann::json eval_json(const fs::path& dir, const std::string& mask, const std::string& out) {
    run_ok(dir, "prune-eval --model lm --data calib.jsonl --threads 1 --json " + out + (mask.empty() ? "" : " --element-mask " + mask));
    nlohmann::json j = nlohmann::json::parse(prune_test::read_file(dir / out));
    for (const char* key : {"seconds", "peak_rss_bytes", "wall_seconds"}) j.erase(key);
    return j;
}

}  // namespace

TEST_CASE("--mask-format bits: same pruning, same masks to numpy, same evaluation", "[cli][masks]") {
    prune_test::temp_dir dir("prune_mask_format_cli");
    const dec::config cfg = dec::config_from_json(prune::io::parse_json(
        R"({"model_type": "llama", "hidden_size": 36, "num_attention_heads": 6, "num_key_value_heads": 2,
            "num_hidden_layers": 2, "intermediate_size": 44, "vocab_size": 50, "max_position_embeddings": 16})", "cfg"));
    dec::save_model(dec::random_weights(cfg, 5, 0.2f), dir.path() / "lm", prune::io::dtype::F16);
    sparsify_test::write_jsonl(dir.path() / "calib.jsonl", sparsify_test::rows_of(6, 50));

    const std::string sparsify = "prune-sparsify --model lm --calib calib.jsonl --method wanda --sparsity 0.5 --threads 1 --out ";
    run_ok(dir.path(), sparsify + "sp_bytes");
    run_ok(dir.path(), sparsify + "sp_bits --mask-format bits");
    check_same_outputs(dir.path(), "sp_bytes", "sp_bits");

    const std::string magnitude =
        R"(prune-magnitude --model lm --include 'model\.layers\.[0-9]+\.(self_attn|mlp)\.[a-z_]+_proj\.weight$' --amount 0.5 --steps 1 --threads 1 --out )";
    run_ok(dir.path(), magnitude + "mg_bytes --mask-format bytes");
    run_ok(dir.path(), magnitude + "mg_bits --mask-format bits");
    check_same_outputs(dir.path(), "mg_bytes", "mg_bits");

    const nlohmann::json dense = eval_json(dir.path(), "", "dense.json");
    for (const std::string out : {"sp", "mg"}) {
        INFO(out);
        const nlohmann::json from_bytes = eval_json(dir.path(), out + "_bytes/masks.safetensors", out + "_bytes.json");
        CHECK(eval_json(dir.path(), out + "_bits/masks.safetensors", out + "_bits.json") == from_bytes);
        CHECK(from_bytes["perplexity"] != dense["perplexity"]);  // the masks did change the model
    }

    const prune_test::outcome bad = prune_test::run_binary(magnitude + "bad --mask-format nibbles", dir.path(), dir.path() / "stderr.txt");
    CHECK(bad.code == 2);
    CHECK(prune_test::last_line(bad.err).find("--mask-format") != std::string::npos);
    CHECK_FALSE(fs::exists(dir.path() / "bad"));
}
