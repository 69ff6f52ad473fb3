// Tests for the held-out MLM loss of prune/models/bert/pretrain.hpp (make_mlm_eval_set, mlm_eval_loss,
// pretrain()'s evaluations) and of prune-pretrain (DIR/pretrain/dev.txt, --dev-sentences,
// --dev-every): the loss equals an independent computation (forward.hpp's inference encoder,
// then the MLM head and the log-softmax written out in double, here); it is deterministic (same
// bits twice, and not a function of the training seed); it falls while pre-training on a toy
// language; the held-out text never reaches training (the weights do not depend on it).
#include <prune/models/bert/forward.hpp>
#include <prune/models/bert/pretrain.hpp>

#include <catch2/catch.hpp>

#include "../support/files.hpp"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

using namespace prune::bert;
using prune::text::tokenizer;
using prune::text::vocabulary;
namespace fs = std::filesystem;

namespace {

// A tiny language: "the|a <adj> <noun> <verb> the <noun> ." (as tests/pretrain/test_pretrain.cpp):
// strongly structured positions, so a model learns far better than chance within a few dozen steps.
vocabulary toy_vocabulary() {
    std::vector<std::string> tokens{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "."};
    for (const char* w : {"red", "big", "old", "cat", "dog", "man", "tree", "sees", "eats", "likes", "finds"})
        tokens.emplace_back(w);
    return vocabulary::from_tokens(tokens);
}

std::vector<std::string> toy_lines(std::size_t lines, unsigned seed) {
    std::mt19937 rng(seed);
    const char* adj[] = {"red", "big", "old"};
    const char* noun[] = {"cat", "dog", "man", "tree"};
    const char* verb[] = {"sees", "eats", "likes", "finds"};
    std::vector<std::string> out;
    for (std::size_t i = 0; i < lines; ++i)
        out.push_back(std::string(rng() % 2 ? "the " : "a ") + adj[rng() % 3] + " " + noun[rng() % 4] + " " +
                      verb[rng() % 4] + " the " + noun[rng() % 4] + " .");
    return out;
}

mlm_corpus toy_corpus(const tokenizer& tok, std::size_t lines, unsigned seed) {
    mlm_corpus c;
    for (const auto& s : toy_lines(lines, seed)) {
        c.lines.push_back(tok.token_ids(s));
        c.tokens += c.lines.back().size();
    }
    return c;
}

pretrain_options small_options() {
    pretrain_options o;
    o.batch_size = 16;
    o.learning_rate = 3e-3;
    o.seed = 5;
    o.threads = 1;
    return o;
}

// The held-out loss written out: forward.hpp's inference encoder (its own code, not
// encode_for_training) for every token, then per masked position in double: z = W x + b,
// gelu_erf, LayerNorm, logits = E y + bias, cross-entropy; the mean over all positions.
struct reference_eval {
    double loss = 0.0, accuracy = 0.0;
    std::size_t positions = 0;
};
reference_eval reference_loss(const weights& w, const mlm_head& head, const mlm_eval_set& set) {
    workspace ws(1);
    forward_options fo;
    fo.cls_only = false;
    const int H = w.cfg.hidden_size, V = w.cfg.vocab_size;
    double sum = 0.0;
    std::size_t correct = 0, count = 0;
    std::vector<double> z(static_cast<std::size_t>(H)), y(z.size()), logits(static_cast<std::size_t>(V));
    for (std::size_t k = 0; k < set.batches.size(); ++k) {
        encode(w, set.batches[k], ws, fo);
        const auto hidden = ws.hidden();
        REQUIRE(hidden.rows() == set.batches[k].tokens());
        const auto& t = set.targets[k];
        for (std::size_t i = 0; i < t.positions.size(); ++i) {
            const auto row = static_cast<Eigen::Index>(t.positions[i]);
            for (int o = 0; o < H; ++o) {
                double s = head.transform_bias[o];
                for (int c = 0; c < H; ++c) s += static_cast<double>(head.transform_weight(o, c)) * hidden(row, c);
                z[static_cast<std::size_t>(o)] = 0.5 * s * (1.0 + std::erf(s / std::sqrt(2.0)));
            }
            double mean = 0.0, var = 0.0;
            for (double v : z) mean += v / H;
            for (double v : z) var += (v - mean) * (v - mean) / H;
            for (int o = 0; o < H; ++o)
                y[static_cast<std::size_t>(o)] = (z[static_cast<std::size_t>(o)] - mean) /
                                                     std::sqrt(var + static_cast<double>(w.cfg.layer_norm_eps)) *
                                                     head.norm_weight[o] + head.norm_bias[o];
            double top = -1e300;
            int best = 0;
            for (int v = 0; v < V; ++v) {
                double s = head.decoder_bias[v];
                for (int c = 0; c < H; ++c) s += static_cast<double>(w.word_embeddings(v, c)) * y[static_cast<std::size_t>(c)];
                logits[static_cast<std::size_t>(v)] = s;
                if (s > top) top = s, best = v;
            }
            double norm = 0.0;
            for (double s : logits) norm += std::exp(s - top);
            sum += top + std::log(norm) - logits[static_cast<std::size_t>(t.labels[i])];
            correct += best == t.labels[i] ? 1 : 0;
            ++count;
        }
    }
    return {sum / static_cast<double>(count), static_cast<double>(correct) / static_cast<double>(count), count};
}

}  // namespace

