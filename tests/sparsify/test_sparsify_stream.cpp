// decoder::layer_stream, the model prune-sparsify prunes from its checkpoint one layer at a time,
// against the in-memory form it replaces: the whole model loaded as float (load_model) and
// calibration_run, pruned by the same prune_layers in this process. On a Llama with GQA saved in
// F16 and a GPT-2 (Conv1D weights, F32) the masks and the pruned weights are the same bit for bit
// for Wanda, SparseGPT, magnitude per matrix and the global magnitude group (whose scores the
// stream reads from the checkpoint's bytes, transposed for Conv1D); the evaluation batches it runs
// through each layer give forward's NLL on the loaded model before pruning and on the pruned one
// after, bit for bit. The stream reads one layer at a time, in order: asking for an earlier layer
// is refused. On one local rank (calibration_options::comm, the data-parallel path that reduces
// the sums x x^T round by round) SparseGPT and magnitude + reconstruct prune as without comm, bit
// for bit: both paths add the batches' products in batch order.
#include <prune/io/safetensors.hpp>
#include <prune/models/decoder/calibration.hpp>
#include <prune/models/decoder/checkpoint.hpp>
#include <prune/models/decoder/forward.hpp>
#include <prune/models/decoder/layer_stream.hpp>
#include <prune/mpi/communicator.hpp>
#include <prune/sparsify/calibrate.hpp>

#include <catch2/catch.hpp>

#include "../support/decoder_fixtures.hpp"
#include "../support/files.hpp"
#include "support.hpp"

#include <map>
#include <string>
#include <vector>

namespace {

namespace dec = prune::decoder;
namespace sp = prune::sparsify;

using prune_test::small_batches;

sp::calibration_options options_of(const std::string& method, const std::string& group) {
    sp::calibration_options o;
    o.how = sp::parse_method(method);
    o.target.sparsity = 0.5;
    o.target.group = sp::parse_comparison_group(group);
    return o;
}

/// Each linear's pruned weight by name, as the model holds it when prune_layers is done with its layer.
using weight_copies = std::map<std::string, std::vector<float>>;

template <class Model>
void copy_on_layer(Model& model, sp::calibration_options& o, weight_copies& out) {
    o.on_layer = [&model, &out](std::size_t l) {
        for (const auto& x : model.linears(l)) out[x.name].assign(x.weight.data().begin(), x.weight.data().end());
    };
}

/// The NLL of every batch by forward on `w`.
std::vector<dec::forward_result> nll_of(const dec::weights& w, const std::vector<dec::sequences>& batches) {
    dec::workspace ws(1);
    std::vector<dec::forward_result> out;
    for (const auto& b : batches) out.push_back(dec::forward(w, b, ws));
    return out;
}

void check_same_nll(const std::vector<dec::forward_result>& a, const std::vector<dec::forward_result>& b) {
    REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        CHECK(a[i].nll == b[i].nll);
        CHECK(a[i].predicted == b[i].predicted);
    }
}

/// Prunes the model in `dir` both ways and compares masks, weights and evaluations.
void compare(const std::filesystem::path& dir, const std::string& method, const std::string& group) {
    INFO(method << " " << group);
    dec::weights memory = dec::load_model(dir);
    const std::vector<dec::sequences> calibration = small_batches(3, memory.cfg.vocab_size);
    const std::vector<dec::sequences> eval = small_batches(2, memory.cfg.vocab_size);
    const std::vector<dec::forward_result> dense = nll_of(memory, eval);
    dec::calibration_run run(memory, calibration, 1);
    sp::calibration_options a = options_of(method, group);
    a.sparsegpt.pool = &run.pool();
    weight_copies in_memory;
    copy_on_layer(run, a, in_memory);
    const sp::calibration_result expected = sp::prune_layers(run, a);

    const dec::opened_model opened = dec::open_model(dir);
    dec::layer_stream stream(opened.ckpt, opened.cfg, calibration, 1, opened.where);
    stream.evaluate(eval);
    sp::calibration_options b = options_of(method, group);
    b.sparsegpt.pool = &stream.pool();
    weight_copies streamed;
    copy_on_layer(stream, b, streamed);
    const sp::calibration_result got = sp::prune_layers(stream, b);
    const dec::layer_stream::evaluation evaluation = stream.finish();

    CHECK(got.tokens == expected.tokens);
    REQUIRE(got.linears.size() == expected.linears.size());
    for (std::size_t t = 0; t < got.linears.size(); ++t) {
        INFO(expected.linears[t].name);
        CHECK(got.linears[t].name == expected.linears[t].name);
        CHECK(got.linears[t].mask == expected.linears[t].mask);
        CHECK(streamed.at(expected.linears[t].name) == in_memory.at(expected.linears[t].name));
    }
    check_same_nll(evaluation.dense, dense);
    check_same_nll(evaluation.pruned, nll_of(memory, eval));
}

}  // namespace

