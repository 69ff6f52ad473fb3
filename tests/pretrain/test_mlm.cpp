// Tests for prune/models/bert/mlm.hpp: the MLM head's loss and gradients against central finite
// differences (double) and against a PyTorch autograd oracle (tests/pretrain/mlm_oracle.py,
// float64, BertForMaskedLM's head written out by hand: transformers is not installed); the
// masking rule's counts, 80/10/10 proportions, special tokens, and determinism.
#include <prune/models/bert/mlm.hpp>

#include "oracle.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <set>

using namespace prune::bert;

namespace {

struct head_case {
    int H = 8, V = 13, T = 9;
    mlm_matrix<double> embeddings, hidden;
    basic_mlm_head<double> head;
    std::vector<std::int64_t> positions{1, 3, 4, 8, 3};  // 3 twice: gradients must add up
    std::vector<std::int32_t> labels{0, 5, 12, 7, 2};
    float eps = 1e-12f;

    explicit head_case(unsigned seed) {
        std::mt19937_64 rng(seed);
        std::normal_distribution<double> n(0.0, 0.7);
        auto fill = [&](auto& m) { for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = n(rng); };
        embeddings.resize(V, H);
        hidden.resize(T, H);
        head = zero_mlm_head<double>(H, V);
        fill(embeddings);
        fill(hidden);
        fill(head.transform_weight);
        fill(head.transform_bias);
        fill(head.norm_weight);
        fill(head.norm_bias);
        fill(head.decoder_bias);
    }
    double loss() {
        basic_mlm_workspace<double> ws;
        return mlm_loss<double>(embeddings, head, hidden.data(), T, positions, labels, eps, ws);
    }
};

}  // namespace

TEST_CASE("MLM head gradients match central finite differences (double)", "[mlm]") {
    head_case c(3);
    basic_mlm_workspace<double> ws;
    auto head_grads = zero_mlm_head<double>(c.H, c.V);
    mlm_matrix<double> emb_grads = mlm_matrix<double>::Constant(c.V, c.H, 0.25);  // added to, not overwritten
    mlm_matrix<double> hidden_grads = mlm_matrix<double>::Constant(c.T, c.H, 9.0);  // overwritten
    const double loss = mlm_loss<double>(c.embeddings, c.head, c.hidden.data(), c.T, c.positions, c.labels, c.eps, ws,
                                         &head_grads, &emb_grads, hidden_grads.data());
    REQUIRE(loss == Approx(c.loss()).epsilon(1e-14));
    emb_grads.array() -= 0.25;
    auto check = [&](auto& param, const auto& grad, const char* what) {
        for (Eigen::Index i = 0; i < param.size(); ++i) {
            const double keep = param.data()[i];
            const double h = 1e-6;
            param.data()[i] = keep + h;
            const double up = c.loss();
            param.data()[i] = keep - h;
            const double down = c.loss();
            param.data()[i] = keep;
            const double fd = (up - down) / (2 * h);
            INFO(what << "[" << i << "] analytic " << grad.data()[i] << " fd " << fd);
            CHECK(grad.data()[i] == Approx(fd).margin(1e-8).epsilon(1e-6));
        }
    };
    check(c.head.transform_weight, head_grads.transform_weight, "transform.dense.weight");
    check(c.head.transform_bias, head_grads.transform_bias, "transform.dense.bias");
    check(c.head.norm_weight, head_grads.norm_weight, "transform.LayerNorm.weight");
    check(c.head.norm_bias, head_grads.norm_bias, "transform.LayerNorm.bias");
    check(c.head.decoder_bias, head_grads.decoder_bias, "predictions.bias");
    check(c.embeddings, emb_grads, "word_embeddings (tied decoder)");
    check(c.hidden, hidden_grads, "hidden");
    // Rows never masked get exactly zero.
    for (int r : {0, 2, 5, 6, 7}) CHECK(hidden_grads.row(r).cwiseAbs().maxCoeff() == 0.0);
}

