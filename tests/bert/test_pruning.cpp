// Tests of prune/models/bert/pruning.hpp: a physically pruned model gives the gated full model's
// logits (1e-5), including a layer that loses every head and layers that lose their MLP;
// config.pruned_heads records original indices across repeated pruning.
#include "reference.hpp"

#include <prune/models/bert/pruning.hpp>

#include <catch2/catch.hpp>

using namespace prune::bert;
using prune::structure_mask;

namespace {
packed_batch sample_batch(int vocab) {
    packed_batch batch;
    std::mt19937_64 rng(3);
    for (int b = 0; b < 5; ++b) {
        std::vector<std::int32_t> ids(static_cast<std::size_t>(1 + b * 3));
        for (auto& id : ids) id = static_cast<std::int32_t>(rng() % static_cast<std::uint64_t>(vocab));
        batch.add(ids);
    }
    return batch;
}
}  // namespace

TEST_CASE("physically pruned model == gated full model (1e-5), empty layers included") {
    config cfg = config::make(3, 32, 4, 48, 40, 2);
    cfg.max_position_embeddings = 20;
    const weights full = random_weights(cfg, 21, 0.3f);
    structure_mask mask{prune::group_mask::from_rows({{1, 0, 1, 0}, {0, 0, 0, 0}, {0, 1, 1, 1}}),
                        prune::group_mask::from_rows({{0}, {1}, {0}})};
    const gates g = gates::from_mask(mask, full);
    const packed_batch batch = sample_batch(cfg.vocab_size);
    workspace ws(2);
    forward_options opt;
    opt.gate = &g;
    const matrix gated = classify(full, batch, ws, opt);
    weights pruned = full;
    REQUIRE(prune_structure(pruned, mask) == 2 + 4 + 1 + 2);
    REQUIRE(pruned.layers[1].heads == 0);
    REQUIRE(pruned.layers[1].qkv.weight.rows() == 0);
    REQUIRE(pruned.layers[0].head_ids == std::vector<int>{0, 2});
    REQUIRE_FALSE(pruned.layers[0].has_mlp());
    REQUIRE(pruned.cfg.pruned_heads == std::vector<std::vector<int>>{{1, 3}, {0, 1, 2, 3}, {0}});
    REQUIRE(pruned.cfg.pruned_mlps == std::vector<bool>{true, false, true});
    const matrix physical = classify(pruned, batch, ws);
    REQUIRE((physical - gated).cwiseAbs().maxCoeff() < 1e-5f);
    forward_options full_rows;
    full_rows.cls_only = false;
    REQUIRE((classify(pruned, batch, ws, full_rows) - gated).cwiseAbs().maxCoeff() < 1e-5f);
    REQUIRE(present_structure(pruned) == mask);

    // Pruning again with a mask over the kept heads maps back to original indices.
    structure_mask again{prune::group_mask::from_rows({{0, 1}, {}, {1, 0, 1}}), {}};
    weights twice = pruned;
    prune_structure(twice, again);
    REQUIRE(twice.cfg.pruned_heads == std::vector<std::vector<int>>{{0, 1, 3}, {0, 1, 2, 3}, {0, 2}});
    REQUIRE(twice.layers[2].head_ids == std::vector<int>{1, 3});
    gates g2 = gates::from_mask(present_structure(twice), full);
    opt.gate = &g2;
    REQUIRE((classify(twice, batch, ws) - classify(full, batch, ws, opt)).cwiseAbs().maxCoeff() < 1e-5f);
}

TEST_CASE("drop_empty_attention_bias reproduces LN(x) for a layer without heads") {
    config cfg = config::make(1, 16, 2, 24, 30, 2);
    cfg.max_position_embeddings = 8;
    weights w = random_weights(cfg, 5, 0.3f);
    pruning_options opt;
    opt.drop_empty_attention_bias = true;
    remove_heads(w, 0, {0, 1}, opt);
    REQUIRE(w.layers[0].attention_output.bias.isZero());
    weights keep = random_weights(cfg, 5, 0.3f);
    remove_heads(keep, 0, {0, 1});
    REQUIRE(keep.layers[0].attention_output.bias.cwiseAbs().maxCoeff() > 0.0f);
    REQUIRE_THROWS_AS(remove_heads(keep, 0, {0}), prune::value_error);
    REQUIRE_THROWS_AS(remove_mlp(keep, 1), prune::value_error);
}

// parameter_count (what a loader checks against the checkpoint before allocating) is the number
// of elements allocate() holds, counted here over the allocated tensors: full, pruned (heads and
// MLPs removed, a layer without heads) and without the classification head.
TEST_CASE("parameter_count equals the elements of the allocated weights, pruned or not") {
    config cfg = config::make(3, 32, 4, 48, 40, 2);
    weights w = random_weights(cfg, 1);
    auto allocated = [](weights& x) {
        double n = 0.0;
        for (const auto& p : parameters(x)) n += static_cast<double>(p.size());
        return n;
    };
    CHECK(parameter_count(cfg) == allocated(w));
    structure_mask mask{prune::group_mask::from_rows({{1, 0, 1, 0}, {0, 0, 0, 0}, {0, 1, 1, 1}}),
                        prune::group_mask::from_rows({{0}, {1}, {0}})};
    prune_structure(w, mask);
    CHECK(parameter_count(w.cfg) == allocated(w));
    weights bare = allocate(cfg, false);
    CHECK(parameter_count(cfg, false) == allocated(bare));
    CHECK(parameter_count(cfg, false) < parameter_count(cfg));
}
