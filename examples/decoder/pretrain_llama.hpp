// examples/decoder/pretrain_llama.hpp: `prune-pretrain --arch llama`: causal-LM pre-training of
// a small Llama on the text of a `prune-data wordnet` directory, written as a Hugging Face
// LlamaForCausalLM directory that prune-eval, prune-importance and prune-generate read.
//
//   1. a byte-level BPE (--vocab-size ids, <|endoftext|> id 0) trained on DIR/pretrain/train.txt
//   2. train.txt encoded whole and cut into windows of --max-length tokens; a seeded Llama
//      (initial_weights) trained on them (decoder::pretrain: token-mean NLL, clipping at 1,
//      AdamW, linear warm-up / decay)
//   3. the held-out perplexity of DIR/pretrain/dev.txt (the dev synsets' glosses and examples,
//      never trained on) in windows of --max-length tokens, before and after training -- the
//      number `prune-eval --model OUT --data DIR/pretrain/dev.txt --context N` gives
//   4. OUT = config.json + model.safetensors (metadata: the command, steps, perplexities) +
//      tokenizer.json + generation_config.json, staged and renamed into place whole
//
// --init-only skips step 2's training (and the training text's encoding): OUT holds the seed's
// initialisation -- the weights a training run with the same seed and shape starts from -- and
// its held-out perplexity, the from-scratch baseline.
#pragma once

#include "common/numbers.hpp"
#include "decoder/causal_lm.hpp"

#include <prune/models/decoder/checkpoint.hpp>
#include <prune/models/decoder/pretrain.hpp>
#include <prune/io/atomic.hpp>
#include <prune/text/bpe_trainer.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