TEST_CASE("the held-out loss equals an independent computation", "[pretrain][dev]") {
    const tokenizer tok(toy_vocabulary());
    const auto train = toy_corpus(tok, 200, 1);
    const auto dev_text = toy_corpus(tok, 90, 2);
    const config cfg = pretraining_config(2, 16, 2, 32, static_cast<int>(tok.vocab().size()));
    pretrain_options o = small_options();
    o.steps = 8;  // trained a little: not the symmetric initialisation
    const auto r = pretrain(cfg, train, tok.vocab(), o);
    const auto set = make_mlm_eval_set(dev_text, tok.vocab(), o, 40);
    // 40 sequences (pairs take two lines, so at most 80 lines), in batches of 16.
    CHECK(set.sequences == 40);
    CHECK(set.batches.size() == 3);
    CHECK(set.lines > 40);
    CHECK(set.lines <= 80);
    training_workspace<float> encoder(1);
    mlm_workspace head_ws;
    const auto got = mlm_eval_loss(r.model, r.head, set, encoder, head_ws);
    const auto want = reference_loss(r.model, r.head, set);
    CHECK(got.positions == set.positions);
    CHECK(want.positions == set.positions);
    // float pass vs the double loop: rounding only.
    CHECK(got.loss == Approx(want.loss).epsilon(1e-5));
    CHECK(std::abs(got.accuracy - want.accuracy) <= 1.0 / static_cast<double>(set.positions) + 1e-12);
    // The initial model is near chance: ln 19 = 2.94 over the whole vocabulary.
    const auto init = pretrain_initial(cfg, 5);
    CHECK(mlm_eval_loss(init.model, init.head, set, encoder, head_ws).loss == Approx(std::log(19.0)).margin(0.2));
    // Every line at most once: no cap gives every line of the text.
    CHECK(make_mlm_eval_set(dev_text, tok.vocab(), o, 0).lines == dev_text.lines.size());
}

TEST_CASE("the held-out set and loss are deterministic and not a function of the training seed", "[pretrain][dev]") {
    const tokenizer tok(toy_vocabulary());
    const auto train = toy_corpus(tok, 200, 1);
    const auto dev_text = toy_corpus(tok, 90, 2);
    const config cfg = pretraining_config(1, 16, 2, 32, static_cast<int>(tok.vocab().size()));
    pretrain_options o = small_options();
    o.steps = 4;
    const auto r = pretrain(cfg, train, tok.vocab(), o);
    const auto a = make_mlm_eval_set(dev_text, tok.vocab(), o, 0);
    o.seed = 77;  // another training seed: the same held-out set
    const auto b = make_mlm_eval_set(dev_text, tok.vocab(), o, 0);
    REQUIRE(a.batches.size() == b.batches.size());
    for (std::size_t k = 0; k < a.batches.size(); ++k) {
        CHECK(a.batches[k].token_ids == b.batches[k].token_ids);
        CHECK(a.targets[k].positions == b.targets[k].positions);
        CHECK(a.targets[k].labels == b.targets[k].labels);
    }
    // Another eval seed: other masks (so the check above can fail).
    const auto c = make_mlm_eval_set(dev_text, tok.vocab(), o, 0, mlm_eval_seed + 1);
    CHECK(c.targets[0].positions != a.targets[0].positions);
    // Two evaluations, fresh workspaces and a reused one after a training-sized batch: the same bits.
    training_workspace<float> e1(1), e2(1);
    mlm_workspace h1, h2;
    const double first = mlm_eval_loss(r.model, r.head, a, e1, h1).loss;
    const double second = mlm_eval_loss(r.model, r.head, b, e2, h2).loss;
    const double again = mlm_eval_loss(r.model, r.head, a, e1, h1).loss;
    CHECK(std::isfinite(first));
    CHECK(first == second);
    CHECK(first == again);
}

