// Tests of prune/models/bert/forward.hpp (and config, weights, batch, kernels): against the naive
// double-precision reference in reference.hpp (written from HF's modeling_bert.py), closed
// forms for gated-off heads and MLPs, and invariances (packing, cls-only, threads, back-ends).
// The PyTorch oracle lives in test_oracle.cpp.
#include "reference.hpp"

#include <prune/models/bert/forward.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <random>

using namespace prune::bert;

namespace {

config small_config(int layers = 2) {
    config c = config::make(layers, 24, 3, 40, 50, 3);
    c.max_position_embeddings = 16;
    c.type_vocab_size = 2;
    c.layer_norm_eps = 1e-12f;
    return c;
}

struct rows_input {
    std::vector<std::vector<int>> ids, types, mask;
};

rows_input random_rows(int batch, int vocab, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    rows_input in;
    const int width = 9;
    for (int b = 0; b < batch; ++b) {
        const int len = 1 + static_cast<int>(rng() % width);
        std::vector<int> ids(width, 0), types(width, 0), mask(width, 0);
        for (int t = 0; t < len; ++t) {
            ids[static_cast<std::size_t>(t)] = static_cast<int>(rng() % static_cast<std::uint64_t>(vocab));
            types[static_cast<std::size_t>(t)] = t >= len / 2 ? 1 : 0;
            mask[static_cast<std::size_t>(t)] = 1;
        }
        in.ids.push_back(ids);
        in.types.push_back(types);
        in.mask.push_back(mask);
    }
    return in;
}

packed_batch pack(const rows_input& in) {
    packed_batch batch;
    for (std::size_t b = 0; b < in.ids.size(); ++b) {
        std::vector<std::int32_t> ids(in.ids[b].begin(), in.ids[b].end());
        std::vector<std::int32_t> types(in.types[b].begin(), in.types[b].end());
        std::vector<std::int32_t> mask(in.mask[b].begin(), in.mask[b].end());
        batch.add(ids, types, mask);
    }
    return batch;
}

void require_close(const Eigen::Map<const matrix>& got, const bert_reference::rows& want, double tol) {
    REQUIRE(got.rows() == static_cast<Eigen::Index>(want.size()));
    for (std::size_t b = 0; b < want.size(); ++b) {
        REQUIRE(got.cols() == static_cast<Eigen::Index>(want[b].size()));
        for (std::size_t c = 0; c < want[b].size(); ++c) {
            INFO("row " << b << " col " << c);
            REQUIRE(std::abs(got(static_cast<Eigen::Index>(b), static_cast<Eigen::Index>(c)) - want[b][c]) <= tol);
        }
    }
}

}  // namespace

TEST_CASE("forward matches the naive double reference, with and without gates") {
    const config cfg = small_config();
    const weights w = random_weights(cfg, 7, 0.3f);
    const auto in = random_rows(6, cfg.vocab_size, 11);
    const packed_batch batch = pack(in);
    gates g;
    g.heads = {{1.0f, 0.0f, 0.5f}, {0.0f, 1.0f, 1.0f}};
    g.mlps = {0.0f, 0.7f};
    for (auto backend : {prune::nn::gemm_backend::blas, prune::nn::gemm_backend::eigen}) {
        for (int threads : {1, 2}) {
            workspace ws(threads, backend, backend);
            INFO("threads " << threads << " backend " << static_cast<int>(backend));
            require_close(classify(w, batch, ws), bert_reference::logits(w, in.ids, in.types, in.mask, gates{}), 2e-5);
            forward_options opt;
            opt.gate = &g;
            require_close(classify(w, batch, ws, opt), bert_reference::logits(w, in.ids, in.types, in.mask, g), 2e-5);
            opt.cls_only = false;
            require_close(classify(w, batch, ws, opt), bert_reference::logits(w, in.ids, in.types, in.mask, g), 2e-5);
        }
    }
}

TEST_CASE("a layer with every head and its MLP gated off gives LN(LN(x + b_o))") {
    const config cfg = small_config(1);
    const weights w = random_weights(cfg, 3, 0.3f);
    packed_batch batch;
    const std::vector<std::int32_t> ids{4, 9, 17};
    batch.add(ids);
    gates g;
    g.heads = {{0.0f, 0.0f, 0.0f}};
    g.mlps = {0.0f};
    workspace ws(2);
    forward_options opt;
    opt.gate = &g;
    opt.cls_only = false;
    encode(w, batch, ws, opt);
    const auto out = ws.hidden();
    for (int t = 0; t < 3; ++t) {
        Eigen::ArrayXd x = (w.word_embeddings.row(ids[static_cast<std::size_t>(t)]) + w.position_embeddings.row(t) +
                            w.token_type_embeddings.row(0)).transpose().cast<double>().array();
        auto ln = [&](Eigen::ArrayXd v, const layer_norm& n) {
            const double mean = v.mean();
            const double var = (v - mean).square().mean();
            return Eigen::ArrayXd((v - mean) / std::sqrt(var + 1e-12) * n.weight.cast<double>().array() +
                                  n.bias.cast<double>().array());
        };
        x = ln(x, w.embedding_norm);
        Eigen::ArrayXd a = ln(x + w.layers[0].attention_output.bias.cast<double>().array(), w.layers[0].attention_norm);
        Eigen::ArrayXd y = ln(a, w.layers[0].output_norm);
        for (int c = 0; c < cfg.hidden_size; ++c) {
            REQUIRE(std::abs(out(t, c) - y[c]) < 1e-5);
        }
    }
}

