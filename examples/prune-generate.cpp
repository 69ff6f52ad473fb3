// prune-generate: text from a causal LM (a Llama or GPT-2 directory with tokenizer.json),
// pruned or not, decoded with a KV cache (prune/models/decoder/generate.hpp).
//
//   prune-generate --model DIR --prompt TEXT [--max-tokens 32] [--temperature 0] [--seed 0]
//                  [--mask F] [--element-mask F] [--threads 0]
//
// The prompt is encoded by DIR/tokenizer.json (its BOS as its post-processor says), prefilled
// in one pass, then one token at a time: the argmax at temperature 0 (the default; the same
// text on every run), else a draw from softmax(logits / temperature) seeded by --seed. It stops
// after --max-tokens tokens, at the end-of-sequence id (generation_config.json's or
// config.json's eos_token_id) or when max_position_embeddings is reached. stdout: the prompt
// and its continuation; stderr: the token counts and the speed.
#include "common/cli.hpp"
#include "common/numbers.hpp"
#include "decoder/causal_lm.hpp"

#include <prune/models/decoder/generate.hpp>
#include <prune/nn/process.hpp>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>

namespace {

/// The end-of-sequence id: generation_config.json's eos_token_id, else config.json's (an
/// integer, or the first of a list); none when neither says.
std::optional<std::int32_t> eos_of(const std::string& dir) {
    for (const char* file : {"generation_config.json", "config.json"}) {
        const std::filesystem::path path = std::filesystem::path(dir) / file;
        if (!std::filesystem::is_regular_file(path)) continue;
        const prune::io::json j = prune::io::read_json_file(path);
        if (!j.is_object() || !j.contains("eos_token_id")) continue;
        const prune::io::json& e = j["eos_token_id"];
        if (e.is_number_integer()) return static_cast<std::int32_t>(e.get<std::int64_t>());
        if (e.is_array() && !e.empty() && e[0].is_number_integer()) return static_cast<std::int32_t>(e[0].get<std::int64_t>());
    }
    return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
    prune::nn::setup_process(argv);
    CLI::App app("prune-generate: text from a (pruned) causal LM, decoded with a KV cache", "prune-generate");
    std::string model, prompt, mask_file, element_mask_file;
    long long max_tokens = 32;  // signed: -1 must be refused, not read as 2^64 - 1
    double temperature = 0.0;
    std::uint64_t seed = 0;
    int threads = 0;
    app.add_option("--model", model, "causal-LM directory (config.json, model.safetensors, tokenizer.json)")->required();
    app.add_option("--prompt", prompt, "the text to continue")->required();
    app.add_option("--max-tokens", max_tokens, "tokens to generate at most")->capture_default_str();
    app.add_option("--temperature", temperature, "0: greedy; > 0: sample from softmax(logits / T)")->capture_default_str();
    app.add_option("--seed", seed, "seed of the sampling")->check(prune_cli::unsigned_integer())->capture_default_str();
    app.add_option("--mask", mask_file, "structure mask (heads, mlps, kv_groups) gating structures off");
    app.add_option("--element-mask", element_mask_file, "element masks (safetensors, U8) zeroing weights");
    app.add_option("--threads", threads, "threads (0 = every core)")->check(prune_cli::threads_flag())->capture_default_str();
    return prune_cli::run(app, argc, argv, [&] {
        if (max_tokens < 1 || max_tokens > 1 << 20)
            throw prune::value_error("--max-tokens " + std::to_string(max_tokens) + " (expected 1..1048576)");
        prune_cli::check_flag("--temperature", temperature, prune_cli::at_least(0));
        if (!prune_lm::is_causal_lm(model))
            throw prune::format_error("'" + model + "' is not a causal-LM directory (expected config.json with model_type llama or gpt2)");
        const prune::decoder::weights w = prune_lm::load_model(model, element_mask_file);
        const std::optional<prune::decoder::gates> g = prune_lm::load_gates(mask_file, w);
        const prune::text::bpe_tokenizer tok = prune_lm::tokenizer_for(model, "prompts");
        const std::vector<std::int32_t> ids = tok.encode(prompt);
        prune::decoder::sequences::check(ids, w.cfg, "--prompt");
        prune::decoder::generation_options o;
        o.max_tokens = static_cast<std::size_t>(max_tokens);
        o.temperature = temperature;
        o.seed = seed;
        o.eos = eos_of(model);
        o.gate = g ? &*g : nullptr;
        prune::decoder::workspace ws(threads);
        const auto start = std::chrono::steady_clock::now();
        const std::vector<std::int32_t> out = prune::decoder::generate(w, ids, o, ws);
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::printf("%s%s\n", prompt.c_str(), tok.decode(out, true).c_str());
        std::fprintf(stderr, "prune-generate: %zu prompt tokens, %zu generated (%s), %.1f tokens/s\n", ids.size(), out.size(),
                     temperature == 0.0 ? "greedy" : "sampled", static_cast<double>(out.size()) / std::max(seconds, 1e-9));
    });
}
