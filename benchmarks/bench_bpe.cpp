// bench_bpe: byte-level BPE encoding speed (prune/text/bpe.hpp) on a local text, for
// benchmarks/bpe_vs_hf.sh, which runs Hugging Face's tokenizers on the same chunks in the
// same run. Usage: bench_bpe TOKENIZER_JSON TEXT_FILE [CHUNK_BYTES=4096] [PASSES=1]
// The text is cut into chunks of about CHUNK_BYTES at line ends (as hf_tokenize.js cuts it);
// each pass encodes every chunk (no special tokens) on one thread. Prints one line:
// "prune tokens=N bytes=B seconds=S tokens_per_s=T" with the fastest pass.
#include <prune/text/bpe.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: bench_bpe TOKENIZER_JSON TEXT_FILE [CHUNK_BYTES] [PASSES]\n");
        return 2;
    }
    try {
        const auto tok = prune::text::bpe_tokenizer::from_file(argv[1]);
        const std::string text = prune::io::read_text_file(argv[2]);
        const std::size_t chunk = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 4096;
        const int passes = argc > 4 ? std::atoi(argv[4]) : 1;
        std::vector<std::string_view> chunks;
        for (std::size_t pos = 0; pos < text.size();) {
            std::size_t end = std::min(text.size(), pos + chunk);
            const std::size_t newline = text.find('\n', end);
            end = newline == std::string::npos ? text.size() : newline + 1;
            chunks.emplace_back(text.data() + pos, end - pos);
            pos = end;
        }
        double best = 1e300;
        std::size_t tokens = 0;
        for (int p = 0; p < std::max(passes, 1); ++p) {
            tokens = 0;
            const auto start = std::chrono::steady_clock::now();
            for (auto c : chunks) tokens += tok.encode(c, false).size();
            best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        }
        std::printf("prune tokens=%zu bytes=%zu seconds=%.4f tokens_per_s=%.0f\n", tokens, text.size(), best,
                    static_cast<double>(tokens) / best);
    } catch (const prune::error& e) {
        std::fprintf(stderr, "bench_bpe: %s\n", e.what());
        return 2;
    }
}
