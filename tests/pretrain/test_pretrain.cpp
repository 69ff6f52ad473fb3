// Tests for prune/models/bert/pretrain.hpp: one MLM training pass as pretrain() takes it
// (backward.hpp's encode_for_training at every token + the MLM head + backward_from_hidden from
// d(hidden)) against a PyTorch autograd oracle (tests/pretrain/mlm_oracle.py, float64; no
// dropout); the dropout path against central finite differences; the same result on 1 and 2
// threads (within 1e-6); the MLM loss falling over a few dozen steps on a small synthetic corpus; determinism
// of the written model directory (same seed, same bytes) and its round trip; the prune-pretrain
// binary's contract (bad input: one line, exit 2, nothing written).
#include <prune/models/bert/pretrain.hpp>

#include "oracle.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <unistd.h>

using namespace prune::bert;
using prune::text::tokenizer;
using prune::text::vocabulary;
namespace fs = std::filesystem;

namespace {

config small_config() {
    config c = config::make(2, 16, 4, 24, 31, 2);
    c.max_position_embeddings = 16;
    return c;
}

// Packed sequences with [CLS]=2 / [SEP]=3 and token types, ids 5..30.
packed_batch small_batch(unsigned seed) {
    std::mt19937 rng(seed);
    packed_batch b;
    for (int s = 0; s < 4; ++s) {
        const int len = std::uniform_int_distribution<int>(3, 10)(rng);
        std::vector<std::int32_t> ids{2}, types{0};
        for (int i = 0; i < len; ++i) {
            ids.push_back(std::uniform_int_distribution<int>(5, 30)(rng));
            types.push_back(i >= len / 2 ? 1 : 0);
        }
        ids.push_back(3);
        types.push_back(1);
        b.add(ids, types);
    }
    return b;
}

struct step_result {
    double loss = 0;
    weights grads;
    mlm_head head_grads;
};

// One MLM training step as pretrain() takes it: backward.hpp's encode_for_training (every
// token's final hidden state), the MLM head, backward_from_hidden from d(hidden).
step_result training_step(const weights& w, const mlm_head& head, const packed_batch& batch, const mlm_targets& t,
                          const training_options& drop, int threads = 1, bool head_on_pool = false) {
    step_result r;
    r.grads = zero_gradients_like(w);
    r.head_grads = zero_mlm_head<float>(head.hidden(), head.vocab());
    training_workspace<float> enc(threads);
    mlm_workspace ws;
    if (head_on_pool) ws.set_pool(&enc.pool());
    const std::span<const float> hidden = encode_for_training(w, batch, nullptr, enc, drop);
    REQUIRE(hidden.size() == static_cast<std::size_t>(batch.tokens() * w.cfg.hidden_size));
    std::vector<float> d(hidden.size());
    r.loss = mlm_loss<float>(w.word_embeddings, head, hidden.data(), batch.tokens(), t.positions, t.labels,
                             w.cfg.layer_norm_eps, ws, &r.head_grads, &r.grads.word_embeddings, d.data());
    backward_from_hidden(w, batch, nullptr, enc, std::span<const float>(d), &r.grads, drop);
    return r;
}

double loss_only(const weights& w, const mlm_head& head, const packed_batch& batch, const mlm_targets& t,
                 const training_options& drop) {
    training_workspace<float> enc(1);
    mlm_workspace ws;
    const std::span<const float> hidden = encode_for_training(w, batch, nullptr, enc, drop);
    return mlm_loss<float>(w.word_embeddings, head, hidden.data(), batch.tokens(), t.positions, t.labels,
                           w.cfg.layer_norm_eps, ws);
}

mlm_head random_head(int hidden, int vocab, unsigned seed, float stddev) {
    mlm_head h = zero_mlm_head<float>(hidden, vocab);
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> n(0.0f, stddev);
    for (const auto& p : mlm_head_parameters(h)) {
        const bool scale = p.name.find("LayerNorm.weight") != std::string::npos;
        for (float& v : p.values()) v = (scale ? 1.0f : 0.0f) + n(rng);
    }
    return h;
}

std::vector<std::int32_t> specials() { return {0, 1, 2, 3, 4}; }

std::string read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

fs::path temp_dir(const std::string& tag) {
    auto d = fs::temp_directory_path() / ("prune_pretrain_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

}  // namespace

TEST_CASE("an MLM training pass (no dropout) matches PyTorch autograd", "[pretrain][torch]") {
    const config cfg = small_config();
    weights w = random_weights(cfg, 7, 0.3f, false);
    const mlm_head head = random_head(cfg.hidden_size, cfg.vocab_size, 8, 0.3f);
    packed_batch batch = small_batch(3);
    const packed_batch clean = batch;
    const token_masker masker(cfg.vocab_size, specials(), 4);
    const mlm_targets t = masker.mask(batch, 99);
    REQUIRE(t.positions.size() >= 4);
    training_options off;  // dropout off
    auto r = training_step(w, head, batch, t, off);

    nlohmann::json spec;
    spec["mode"] = "model";
    spec["layer_norm_eps"] = cfg.layer_norm_eps;
    spec["config"] = cfg.to_json();
    spec["positions"] = t.positions;
    spec["labels"] = t.labels;
    for (int s = 0; s < batch.sequences(); ++s) {
        std::vector<std::int32_t> ids(batch.token_ids.begin() + batch.offsets[s], batch.token_ids.begin() + batch.offsets[s + 1]);
        std::vector<std::int32_t> types(batch.token_types.begin() + batch.offsets[s],
                                        batch.token_types.begin() + batch.offsets[s + 1]);
        spec["sequences"].push_back({{"ids", ids}, {"types", types}});
    }
    auto add = [&](const parameter& p) {
        std::vector<double> data(p.values().begin(), p.values().end());
        spec["tensors"][p.name] = {{"shape", p.shape}, {"data", data}};
    };
    mlm_head head_copy = head;
    for (const auto& p : parameters(w)) add(p);
    for (const auto& p : mlm_head_parameters(head_copy)) add(p);
    const auto want = pretrain_test::run_oracle(spec, "model");
    CHECK(r.loss == Approx(want["loss"].get<double>()).epsilon(1e-5));
    // Float against float64: every tensor within 1e-4 of its own largest gradient (or of 1e-3 when
    // that is smaller: the key biases' gradients are 0 in theory and float rounding noise here).
    auto compare = [&](const parameter& p) {
        INFO(p.name);
        const auto& g = want["grads"][p.name];
        REQUIRE(g.size() == p.size());
        Eigen::Map<const Eigen::VectorXf> got(p.data, static_cast<Eigen::Index>(p.size()));
        CHECK(pretrain_test::relative_error(got, g, 1e-3) < 1e-4);
    };
    for (const auto& p : parameters(r.grads)) compare(p);
    for (const auto& p : mlm_head_parameters(r.head_grads)) compare(p);
    (void)clean;
}

TEST_CASE("the dropout path's gradients match central finite differences", "[pretrain]") {
    const config cfg = small_config();
    weights w = random_weights(cfg, 21, 0.3f, false);
    const mlm_head head = random_head(cfg.hidden_size, cfg.vocab_size, 22, 0.3f);
    packed_batch batch = small_batch(5);
    const token_masker masker(cfg.vocab_size, specials(), 4);
    const mlm_targets t = masker.mask(batch, 7);
    training_options on;
    on.dropout = true;
    on.hidden_dropout = 0.3f;
    on.attention_dropout = 0.3f;
    on.seed = 1234;
    training_options off = on;
    off.dropout = false;
    const double with = loss_only(w, head, batch, t, on);
    CHECK(with != loss_only(w, head, batch, t, off));   // dropout does something
    CHECK(with == loss_only(w, head, batch, t, on));    // and the same thing every time
    auto r = training_step(w, head, batch, t, on);
    CHECK(r.loss == with);
    // For every tensor, the element with the largest gradient (float: small relative steps are noise).
    auto grads = parameters(r.grads);
    auto params = parameters(w);
    int checked = 0;
    for (std::size_t k = 0; k < params.size(); ++k) {
        const auto g = grads[k].values();
        std::size_t best = 0;
        for (std::size_t i = 1; i < g.size(); ++i) if (std::abs(g[i]) > std::abs(g[best])) best = i;
        if (std::abs(g[best]) < 1e-3) continue;
        float& x = params[k].data[best];
        const float keep = x;
        const float h = 2e-3f;
        x = keep + h;
        const double up = loss_only(w, head, batch, t, on);
        x = keep - h;
        const double down = loss_only(w, head, batch, t, on);
        x = keep;
        const double fd = (up - down) / (2.0 * h);
        INFO(params[k].name << "[" << best << "]: analytic " << g[best] << " fd " << fd);
        CHECK(g[best] == Approx(fd).epsilon(0.03).margin(2e-4));
        ++checked;
    }
    CHECK(checked >= 20);
}

TEST_CASE("an MLM training step gives the same result on 1 and 2 threads", "[pretrain]") {
    // Big enough that the pool splits rows, columns and products (>= 65,536-element row loops).
    config cfg = config::make(1, 128, 4, 256, 300, 2);
    cfg.max_position_embeddings = 40;
    const weights w = random_weights(cfg, 31, 0.05f, false);
    const mlm_head head = random_head(cfg.hidden_size, cfg.vocab_size, 32, 0.05f);
    std::mt19937 rng(33);
    packed_batch batch;
    for (int s = 0; s < 16; ++s) {
        std::vector<std::int32_t> ids{2};
        for (int i = 0; i < 34; ++i) ids.push_back(std::uniform_int_distribution<int>(5, 299)(rng));
        ids.push_back(3);
        batch.add(ids);
    }
    REQUIRE(batch.tokens() * cfg.hidden_size >= 65536);
    const token_masker masker(cfg.vocab_size, specials(), 4);
    const mlm_targets t = masker.mask(batch, 34);
    training_options on;
    on.dropout = true;
    on.seed = 35;
    // The bits must not depend on the thread count, whatever products this build and CPU use
    // (Eigen in a test binary, which does not re-execute for OpenBLAS's wide kernels; OpenBLAS's
    // SSE3 kernels in the ASan build; SkylakeX with OPENBLAS_CORETYPE set): backward.hpp splits
    // a product only where the split cannot change its rounding, and OpenBLAS runs on the caller
    // only. The 1-thread step runs first, in a process whose OpenBLAS still threads its own calls
    // (a 1-thread workspace once left it so: in the ASan build its split products then rounded
    // differently). The MLM head runs on the encoder's pool, as in pretrain().
    const auto one = training_step(w, head, batch, t, on, 1, true);
    const auto two = training_step(w, head, batch, t, on, 2, true);
    CHECK(one.loss == two.loss);
    mlm_head h1 = one.head_grads, h2 = two.head_grads;
    weights g1 = one.grads, g2 = two.grads;
    auto same = [](const parameter& a, const parameter& b) {
        INFO(a.name);
        std::size_t differ = 0;  // bit for bit (memcmp: also tells -0 from +0)
        for (std::size_t i = 0; i < a.size(); ++i) differ += std::memcmp(&a.data[i], &b.data[i], sizeof(float)) != 0;
        CHECK(differ == 0);
    };
    const auto p1 = parameters(g1), p2 = parameters(g2);
    for (std::size_t i = 0; i < p1.size(); ++i) same(p1[i], p2[i]);
    const auto q1 = mlm_head_parameters(h1), q2 = mlm_head_parameters(h2);
    for (std::size_t i = 0; i < q1.size(); ++i) same(q1[i], q2[i]);
}

namespace {
// A tiny language: "the <adj> <noun> <verb> the <noun>" with agreement-free but strongly
// structured positions, so a model can learn far better than chance quickly.
vocabulary toy_vocabulary() {
    std::vector<std::string> tokens{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "."};
    for (const char* w : {"red", "big", "old", "cat", "dog", "man", "tree", "sees", "eats", "likes", "finds"})
        tokens.emplace_back(w);
    return vocabulary::from_tokens(tokens);
}
mlm_corpus toy_corpus(const tokenizer& tok, std::size_t lines, unsigned seed) {
    std::mt19937 rng(seed);
    const char* adj[] = {"red", "big", "old"};
    const char* noun[] = {"cat", "dog", "man", "tree"};
    const char* verb[] = {"sees", "eats", "likes", "finds"};
    mlm_corpus c;
    for (std::size_t i = 0; i < lines; ++i) {
        std::string s = std::string(rng() % 2 ? "the " : "a ") + adj[rng() % 3] + " " + noun[rng() % 4] + " " +
                        verb[rng() % 4] + " the " + noun[rng() % 4] + " .";
        c.lines.push_back(tok.token_ids(s));
        c.tokens += c.lines.back().size();
    }
    return c;
}
}  // namespace

TEST_CASE("MLM loss falls over a few dozen steps on a small corpus", "[pretrain]") {
    const tokenizer tok(toy_vocabulary());
    const auto corpus = toy_corpus(tok, 400, 1);
    const config cfg = pretraining_config(1, 32, 2, 64, static_cast<int>(tok.vocab().size()));
    pretrain_options o;
    o.steps = 60;
    o.batch_size = 16;
    o.learning_rate = 3e-3;
    o.seed = 5;
    o.threads = 1;
    const auto r = pretrain(cfg, corpus, tok.vocab(), o);
    REQUIRE(r.losses.size() == 60);
    double first = 0, last = 0;
    for (int i = 0; i < 10; ++i) {
        first += r.losses[static_cast<std::size_t>(i)] / 10;
        last += r.losses[r.losses.size() - 10 + static_cast<std::size_t>(i)] / 10;
    }
    INFO("first 10 steps " << first << ", last 10 " << last);
    // Chance over the 14 ordinary words is ln 14 = 2.64; the initial loss is about ln 19 = 2.94.
    CHECK(first > 2.5);
    CHECK(last < first - 0.8);
}

TEST_CASE("pre-training's learning rate follows Hugging Face's linear warm-up schedule", "[pretrain]") {
    const tokenizer tok(toy_vocabulary());
    const auto corpus = toy_corpus(tok, 100, 4);
    const config cfg = pretraining_config(1, 16, 2, 32, static_cast<int>(tok.vocab().size()));
    pretrain_options o;
    o.steps = 8;
    o.warmup_fraction = 0.25;  // ceil(0.25 x 8) = 2 warm-up updates
    o.batch_size = 4;
    o.learning_rate = 1e-3;
    o.threads = 1;
    std::vector<double> lrs;
    (void)pretrain(cfg, corpus, tok.vocab(), o, [&](const pretrain_progress& p) {
        lrs.push_back(p.lr);
        return true;
    });
    // get_linear_schedule_with_warmup(warmup 2, total 8) as LambdaLR applies it: lambda(s) = s / 2
    // for s < 2, else (8 - s) / 6 (tests/train/test_train.cpp pins the function against torch).
    // Until this commit pre-training warmed up from (s + 1) / 2: 0.5, 1, ... one update early.
    const std::vector<double> lambda = {0.0, 0.5, 1.0, 5.0 / 6, 4.0 / 6, 3.0 / 6, 2.0 / 6, 1.0 / 6};
    REQUIRE(lrs.size() == lambda.size());
    for (std::size_t s = 0; s < lambda.size(); ++s) CHECK(lrs[s] == Approx(1e-3 * lambda[s]).margin(1e-15));
}

TEST_CASE("pre-training is deterministic: same seed, same bytes; the directory reads back", "[pretrain]") {
    const tokenizer tok(toy_vocabulary());
    const auto corpus = toy_corpus(tok, 100, 2);
    const config cfg = pretraining_config(2, 16, 2, 32, static_cast<int>(tok.vocab().size()));
    const auto dir = temp_dir("det");
    std::ofstream(dir / "vocab.txt") << tok.vocab().to_text();
    pretrain_options o;
    o.steps = 6;
    o.batch_size = 8;
    o.threads = 2;
    auto write = [&](std::uint64_t seed, const std::string& name) {
        o.seed = seed;
        auto r = pretrain(cfg, corpus, tok.vocab(), o);
        write_pretrained(dir / name, r.model, r.head, dir / "vocab.txt");
        return r;
    };
    auto a = write(3, "a");
    write(3, "b");
    write(4, "c");
    const auto bytes_a = read_bytes(dir / "a" / "model.safetensors");
    CHECK(bytes_a.size() > 1000);
    CHECK(bytes_a == read_bytes(dir / "b" / "model.safetensors"));
    CHECK(bytes_a != read_bytes(dir / "c" / "model.safetensors"));
    CHECK(read_bytes(dir / "a" / "vocab.txt") == read_bytes(dir / "vocab.txt"));
    // Names: BertForMaskedLM's (no pooler; the tied decoder weight stored once as the embeddings).
    const auto ckpt = prune::io::checkpoint::open(dir / "a");
    CHECK(ckpt.contains("bert.embeddings.word_embeddings.weight"));
    CHECK(ckpt.contains("bert.encoder.layer.1.output.LayerNorm.bias"));
    CHECK(ckpt.contains("cls.predictions.transform.dense.weight"));
    CHECK(ckpt.contains("cls.predictions.transform.LayerNorm.weight"));
    CHECK(ckpt.contains("cls.predictions.bias"));
    CHECK_FALSE(ckpt.contains("bert.pooler.dense.weight"));
    // Round trip.
    const auto back = read_pretrained(dir / "a");
    CHECK(back.model.cfg.hidden_size == 16);
    CHECK(back.model.word_embeddings == a.model.word_embeddings);
    CHECK(back.model.layers[1].qkv.weight == a.model.layers[1].qkv.weight);
    CHECK(back.head.decoder_bias == a.head.decoder_bias);
    CHECK(back.head.transform_weight == a.head.transform_weight);
    nlohmann::json j;
    std::ifstream(dir / "a" / "config.json") >> j;
    CHECK(j["architectures"][0] == "BertForMaskedLM");
    fs::remove_all(dir);
}

TEST_CASE("prune-pretrain: bad input gives one line and exit 2 and writes nothing; good input a model", "[pretrain][cli]") {
    const fs::path binary = fs::path(PRUNE_BINARY_DIR) / "bin" / "prune-pretrain";
    REQUIRE(fs::exists(binary));
    const auto dir = temp_dir("cli");
    auto run = [&](const std::string& args) {
        const std::string cmd = binary.string() + " " + args + " > " + (dir / "out.txt").string() + " 2> " +
                                (dir / "err.txt").string();
        const int status = std::system(cmd.c_str());
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    };
    auto err_lines = [&] {
        std::ifstream in(dir / "err.txt");
        std::string line;
        int n = 0;
        while (std::getline(in, line)) ++n;
        return n;
    };
    CHECK(run("--data " + (dir / "missing").string() + " --out " + (dir / "m1").string() + " --steps 2") == 2);
    CHECK(err_lines() == 1);
    CHECK_FALSE(fs::exists(dir / "m1"));
    // A data directory with a vocabulary and a corpus.
    const tokenizer tok(toy_vocabulary());
    fs::create_directories(dir / "data" / "pretrain");
    std::ofstream(dir / "data" / "vocab.txt") << tok.vocab().to_text();
    {
        std::ofstream corpus(dir / "data" / "pretrain" / "train.txt");
        for (int i = 0; i < 50; ++i) corpus << "the red cat sees a dog .\n" << "a big man finds the tree .\n";
    }
    CHECK(run("--data " + (dir / "data").string() + " --out " + (dir / "m2").string() + " --steps 0") == 2);
    CHECK(err_lines() == 1);
    CHECK(run("--data " + (dir / "data").string() + " --out " + (dir / "m2").string() + " --hidden 30 --heads 4 --steps 2") == 2);
    CHECK(err_lines() == 1);
    CHECK(run("--data " + (dir / "data").string() + " --out " + (dir / "m2").string() + " --steps 2 --minutes 1") == 2);
    CHECK(err_lines() == 1);
    CHECK_FALSE(fs::exists(dir / "m2"));
    // Good input.
    const std::string good = "--data " + (dir / "data").string() + " --layers 1 --hidden 16 --heads 2 --intermediate 32 --steps 3 --seed 9";
    REQUIRE(run(good + " --out " + (dir / "m3").string()) == 0);
    CHECK(fs::exists(dir / "m3" / "config.json"));
    CHECK(read_bytes(dir / "m3" / "vocab.txt") == read_bytes(dir / "data" / "vocab.txt"));
    REQUIRE(run(good + " --out " + (dir / "m4").string()) == 0);
    CHECK(read_bytes(dir / "m3" / "model.safetensors") == read_bytes(dir / "m4" / "model.safetensors"));
    const auto ckpt = prune::io::checkpoint::open(dir / "m3");
    CHECK(ckpt.metadata().at("prune_pretrain_steps") == "3");
    fs::remove_all(dir);
}