TEST_CASE("the held-out loss falls while pre-training on a learnable corpus", "[pretrain][dev]") {
    const tokenizer tok(toy_vocabulary());
    const auto train = toy_corpus(tok, 400, 1);
    const auto dev_text = toy_corpus(tok, 120, 3);
    const config cfg = pretraining_config(1, 32, 2, 64, static_cast<int>(tok.vocab().size()));
    pretrain_options o = small_options();
    o.steps = 60;
    o.dev_every = 10;
    const auto set = make_mlm_eval_set(dev_text, tok.vocab(), o, 0);
    std::vector<std::size_t> reported;
    const auto r = pretrain(cfg, train, tok.vocab(), o, [&](const pretrain_progress& p) {
        if (!std::isnan(p.dev_loss)) reported.push_back(p.step);
        return true;
    }, &set);
    REQUIRE(r.dev_losses.size() == 6);
    CHECK(reported == std::vector<std::size_t>{10, 20, 30, 40, 50, 60});
    for (std::size_t i = 0; i < 6; ++i) CHECK(r.dev_losses[i].first == 10 * (i + 1));
    const auto init = pretrain_initial(cfg, o.seed);
    training_workspace<float> encoder(1);
    mlm_workspace head_ws;
    const double before = mlm_eval_loss(init.model, init.head, set, encoder, head_ws).loss;
    const double after = r.dev_losses.back().second;
    INFO("held-out loss: initial " << before << ", step 10 " << r.dev_losses[0].second << ", step 60 " << after);
    // Chance is ln 19 = 2.94 at the initialisation; the positions of this language are easy to learn
    // (the same run's training loss falls by > 0.8 over 60 steps, tests/pretrain/test_pretrain.cpp).
    CHECK(before > 2.5);
    CHECK(after < before - 0.8);
    CHECK(after < r.dev_losses[0].second);
    // The final evaluation is the final model's.
    CHECK(after == mlm_eval_loss(r.model, r.head, set, encoder, head_ws).loss);
}