TEST_CASE("packing drops padding: padded rows, reordered rows and single rows agree") {
    const config cfg = small_config();
    const weights w = random_weights(cfg, 5, 0.3f);
    auto in = random_rows(5, cfg.vocab_size, 2);
    // A row whose attention mask has a hole (HF still uses the original positions).
    in.mask[0] = {1, 1, 0, 1, 0, 0, 0, 0, 0};
    in.ids[0][3] = 7;
    workspace ws(2);
    const matrix all = classify(w, pack(in), ws);
    for (std::size_t b = 0; b < in.ids.size(); ++b) {
        rows_input one;
        one.ids = {in.ids[b]};
        one.types = {in.types[b]};
        one.mask = {in.mask[b]};
        const matrix single = classify(w, pack(one), ws);
        REQUIRE((single.row(0) - all.row(static_cast<Eigen::Index>(b))).cwiseAbs().maxCoeff() < 1e-5f);
    }
    require_close(classify(w, pack(in), ws), bert_reference::logits(w, in.ids, in.types, in.mask, gates{}), 2e-5);
}

TEST_CASE("the training cache records activations consistent with the output") {
    const config cfg = small_config();
    const weights w = random_weights(cfg, 9, 0.3f);
    const auto in = random_rows(3, cfg.vocab_size, 4);
    const packed_batch batch = pack(in);
    workspace ws(2);
    const matrix plain = classify(w, batch, ws);
    forward_cache cache;
    forward_options opt;
    opt.cache = &cache;
    const matrix cached = classify(w, batch, ws, opt);
    REQUIRE((plain - cached).cwiseAbs().maxCoeff() < 1e-5f);
    REQUIRE(cache.layers.size() == 2);
    const auto T = batch.tokens();
    for (const auto& lc : cache.layers) {
        REQUIRE(lc.input.rows() == T);
        REQUIRE(lc.qkv.cols() == 3 * 24);
        REQUIRE(lc.probs.size() == 3u * 3u);
        for (std::size_t i = 0; i < lc.probs.size(); ++i) {
            REQUIRE(std::abs(lc.probs[i].row(0).sum() - 1.0f) < 1e-5f);
        }
        REQUIRE(lc.intermediate_pre.cols() == 40);
        REQUIRE(std::abs(kernels::gelu(lc.intermediate_pre(1, 3)) - lc.intermediate_act(1, 3)) < 1e-6f);
    }
    REQUIRE((cache.layers[1].input - cache.layers[0].output_sum).cwiseAbs().maxCoeff() > 0.0f);
    REQUIRE(cache.pooled.rows() == batch.sequences());
}

TEST_CASE("erf approximation and GELU against std::erf") {
    for (float x = -6.0f; x <= 6.0f; x += 0.01f) {
        REQUIRE(std::abs(prune::nn::erf_approx(x) - std::erf(x)) < 1e-6f);
        const double exact = 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
        REQUIRE(std::abs(kernels::gelu(x) - exact) < 2e-6);
    }
}

TEST_CASE("bad batches and configs are rejected with clear errors") {
    const config cfg = small_config();
    const weights w = random_weights(cfg, 1);
    workspace ws(1);
    packed_batch batch;
    const std::vector<std::int32_t> bad_id{1, 50};
    batch.add(bad_id);
    REQUIRE_THROWS_AS(classify(w, batch, ws), prune::value_error);
    packed_batch long_batch;
    const std::vector<std::int32_t> long_ids(17, 1);
    long_batch.add(long_ids);
    REQUIRE_THROWS_WITH(classify(w, long_batch, ws), Catch::Contains("max_position_embeddings"));
    packed_batch masked;
    const std::vector<std::int32_t> ids{1, 2};
    const std::vector<std::int32_t> zero_mask{0, 0};
    REQUIRE_THROWS_AS(masked.add(ids, {}, zero_mask), prune::value_error);
    REQUIRE_THROWS_AS(config::make(2, 25, 3, 40), prune::format_error);
    nlohmann::json j = cfg.to_json();
    j["num_attention_heads"] = 5;
    REQUIRE_THROWS_WITH(config::from_json(j), Catch::Contains("not divisible"));
}

TEST_CASE("config.json is read by the library's JSON reader: duplicate keys are refused") {
    const std::string text = small_config().to_json().dump();
    REQUIRE(parse_config(text, "model/config.json").hidden_size == small_config().hidden_size);
    // The same text with hidden_size given twice (a second, different value last): nlohmann::json
    // alone keeps the last one silently; io::parse_json names the key.
    const std::string twice = "{\"hidden_size\": 64, " + text.substr(1);
    REQUIRE_THROWS_AS(parse_config(twice, "model/config.json"), prune::format_error);
    REQUIRE_THROWS_WITH(parse_config(twice, "model/config.json"),
                        Catch::Contains("model/config.json") && Catch::Contains("'hidden_size' more than once"));
    const std::string nested = R"({"id2label": {"0": "a", "0": "b"}, )" + text.substr(1);
    REQUIRE_THROWS_WITH(parse_config(nested, "c.json"), Catch::Contains("'0' more than once"));
}

TEST_CASE("config round-trips through JSON with pruned heads and MLPs") {
    config cfg = small_config(3);
    cfg.pruned_heads = {{}, {0, 2}, {0, 1, 2}};
    cfg.pruned_mlps = {false, true, false};
    cfg.extra["custom"] = 42;
    const config back = config::from_json(cfg.to_json());
    REQUIRE(back.pruned_heads == cfg.pruned_heads);
    REQUIRE(back.pruned_mlps == cfg.pruned_mlps);
    REQUIRE(back.heads_in_layer(1) == 1);
    REQUIRE(back.kept_heads(1) == std::vector<int>{1});
    REQUIRE(back.ffn_in_layer(1) == 0);
    REQUIRE(back.extra["custom"] == 42);
    REQUIRE(cfg.to_json()["pruned_heads"]["1"] == nlohmann::json::array({0, 2}));
}
