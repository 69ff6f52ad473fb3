// prune-eval and prune-importance on causal-LM directories, against tests/decoder/oracle.py:
// the perplexity of a whole JSON Lines file is exp(sum of the oracle's per-sequence NLL /
// predicted tokens) (1e-5 relative; observed ~2e-7), and the importance JSON equals the
// oracle's autograd importance (per example, per batch of 2, layer+global; bound 2e-5 of the
// largest score as in test_decoder_importance), with kv_groups written under GQA only; .txt files
// and text rows give the tokenizer's ids.
#include "oracle_cases.hpp"
#include "../support/files.hpp"

#include <prune/text/bpe.hpp>
#include <prune/text/bpe_trainer.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

/// Writes the case's sequences as {"input_ids": [...]} rows; returns the file.
fs::path data_file(const std::string& name) {
    const nlohmann::json c = oracle::load(name);
    const fs::path out = oracle::dir() / (name + ".jsonl");
    std::ofstream f(out);
    for (const auto& s : c["sequences"]) f << nlohmann::json{{"input_ids", s}}.dump() << "\n";
    return out;
}

nlohmann::json run(const std::string& command) {
    const fs::path json = oracle::dir() / "out.json";
    fs::remove(json);
    const prune_test::outcome o = prune_test::run_binary(command + " --json '" + json.string() + "'", oracle::dir(),
                                                         oracle::dir() / "stderr.txt", "OPENBLAS_NUM_THREADS=1");
    INFO(command << "\n" << o.err);
    REQUIRE(o.code == 0);
    std::ifstream in(json);
    return nlohmann::json::parse(in);
}

double worst(const nlohmann::json& got, const nlohmann::json& want) {
    std::vector<double> g, w;
    auto flat = [](const nlohmann::json& j, std::vector<double>& out, auto&& self) -> void {
        if (!j.is_array()) {
            out.push_back(j.get<double>());
            return;
        }
        for (const auto& x : j) self(x, out, self);
    };
    flat(got, g, flat);
    flat(want, w, flat);
    REQUIRE(g.size() == w.size());
    double e = 0.0, scale = 1e-3;
    for (std::size_t i = 0; i < g.size(); ++i) {
        e = std::max(e, std::abs(g[i] - w[i]));
        scale = std::max(scale, std::abs(w[i]));
    }
    return e / scale;
}

}  // namespace

TEST_CASE("prune-eval: perplexity of a causal LM over a JSON Lines file", "[decoder][cli]") {
    for (const std::string name : {"llama_linear_rope", "gpt2_noprefix_f16"}) {  // the ungated cases
        INFO(name);
        const nlohmann::json c = oracle::load(name);
        double nll = 0.0;
        std::int64_t tokens = 0;
        for (std::size_t b = 0; b < c["nll"].size(); ++b) {
            nll += c["nll"][b].get<double>();
            tokens += static_cast<std::int64_t>(c["sequences"][b].size()) - 1;
        }
        const nlohmann::json out = run("prune-eval --model '" + (oracle::dir() / name).string() + "' --data '" +
                                       data_file(name).string() + "' --batch-size 2");
        CHECK(out["tokens"].get<std::int64_t>() == tokens);
        CHECK(std::abs(out["nll_total"].get<double>() - nll) <= 1e-5 * nll);
        CHECK(std::abs(out["perplexity"].get<double>() - std::exp(nll / static_cast<double>(tokens))) <=
              1e-5 * std::exp(nll / static_cast<double>(tokens)));
        CHECK(out["context"].is_null());
    }
}

TEST_CASE("prune-importance: heads, mlps and kv_groups of a causal LM", "[decoder][cli]") {
    const std::string name = "llama_linear_rope";  // 4 query heads on one K/V head, no gates
    const nlohmann::json truth = oracle::load(name, "grads.json")["importance"];
    const std::string base = "prune-importance --model '" + (oracle::dir() / name).string() + "' --data '" + data_file(name).string() + "'";
    struct mode {
        const char* flags;
        const char* key;
    };
    for (const mode m : {mode{" --batch-size 2", "per_example"}, mode{" --abs per-batch --batch-size 2", "per_batch_2"},
                         mode{" --normalize layer+global", "per_example_layer_global"}}) {
        INFO(m.flags);
        const nlohmann::json out = run(base + m.flags);
        CHECK(worst(out["heads"], truth[m.key]["heads"]) <= 2e-5);
        CHECK(worst(out["mlps"], truth[m.key]["mlps"]) <= 2e-5);
        REQUIRE(out.contains("kv_groups"));
        CHECK(worst(out["kv_groups"], truth[m.key]["kv_groups"]) <= 2e-5);
    }
    const nlohmann::json gpt2 = run("prune-importance --model '" + (oracle::dir() / "gpt2_noprefix_f16").string() + "' --data '" +
                                    data_file("gpt2_noprefix_f16").string() + "'");
    CHECK(!gpt2.contains("kv_groups"));  // multi-head attention: K/V groups are the heads
    CHECK(gpt2["heads"].size() == 2);
}