TEST_CASE("MLM head loss and gradients match PyTorch within 1e-4", "[mlm][torch]") {
    for (const bool use_float : {false, true}) {
        head_case c(11);
        c.eps = 1e-12f;
        nlohmann::json spec;
        spec["mode"] = "head";
        spec["layer_norm_eps"] = c.eps;
        spec["positions"] = c.positions;
        spec["labels"] = c.labels;
        auto& t = spec["tensors"];
        t["hidden"] = pretrain_test::tensor_json(c.hidden, {c.T, c.H});
        t["bert.embeddings.word_embeddings.weight"] = pretrain_test::tensor_json(c.embeddings, {c.V, c.H});
        t["cls.predictions.transform.dense.weight"] = pretrain_test::tensor_json(c.head.transform_weight, {c.H, c.H});
        t["cls.predictions.transform.dense.bias"] = pretrain_test::tensor_json(c.head.transform_bias, {c.H});
        t["cls.predictions.transform.LayerNorm.weight"] = pretrain_test::tensor_json(c.head.norm_weight, {c.H});
        t["cls.predictions.transform.LayerNorm.bias"] = pretrain_test::tensor_json(c.head.norm_bias, {c.H});
        t["cls.predictions.bias"] = pretrain_test::tensor_json(c.head.decoder_bias, {c.V});
        const auto want = pretrain_test::run_oracle(spec, use_float ? "headf" : "headd");
        const auto& g = want["grads"];
        auto run = [&](auto zero) {
            using S = decltype(zero);
            const auto head = c.head.template cast<S>();
            const mlm_matrix<S> emb = c.embeddings.template cast<S>();
            const mlm_matrix<S> hid = c.hidden.template cast<S>();
            basic_mlm_workspace<S> ws;
            auto hg = zero_mlm_head<S>(c.H, c.V);
            mlm_matrix<S> eg = mlm_matrix<S>::Zero(c.V, c.H);
            mlm_matrix<S> dh(c.T, c.H);
            const double loss = mlm_loss<S>(emb, head, hid.data(), c.T, c.positions, c.labels, c.eps, ws, &hg, &eg,
                                            dh.data());
            CHECK(loss == Approx(want["loss"].get<double>()).epsilon(1e-4));
            const double tol = 1e-4;
            CHECK(pretrain_test::relative_error(hg.transform_weight, g["cls.predictions.transform.dense.weight"]) < tol);
            CHECK(pretrain_test::relative_error(hg.transform_bias, g["cls.predictions.transform.dense.bias"]) < tol);
            CHECK(pretrain_test::relative_error(hg.norm_weight, g["cls.predictions.transform.LayerNorm.weight"]) < tol);
            CHECK(pretrain_test::relative_error(hg.norm_bias, g["cls.predictions.transform.LayerNorm.bias"]) < tol);
            CHECK(pretrain_test::relative_error(hg.decoder_bias, g["cls.predictions.bias"]) < tol);
            CHECK(pretrain_test::relative_error(eg, g["bert.embeddings.word_embeddings.weight"]) < tol);
            CHECK(pretrain_test::relative_error(dh, g["hidden"]) < tol);
        };
        if (use_float) run(0.0f); else run(0.0);
    }
}

TEST_CASE("MLM head rejects bad positions, labels and shapes", "[mlm]") {
    head_case c(5);
    basic_mlm_workspace<double> ws;
    std::vector<std::int64_t> bad_pos{0, 9};
    std::vector<std::int32_t> two{1, 2};
    CHECK_THROWS_AS(mlm_loss<double>(c.embeddings, c.head, c.hidden.data(), c.T, bad_pos, two, c.eps, ws),
                    prune::value_error);
    std::vector<std::int64_t> pos{0, 1};
    std::vector<std::int32_t> bad_label{1, 13};
    CHECK_THROWS_AS(mlm_loss<double>(c.embeddings, c.head, c.hidden.data(), c.T, pos, bad_label, c.eps, ws),
                    prune::value_error);
    std::vector<std::int32_t> one{1};
    CHECK_THROWS_AS(mlm_loss<double>(c.embeddings, c.head, c.hidden.data(), c.T, pos, one, c.eps, ws),
                    prune::shape_error);
    mlm_matrix<double> small(5, c.H);
    CHECK_THROWS_AS(mlm_loss<double>(small, c.head, c.hidden.data(), c.T, pos, two, c.eps, ws), prune::shape_error);
}

namespace {
// A batch of sequences [CLS] w... [SEP] (w... [SEP]) over ids 5..V-1; specials are 0..4.
packed_batch make_batch(int sequences, unsigned seed, int vocab) {
    std::mt19937 rng(seed);
    packed_batch b;
    for (int s = 0; s < sequences; ++s) {
        const int len = std::uniform_int_distribution<int>(1, 40)(rng);
        std::vector<std::int32_t> ids{2};
        for (int i = 0; i < len; ++i) ids.push_back(std::uniform_int_distribution<int>(5, vocab - 1)(rng));
        ids.push_back(3);
        if (s % 3 == 0) {
            ids.push_back(1);  // [UNK] is special too
            ids.push_back(7);
            ids.push_back(3);
        }
        b.add(ids);
    }
    return b;
}
}  // namespace