TEST_CASE("layer_stream prunes as load_model + calibration_run do, bit for bit", "[sparsify][stream]") {
    prune_test::temp_dir dir("prune_sparsify_stream");
    const dec::config llama = prune_test::small_llama();
    const dec::config gpt2 = prune_test::small_gpt2();
    dec::save_model(dec::random_weights(llama, 5, 0.2f), dir.path() / "llama", prune::io::dtype::F16);
    dec::save_model(dec::random_weights(gpt2, 6, 0.2f), dir.path() / "gpt2");
    for (const char* model : {"llama", "gpt2"}) {
        INFO(model);
        compare(dir.path() / model, "wanda", "row");
        compare(dir.path() / model, "sparsegpt", "row");
        compare(dir.path() / model, "magnitude", "matrix");
        compare(dir.path() / model, "magnitude", "global");
    }
}

TEST_CASE("layer_stream holds one layer at a time and takes the layers in order", "[sparsify][stream]") {
    prune_test::temp_dir dir("prune_sparsify_stream_order");
    const dec::config cfg = dec::config_from_json(prune::io::parse_json(
        R"({"model_type": "llama", "hidden_size": 16, "num_attention_heads": 2, "num_hidden_layers": 3,
            "intermediate_size": 24, "vocab_size": 30, "max_position_embeddings": 16})", "cfg"));
    dec::save_model(dec::random_weights(cfg, 7), dir.path() / "lm");
    const dec::opened_model opened = dec::open_model(dir.path() / "lm");
    dec::layer_stream stream(opened.ckpt, opened.cfg, small_batches(2, 30), 1, opened.where);
    CHECK(stream.weight_scores(2).size() == 7);  // read from the checkpoint: no layer in memory yet
    const auto first = stream.linears(1);
    CHECK(first.front().weight.data().data() != nullptr);
    const auto second = stream.linears(2);
    CHECK(second.front().weight.data().data() != nullptr);
    CHECK_THAT(sparsify_test::error_of([&] { static_cast<void>(stream.linears(1)); }),
               Catch::Contains("layer 1 asked for after layer 2 (expected layers in order"));
}

namespace {

/// The masks and pruned weights of `method` (with `reconstruct`) on the model in `dir`, through comm (may be null).
std::pair<sp::calibration_result, weight_copies> pruned_with(const std::filesystem::path& dir, const std::string& method,
                                                            bool reconstruct, prune::mpi::communicator* comm) {
    dec::weights w = dec::load_model(dir);
    dec::calibration_run run(w, small_batches(3, w.cfg.vocab_size), 1);
    sp::calibration_options o = options_of(method, "row");
    o.reconstruct = reconstruct;
    o.sparsegpt.pool = &run.pool();
    o.comm = comm;
    weight_copies weights;
    copy_on_layer(run, o, weights);
    sp::calibration_result result = sp::prune_layers(run, o);
    return {std::move(result), std::move(weights)};
}

}  // namespace

TEST_CASE("one local rank: the sums x x^T reduced round by round are collect's bits", "[sparsify][stream][mpi]") {
    prune_test::temp_dir dir("prune_sparsify_local_rank");
    dec::save_model(dec::random_weights(prune_test::small_llama(), 5, 0.2f), dir.path() / "llama");
    prune::mpi::local_communicator local;
    for (const auto& [method, reconstruct] : {std::pair{"sparsegpt", false}, std::pair{"magnitude", true}}) {
        INFO(method << (reconstruct ? " + reconstruct" : ""));
        const auto alone = pruned_with(dir.path() / "llama", method, reconstruct, nullptr);
        const auto ranked = pruned_with(dir.path() / "llama", method, reconstruct, &local);
        REQUIRE(ranked.first.linears.size() == alone.first.linears.size());
        CHECK(ranked.first.tokens == alone.first.tokens);
        for (std::size_t t = 0; t < alone.first.linears.size(); ++t) {
            INFO(alone.first.linears[t].name);
            CHECK(ranked.first.linears[t].mask == alone.first.linears[t].mask);
        }
        CHECK(ranked.second == alone.second);
        CHECK(alone.second != pruned_with(dir.path() / "llama", "magnitude", false, nullptr).second);  // it reconstructed
    }
}