TEST_CASE("held-out text never reaches training", "[pretrain][dev]") {
    const tokenizer tok(toy_vocabulary());
    const auto train = toy_corpus(tok, 200, 1);
    const config cfg = pretraining_config(1, 16, 2, 32, static_cast<int>(tok.vocab().size()));
    pretrain_options o = small_options();
    o.steps = 12;
    o.dev_every = 4;
    // pretrain(): the same weights without a held-out set and with two different ones.
    const auto none = pretrain(cfg, train, tok.vocab(), o);
    const auto set_a = make_mlm_eval_set(toy_corpus(tok, 50, 2), tok.vocab(), o, 0);
    const auto set_b = make_mlm_eval_set(toy_corpus(tok, 70, 3), tok.vocab(), o, 0);
    const auto with_a = pretrain(cfg, train, tok.vocab(), o, {}, &set_a);
    const auto with_b = pretrain(cfg, train, tok.vocab(), o, {}, &set_b);
    CHECK(with_a.dev_losses.size() == 3);
    CHECK(with_a.dev_losses.back().second != with_b.dev_losses.back().second);
    CHECK(with_a.losses == none.losses);
    CHECK(with_b.losses == none.losses);
    CHECK(with_a.model.word_embeddings == none.model.word_embeddings);
    CHECK(with_a.model.layers[0].qkv.weight == none.model.layers[0].qkv.weight);
    CHECK(with_b.head.transform_weight == none.head.transform_weight);

    // prune-pretrain: dev.txt changes the held-out loss in the metadata, never a tensor.
    const fs::path binary = fs::path(PRUNE_BINARY_DIR) / "bin" / "prune-pretrain";
    REQUIRE(fs::exists(binary));
    const prune_test::temp_dir scratch("prune_pretrain_dev_cli");
    const fs::path& dir = scratch.path();
    fs::create_directories(dir / "data" / "pretrain");
    std::ofstream(dir / "data" / "vocab.txt") << tok.vocab().to_text();
    {
        std::ofstream out(dir / "data" / "pretrain" / "train.txt");
        for (const auto& s : toy_lines(100, 1)) out << s << "\n";
    }
    auto run = [&](const std::string& args) {
        const std::string cmd = binary.string() + " --data " + (dir / "data").string() +
                                " --layers 1 --hidden 16 --heads 2 --intermediate 32 --steps 6 --batch-size 8 --seed 3 " +
                                args + " > " + (dir / "out.txt").string() + " 2> " + (dir / "err.txt").string();
        const int status = std::system(cmd.c_str());
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    };
    auto dev_txt = [&](std::size_t lines, unsigned seed) {
        std::ofstream out(dir / "data" / "pretrain" / "dev.txt");
        for (const auto& s : toy_lines(lines, seed)) out << s << "\n";
    };
    REQUIRE(run("--out " + (dir / "none").string()) == 0);  // no dev.txt: no held-out loss
    dev_txt(40, 5);
    REQUIRE(run("--out " + (dir / "a").string() + " --dev-every 2") == 0);
    dev_txt(60, 6);
    REQUIRE(run("--out " + (dir / "b").string()) == 0);
    const auto none_ckpt = prune::io::checkpoint::open(dir / "none");
    const auto a_ckpt = prune::io::checkpoint::open(dir / "a");
    const auto b_ckpt = prune::io::checkpoint::open(dir / "b");
    CHECK(none_ckpt.metadata().count("prune_pretrain_dev_mlm_loss") == 0);
    REQUIRE(a_ckpt.metadata().count("prune_pretrain_dev_mlm_loss") == 1);
    REQUIRE(b_ckpt.metadata().count("prune_pretrain_dev_mlm_loss") == 1);
    CHECK(a_ckpt.metadata().at("prune_pretrain_dev_mlm_loss") != b_ckpt.metadata().at("prune_pretrain_dev_mlm_loss"));
    // All 40 lines of dev.txt (under the default cap of 1024 sequences; pairs take two lines).
    pretrain_options binary_o;
    binary_o.batch_size = 8;
    const auto expected = make_mlm_eval_set(toy_corpus(tok, 40, 5), tok.vocab(), binary_o, 1024);
    CHECK(expected.lines == 40);
    CHECK(a_ckpt.metadata().at("prune_pretrain_dev_sequences") == std::to_string(expected.sequences));
    CHECK(a_ckpt.metadata().count("prune_pretrain_train_sample_mlm_loss") == 1);
    const auto ta = read_pretrained(dir / "a"), tb = read_pretrained(dir / "b"), tn = read_pretrained(dir / "none");
    CHECK(ta.model.word_embeddings == tn.model.word_embeddings);
    CHECK(tb.model.word_embeddings == tn.model.word_embeddings);
    CHECK(ta.model.layers[0].output.weight == tn.model.layers[0].output.weight);
    CHECK(ta.head.decoder_bias == tn.head.decoder_bias);
    CHECK(tb.head.transform_weight == tn.head.transform_weight);
    // Bad values: one line, exit 2, nothing written.
    CHECK(run("--out " + (dir / "bad").string() + " --dev-every -1") == 2);
    CHECK(prune_test::read_file(dir / "err.txt") == "prune-pretrain: --dev-every -1 (expected >= 0)\n");
    CHECK(run("--out " + (dir / "bad").string() + " --dev-sentences -3") == 2);
    CHECK(prune_test::read_file(dir / "err.txt") == "prune-pretrain: --dev-sentences -3 (expected >= 0)\n");
    CHECK_FALSE(fs::exists(dir / "bad"));
}