TEST_CASE("masking: counts per sequence, 80/10/10, specials untouched, deterministic", "[mlm][masking]") {
    const int V = 1000;
    const std::vector<std::int32_t> specials{0, 1, 2, 3, 4};
    const token_masker masker(V, specials, 4);
    const packed_batch original = make_batch(3000, 1, V);
    packed_batch batch = original;
    const mlm_targets t = masker.mask(batch, 42);
    REQUIRE(t.positions.size() == t.labels.size());
    // Per sequence: exactly max(1, round(0.15 n)) of its n maskable tokens (Google BERT's count rule).
    std::size_t k = 0, maskable_total = 0;
    for (int s = 0; s < original.sequences(); ++s) {
        std::size_t n = 0, chosen = 0;
        for (auto r = original.offsets[s]; r < original.offsets[s + 1]; ++r) {
            n += masker.is_special(original.token_ids[r]) ? 0 : 1;
        }
        while (k < t.positions.size() && t.positions[k] < original.offsets[s + 1]) {
            CHECK(t.positions[k] >= original.offsets[s]);
            ++chosen;
            ++k;
        }
        maskable_total += n;
        CHECK(chosen == std::max<std::size_t>(1, static_cast<std::size_t>(std::llround(0.15 * static_cast<double>(n)))));
    }
    CHECK(k == t.positions.size());
    const double rate = static_cast<double>(t.positions.size()) / static_cast<double>(maskable_total);
    CHECK(rate > 0.14);
    CHECK(rate < 0.17);  // rounding up at short lengths and the minimum of 1 lift it a little
    // Labels are the original tokens, never special; positions strictly ascending.
    std::size_t masked = 0, random = 0, kept = 0;
    for (std::size_t i = 0; i < t.positions.size(); ++i) {
        const auto r = static_cast<std::size_t>(t.positions[i]);
        if (i > 0) CHECK(t.positions[i] > t.positions[i - 1]);
        CHECK(t.labels[i] == original.token_ids[r]);
        CHECK_FALSE(masker.is_special(t.labels[i]));
        const auto now = batch.token_ids[r];
        if (now == 4) ++masked;
        else if (now == original.token_ids[r]) ++kept;
        else {
            ++random;
            CHECK_FALSE(masker.is_special(now));
        }
    }
    // Binomial proportions: n ~ 9000 draws, 5 standard deviations ~ 0.02 for 0.8, 0.016 for 0.1.
    const double n = static_cast<double>(t.positions.size());
    CHECK(masked / n == Approx(0.8).margin(0.02));
    CHECK(random / n == Approx(0.1).margin(0.016));
    CHECK(kept / n == Approx(0.1).margin(0.016));  // + 1/995 chance the random draw is the original
    // Unchosen tokens are untouched.
    std::set<std::int64_t> chosen(t.positions.begin(), t.positions.end());
    for (std::size_t r = 0; r < original.token_ids.size(); ++r) {
        if (!chosen.count(static_cast<std::int64_t>(r))) CHECK(batch.token_ids[r] == original.token_ids[r]);
    }
    // Same seed, same result; another seed, another one.
    packed_batch again = original;
    const mlm_targets t2 = masker.mask(again, 42);
    CHECK(t2.positions == t.positions);
    CHECK(t2.labels == t.labels);
    CHECK(again.token_ids == batch.token_ids);
    packed_batch other = original;
    const mlm_targets t3 = masker.mask(other, 43);
    CHECK(t3.positions != t.positions);
}

TEST_CASE("masking: a sequence of specials only gets no target; bad options throw", "[mlm][masking]") {
    const std::vector<std::int32_t> specials{0, 1, 2, 3, 4};
    const token_masker masker(10, specials, 4);
    packed_batch b;
    b.add(std::vector<std::int32_t>{2, 3});
    b.add(std::vector<std::int32_t>{2, 9, 3});
    const auto t = masker.mask(b, 1);
    REQUIRE(t.positions.size() == 1);  // at least one in the second sequence
    CHECK(t.positions[0] == 3);
    CHECK(t.labels[0] == 9);
    CHECK_THROWS_AS(token_masker(10, specials, 12), prune::value_error);
    CHECK_THROWS_AS(token_masker(5, specials, 4), prune::value_error);  // nothing left to draw
    masking_options bad;
    bad.mask_fraction = 0.95;
    CHECK_THROWS_AS(token_masker(10, specials, 4, bad), prune::value_error);
}
