// Regression tests for what the libFuzzer targets of fuzz/ found (docs/bad-inputs.md, "Found
// by fuzzing"): each reproducer, as bytes, must now give a prune::error with a clear message
// (or the right result) instead of a crash or a time-out. The reproducers are generated here
// (they are long runs of one pattern).
#include <prune/models/bert/checkpoint.hpp>
#include <prune/models/bert/config.hpp>
#include <prune/text/wordpiece.hpp>
#include <prune/data/jsonl.hpp>
#include <prune/io/json.hpp>
#include <prune/io/masks.hpp>
#include <prune/io/safetensors.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace {

// `[` x n, then `]` x n: an array nested n deep.
std::string nested(std::size_t n) { return std::string(n, '[') + std::string(n, ']'); }

// A string that names the nesting limit in its message.
const std::string too_deep = "deeper than 64 levels";

}  // namespace

// fuzz_config (and fuzz_structure_mask, fuzz_jsonl, fuzz_safetensors_index, which share
// prune::io::parse_json): JSON nested 30000 deep overflowed the stack (ASan stack-overflow in
// nlohmann::json's recursive copy and dump) before the parse was limited to 64 levels.
TEST_CASE("deeply nested JSON is rejected, not a stack overflow") {
    const std::string deep = nested(30000);
    SECTION("config.json") {
        const std::string text = R"({"hidden_size": 32, "num_attention_heads": 4, "num_hidden_layers": 2, )"
                                 R"("intermediate_size": 64, "vocab_size": 20, "extra": )" + deep + "}";
        REQUIRE_THROWS_AS(prune::bert::parse_config(text, "config.json"), prune::format_error);
        REQUIRE_THROWS_WITH(prune::bert::parse_config(text, "config.json"),
                            Catch::Contains("config.json nests arrays/objects") && Catch::Contains(too_deep));
        REQUIRE_THROWS_WITH(prune::bert::parse_config(R"({"hidden_size": )" + deep + "}", "c"), Catch::Contains(too_deep));
    }
    SECTION("structure mask") {
        REQUIRE_THROWS_WITH(prune::io::parse_structure_mask(R"({"heads": )" + deep + "}", "mask.json"),
                            Catch::Contains("mask.json nests arrays/objects") && Catch::Contains(too_deep));
    }
    SECTION("JSONL line") {
        prune::data::data_options options;
        options.num_labels = 2;
        REQUIRE_THROWS_AS(prune::data::parse_jsonl(R"({"input_ids": )" + deep + R"(, "label": 1})" + "\n", "d.jsonl", options),
                          prune::error);
        REQUIRE_THROWS_WITH(prune::data::parse_jsonl(R"({"input_ids": )" + deep + R"(, "label": 1})" + "\n", "d.jsonl", options),
                            Catch::Contains(too_deep));
    }
    SECTION("safetensors header") {
        std::string header = R"({"w": {"dtype": "F32", "shape": )" + deep + R"(, "data_offsets": [0, 4]}})";
        while (header.size() % 8 != 0) header += ' ';
        std::string file(8, '\0');
        const std::uint64_t n = header.size();
        std::memcpy(file.data(), &n, 8);
        file += header + std::string(4, '\0');
        REQUIRE_THROWS_WITH(prune::io::safetensors_file::from_bytes(std::as_bytes(std::span(file.data(), file.size())), "m.safetensors"),
                            Catch::Contains(too_deep));
    }
    SECTION("sharded index") {
        const auto dir = std::filesystem::temp_directory_path() / ("prune_fuzz_regression_" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir);
        std::ofstream(dir / "model.safetensors.index.json") << R"({"weight_map": {"a": )" << deep << "}}";
        REQUIRE_THROWS_WITH(prune::io::checkpoint::open(dir), Catch::Contains(too_deep));
        std::filesystem::remove_all(dir);
    }
    SECTION("64 levels are still accepted") {
        REQUIRE_NOTHROW(prune::io::parse_json(nested(64), "ok"));
        REQUIRE_THROWS_WITH(prune::io::parse_json(nested(65), "deep"), Catch::Contains(too_deep));
    }
}

// fuzz_tokenizer: text made of many special-token strings ("[PAD]" x 13000, 65 kB) took
// 165 s under ASan (each match searched the rest of the text once per special token: O(n^2));
// now each special token's next occurrence is searched once. No time is asserted here: before
// the fix this test ran for minutes, past ctest's timeout.
TEST_CASE("tokenizing many special-token strings is linear") {
    const prune::text::tokenizer tok(prune::text::vocabulary::from_tokens({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "x"}));
    std::string text;
    for (int i = 0; i < 13000; ++i) text += "[PAD]";
    const auto pieces = tok.tokenize(text);
    REQUIRE(pieces.size() == 13000);
    CHECK(pieces.front() == "[PAD]");
    CHECK(pieces.back() == "[PAD]");
    std::string mixed;
    for (int i = 0; i < 9000; ++i) mixed += "[PAD]x [MASK]";
    const auto ids = tok.token_ids(mixed);
    REQUIRE(ids.size() == 27000);
    CHECK(ids[0] == 0);
    CHECK(ids[1] == 5);
    CHECK(ids[2] == 4);
}

// fuzz_config (the round-trip property): "layer_norm_eps": 1e39 was accepted as a float
// infinity, and the config.json prune wrote back held null there, which it could not read.
TEST_CASE("a layer_norm_eps beyond float range is rejected") {
    const std::string base = R"({"hidden_size": 32, "num_attention_heads": 4, "num_hidden_layers": 2, )"
                             R"("intermediate_size": 64, "vocab_size": 20, "layer_norm_eps": )";
    REQUIRE_THROWS_WITH(prune::bert::parse_config(base + "1e39}", "config.json"),
                        Catch::Contains("config.json: layer_norm_eps = inf (expected a finite number > 0"));
    const auto c = prune::bert::parse_config(base + "1e-5}", "config.json");
    CHECK(prune::bert::parse_config(c.to_json().dump(), "again").layer_norm_eps == c.layer_norm_eps);
}