namespace {

/// A copy of the case `from` with a byte-level BPE tokenizer.json (50 ids: the model's vocabulary)
/// trained on `text`, "<s>" put first by its post-processor; returns the directory.
fs::path with_tokenizer(const std::string& from, const std::string& text) {
    const fs::path d = oracle::dir() / (from + "_text");
    fs::remove_all(d);
    fs::copy(oracle::dir() / from, d, fs::copy_options::recursive);
    prune::text::bpe_trainer_options o;
    o.vocab_size = 50;
    o.min_frequency = 1;
    o.full_alphabet = false;
    o.special_tokens = {"<s>", "</s>"};
    o.bos_token = "<s>";
    prune::text::bpe_trainer t(o);
    t.add_text(text);
    t.save(t.train(), d / "tokenizer.json");
    return d;
}

fs::path write_text(const std::string& name, const std::string& text) {
    const fs::path p = oracle::dir() / name;
    std::ofstream(p) << text;
    return p;
}

/// Rows of {"input_ids": ...}, one per sequence.
fs::path write_ids(const std::string& name, const std::vector<std::vector<std::int32_t>>& rows) {
    std::string out;
    for (const auto& r : rows) out += nlohmann::json{{"input_ids", r}}.dump() + "\n";
    return write_text(name, out);
}

}  // namespace

// The text paths against the token-id path: a .txt file is the tokenizer's ids of the whole file
// (BOS first) cut here into non-overlapping windows of --context tokens, the short remainder
// dropped; a {"text": ...} row is the tokenizer's ids of that text. prune-eval on those ids as
// input_ids rows (checked against the oracle above) must give the same totals, bit for bit (same
// batches, same arithmetic). The tokenizer itself is checked against Hugging Face's in
// tests/text/test_bpe_reference.
TEST_CASE("prune-eval: .txt windows of --context and text rows are the tokenizer's ids", "[decoder][cli]") {
    const std::string text = "the cat sat on the mat. the dog sat on the log. a cat and a dog met on a mat.\n"
                             "the log was on the mat and the cat sat on the dog.\n";
    const fs::path model = with_tokenizer("llama_linear_rope", text);
    const prune::text::bpe_tokenizer tok = prune::text::bpe_tokenizer::from_file(model / "tokenizer.json");
    const std::vector<std::int32_t> ids = tok.encode(text);
    REQUIRE(ids.size() > 16);  // more than one window at the model's 16 positions
    REQUIRE(ids.front() == tok.token_to_id("<s>"));
    const fs::path txt = write_text("corpus.txt", text);
    for (const int context : {6, 16}) {
        INFO("context " << context);
        std::vector<std::vector<std::int32_t>> windows;
        for (std::size_t i = 0; i + static_cast<std::size_t>(context) <= ids.size(); i += static_cast<std::size_t>(context))
            windows.emplace_back(ids.begin() + static_cast<std::ptrdiff_t>(i), ids.begin() + static_cast<std::ptrdiff_t>(i) + context);
        const std::string flags = " --batch-size 2" + (context == 16 ? std::string() : " --context " + std::to_string(context));
        const nlohmann::json got = run("prune-eval --model '" + model.string() + "' --data '" + txt.string() + "'" + flags);
        const nlohmann::json want = run("prune-eval --model '" + model.string() + "' --data '" +
                                        write_ids("windows.jsonl", windows).string() + "' --batch-size 2");
        CHECK(got["sequences"].get<std::size_t>() == ids.size() / static_cast<std::size_t>(context));
        CHECK(got["tokens"].get<std::int64_t>() == static_cast<std::int64_t>(windows.size()) * (context - 1));
        CHECK(got["nll_total"].get<double>() == want["nll_total"].get<double>());
        CHECK(got["perplexity"].get<double>() == want["perplexity"].get<double>());
        CHECK(got["context"].get<int>() == context);  // the default is max_position_embeddings
    }
    const std::vector<std::string> lines = {"the cat sat on the mat.", "a dog met a log", "on the mat"};
    std::string rows;
    std::vector<std::vector<std::int32_t>> encoded;
    for (const auto& l : lines) {
        rows += nlohmann::json{{"text", l}}.dump() + "\n";
        encoded.push_back(tok.encode(l));
        CHECK(encoded.back().front() == tok.token_to_id("<s>"));
    }
    const nlohmann::json got = run("prune-eval --model '" + model.string() + "' --data '" + write_text("text.jsonl", rows).string() + "'");
    const nlohmann::json want = run("prune-eval --model '" + model.string() + "' --data '" + write_ids("encoded.jsonl", encoded).string() + "'");
    CHECK(got["tokens"] == want["tokens"]);
    CHECK(got["nll_total"].get<double>() == want["nll_total"].get<double>());
    CHECK(got["context"].is_null());
}