namespace prune_lm {

/// The flags of `prune-pretrain --arch llama`.
struct llama_pretrain_flags {
    std::string data;                          ///< the prune-data wordnet directory
    std::string out;                           ///< the model directory to write
    prune::decoder::llama_shape shape;         ///< layers, hidden, heads, kv_heads, intermediate (vocab from the tokenizer)
    std::size_t vocab_size = 2048;             ///< BPE ids
    std::size_t context = 128;                 ///< tokens per window (and max_position_embeddings)
    prune::decoder::pretrain_options train;    ///< steps, batch, lr, warm-up, seed, threads
    bool init_only = false;                    ///< write the initialisation, untrained
};

/// The reproducing command line of a run.
inline std::string llama_command(const llama_pretrain_flags& f) {
    char text[400];
    std::snprintf(text, sizeof text,
                  "prune-pretrain --arch llama%s --layers %d --hidden %d --heads %d --kv-heads %d --intermediate %d "
                  "--vocab-size %zu --max-length %zu --seed %llu",
                  f.init_only ? " --init-only" : "", f.shape.layers, f.shape.hidden, f.shape.heads, f.shape.kv_heads,
                  f.shape.intermediate, f.vocab_size, f.context, static_cast<unsigned long long>(f.train.seed));
    if (f.init_only) return text;
    char training[200];
    std::snprintf(training, sizeof training, " --steps %zu --batch-size %zu --lr %g --warmup %g", f.train.steps,
                  f.train.batch_size, f.train.learning_rate, f.train.warmup_fraction);
    return text + std::string(training);
}

/// The perplexity of dev.txt in windows of the context (prune-eval's protocol and code).
inline double held_out_perplexity(const prune::decoder::weights& w, const std::vector<std::vector<std::int32_t>>& dev,
                                  int threads, const std::string& file) {
    return perplexity(w, dev, nullptr, 8, threads, file, static_cast<int>(w.cfg.max_position_embeddings))["perplexity"]
        .get<double>();
}

/// "%.6f".
inline std::string fixed6(double v) {
    char text[64];
    std::snprintf(text, sizeof text, "%.6f", v);
    return text;
}

/// Step 2: `w` trained on train.txt cut into windows of its max_position_embeddings tokens.
template <class Clock>
void train_llama(prune::decoder::weights& w, const prune::text::bpe_tokenizer& tok, const fs::path& train_txt,
                 const prune::decoder::pretrain_options& o, const Clock& seconds) {
    const auto context = static_cast<std::size_t>(w.cfg.max_position_embeddings);
    const auto train = prune::decoder::token_windows(tok.encode(prune::io::read_text_file(train_txt)), context);
    std::fprintf(stderr, "prune-pretrain: %zu training windows of %zu tokens (%.1f s)\n", train.size(), context, seconds());
    double smoothed = 0.0;
    prune::decoder::pretrain(w, train, o, [&](const prune::decoder::pretrain_progress& p) {
        smoothed = p.step == 1 ? p.loss : 0.9 * smoothed + 0.1 * p.loss;
        if (p.step == 1 || p.step == p.total || p.step % 25 == 0)
            std::fprintf(stderr, "prune-pretrain: step %zu/%zu  loss %.3f (avg %.3f)  grad norm %.2f  lr %.2e  %.0f s\n", p.step,
                         p.total, p.loss, smoothed, p.grad_norm, p.lr, seconds());
        return true;
    });
}

/// Runs `prune-pretrain --arch llama` (flags already checked by the caller).
inline void pretrain_llama(llama_pretrain_flags f) {
    const auto start = std::chrono::steady_clock::now();
    auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
    const fs::path data(f.data);
    const fs::path train_txt = data / "pretrain" / "train.txt", dev_txt = data / "pretrain" / "dev.txt";
    if (!fs::is_regular_file(train_txt) || !fs::is_regular_file(dev_txt)) {
        throw prune::io_error("'" + f.data + "' is not a prune-data wordnet directory (expected pretrain/train.txt and " +
                              "pretrain/dev.txt)");
    }
    {  // fail before any work when OUT cannot be written
        prune::io::output_directory probe(f.out);
    }
    prune::text::bpe_trainer_options to;
    to.vocab_size = f.vocab_size;
    prune::text::bpe_trainer trainer(to);
    trainer.add_file(train_txt);
    const prune::text::bpe_model bpe = trainer.train();
    const prune::text::bpe_tokenizer tok = trainer.tokenizer(bpe);
    std::fprintf(stderr, "prune-pretrain: byte-level BPE of %zu ids from %s (%.1f s)\n", tok.vocab_size(),
                 train_txt.c_str(), seconds());

    f.shape.vocab = static_cast<int>(tok.vocab_size());
    f.shape.max_positions = static_cast<int>(f.context);
    f.shape.bos_token_id = f.shape.eos_token_id = 0;  // <|endoftext|>
    prune::decoder::weights w = prune::decoder::initial_weights(prune::decoder::llama_config(f.shape), f.train.seed);
    const auto dev = text_windows(dev_txt.string(), tok, static_cast<int>(f.context), w.cfg);
    const double initial = held_out_perplexity(w, dev, f.train.threads, dev_txt.string());
    std::fprintf(stderr, "prune-pretrain: %zu held-out windows of %zu tokens, perplexity at initialisation %.3f (%.1f s)\n",
                 dev.size(), f.context, initial, seconds());
    double final_ppl = initial;
    if (!f.init_only) {
        train_llama(w, tok, train_txt, f.train, seconds);
        prune_cli::refuse_non_finite_weights(prune::decoder::parameters(w), "not writing model '" + f.out + "'");
        final_ppl = held_out_perplexity(w, dev, f.train.threads, dev_txt.string());
    }

    const std::map<std::string, std::string> metadata{{"prune_pretrain_command", llama_command(f)},
                                                      {"prune_pretrain_steps", std::to_string(f.init_only ? 0 : f.train.steps)},
                                                      {"prune_pretrain_dev_perplexity", fixed6(final_ppl)},
                                                      {"prune_pretrain_dev_perplexity_init", fixed6(initial)}};
    prune::io::output_directory out(f.out);
    prune::decoder::write_model_files(w, out.path(), prune::io::dtype::F32, metadata);
    trainer.save(bpe, out / "tokenizer.json");
    prune::io::json gen = prune::io::json::object();
    gen["bos_token_id"] = 0;
    gen["eos_token_id"] = 0;
    gen["max_length"] = f.context;
    prune::io::write_file_atomically(out / "generation_config.json", gen.dump(2) + "\n");
    out.commit();
    std::fprintf(stderr,
                 "prune-pretrain: %zu steps; held-out perplexity %s (context %zu, %zu windows of %s; %.3f at "
                 "initialisation); wrote %s (%.1f s)\n",
                 f.init_only ? 0 : f.train.steps, fixed6(final_ppl).c_str(), f.context, dev.size(), dev_txt.c_str(), initial,
                 f.out.c_str(), seconds());
    if (f.init_only) {
        std::fprintf(stderr, "prune-pretrain: --init-only: wrote the untrained initialisation of seed %llu\n",
                     static_cast<unsigned long long>(f.train.seed));
    }
}

}  // namespace prune_lm
