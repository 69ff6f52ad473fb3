// The bad-input table of docs/bad-inputs.md, run: every row's command runs the built binary
// (PRUNE_BINARY_DIR/bin) on a fixture this test makes (a tiny random BERT, data files, masks,
// and damaged copies of each), and must give the row's exit code and, on stderr, exactly the
// row's one-line message; for exit 2 nothing may be written (the fixture directory, where
// every --out / --json of the table points, is listed recursively before and after: no
// output, no staging debris). Rows with exit 0 (allowed inputs) must write their output.
// The table is the one source of truth: this test parses docs/bad-inputs.md. To regenerate
// the message column after a deliberate change, run the test with PRUNE_BAD_INPUTS_PRINT=1:
// it prints every row with the message actually seen.
#include <prune/models/bert/checkpoint.hpp>
#include <prune/models/bert/config.hpp>
#include <prune/models/bert/weights.hpp>
#include <prune/models/decoder/checkpoint.hpp>
#include <prune/io/gguf_convert.hpp>
#include <prune/io/imatrix.hpp>
#include <prune/io/safetensors.hpp>
#include <prune/text/bpe_trainer.hpp>

#include "../support/files.hpp"
#include "../support/shards.hpp"
#include "../support/tiny_bert.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace prune;

namespace {

using prune_test::read_file;
using prune_test::write_file;

// ---- one row of docs/bad-inputs.md ----------------------------------------------------
struct row {
    int number = 0;
    std::string binary, input, command, message;
    int exit_code = 2;
};

// Cells of a markdown table line, split at '|' outside `code` spans ("\|" is a literal '|').
std::vector<std::string> cells(const std::string& line) {
    std::vector<std::string> out;
    std::string cell;
    bool code = false;
    for (std::size_t i = 1; i < line.size(); ++i) {
        const char c = line[i];
        if (c == '\\' && i + 1 < line.size() && line[i + 1] == '|') {
            cell += '|';
            ++i;
        } else if (c == '`') {
            code = !code;
            cell += c;
        } else if (c == '|' && !code) {
            out.push_back(cell);
            cell.clear();
        } else {
            cell += c;
        }
    }
    for (auto& s : out) {
        while (!s.empty() && s.front() == ' ') s.erase(s.begin());
        while (!s.empty() && s.back() == ' ') s.pop_back();
    }
    return out;
}

std::string unquote(std::string s) {
    if (s.size() >= 2 && s.front() == '`' && s.back() == '`') return s.substr(1, s.size() - 2);
    return s;
}

std::vector<row> table() {
    const std::string text = read_file(fs::path(PRUNE_SOURCE_DIR) / "docs" / "bad-inputs.md");
    REQUIRE(!text.empty());
    std::vector<row> rows;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("| ", 0) != 0) continue;
        const auto c = cells(line);
        if (c.size() != 6 || c[0].empty() || c[0].find_first_not_of("0123456789") != std::string::npos) continue;
        row r;
        r.number = std::stoi(c[0]);
        r.binary = c[1];
        r.input = c[2];
        r.command = unquote(c[3]);
        r.message = unquote(c[4]);
        r.exit_code = std::stoi(c[5]);
        rows.push_back(r);
    }
    return rows;
}

std::string substitute(std::string s, const std::string& from, const std::string& to) {
    for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
        s.replace(at, from.size(), to);
    }
    return s;
}

// Every path under `dir` (recursively) with its size, so that a new, removed or grown file shows.
std::map<std::string, std::uintmax_t> listing(const fs::path& dir) {
    std::map<std::string, std::uintmax_t> out;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
        out[e.path().string()] = e.is_regular_file() ? e.file_size() : 0;
    }
    return out;
}

// ---- the fixture ------------------------------------------------------------------------
// A tiny BERT: vocab 20, hidden 32, 2 layers x 4 heads, FFN 64, 16 positions, 2 labels.
using prune_test::tiny_config;

struct safetensors_parts {
    nlohmann::ordered_json header;
    std::string data;
};

safetensors_parts split(const std::string& file) {
    std::uint64_t n = 0;
    std::memcpy(&n, file.data(), 8);
    return {nlohmann::ordered_json::parse(file.substr(8, n)), file.substr(8 + n)};
}

std::string join(const nlohmann::ordered_json& header, const std::string& data) {
    std::string h = header.dump();
    while (h.size() % 8 != 0) h += ' ';
    std::uint64_t n = h.size();
    std::string out(8, '\0');
    std::memcpy(out.data(), &n, 8);
    return out + h + data;
}

class fixture {
public:
    fixture() : dir_("prune_bad_inputs"), d_(dir_.path() / "in") {
        fs::create_directories(d_);
        const bert::weights w = bert::random_weights(tiny_config(), 7, 0.1f);
        bert::save_model(w, d_ / "model");
        make_data();
        make_models();
        make_configs();
        make_masks();
        make_decoders();
        write_file(d_ / "afile", "a regular file, not a directory\n");
        fs::create_directories(d_ / "empty-dir");
    }
    const fs::path& d() const { return d_; }
    fs::path stderr_path() const { return dir_.path() / "stderr.txt"; }

private:
    fs::path model_copy(const std::string& name) {
        fs::copy(d_ / "model", d_ / name, fs::copy_options::recursive);
        return d_ / name;
    }

    // Rewrites d/name/model.safetensors with the writer after `edit` changed the tensor list.
    template <class Edit>
    void rewrite_tensors(const std::string& name, Edit edit) {
        const fs::path dir = model_copy(name);
        struct entry {
            std::string name;
            io::dtype type;
            std::vector<std::size_t> shape;
            std::vector<std::byte> bytes;
        };
        std::vector<entry> entries;
        {
            const io::checkpoint ckpt = io::checkpoint::open(dir);
            for (const auto& info : ckpt.tensors()) {
                const auto b = ckpt.bytes(info.name);
                entries.push_back({info.name, info.type, info.shape, std::vector<std::byte>(b.begin(), b.end())});
            }
        }
        edit(entries);
        io::safetensors_writer writer;
        for (const auto& e : entries) writer.add(e.name, e.type, e.shape, e.bytes);
        writer.write(dir / "model.safetensors");
    }

    template <class Edit>
    void edit_header(const std::string& name, Edit edit) {
        const fs::path file = model_copy(name) / "model.safetensors";
        auto parts = split(read_file(file));
        edit(parts.header);
        write_file(file, join(parts.header, parts.data));
    }

    template <class Edit>
    void edit_config(const std::string& name, Edit edit) {
        const fs::path file = model_copy(name) / "config.json";
        auto j = nlohmann::ordered_json::parse(read_file(file));
        edit(j);
        write_file(file, j.dump(2));
    }

    static void set_float(std::vector<std::byte>& bytes, std::size_t i, float v) {
        std::memcpy(bytes.data() + i * sizeof(float), &v, sizeof(float));
    }

    void make_models() {
        const std::string q0 = "bert.encoder.layer.0.attention.self.query.weight";
        const std::string file = read_file(d_ / "model" / "model.safetensors");
        // Damaged files.
        model_copy("st-truncated");
        write_file(d_ / "st-truncated" / "model.safetensors", file.substr(0, file.size() - 64));
        model_copy("st-header-past-eof");
        {
            std::string f = file;
            const std::uint64_t n = file.size() + 1000;
            std::memcpy(f.data(), &n, 8);
            write_file(d_ / "st-header-past-eof" / "model.safetensors", f);
        }
        model_copy("st-tiny-file");
        write_file(d_ / "st-tiny-file" / "model.safetensors", file.substr(0, 5));
        model_copy("st-header-not-json");
        {
            auto parts = split(file);
            std::string h = parts.header.dump();
            h[0] = '[';
            std::uint64_t n = h.size();
            std::string f(8, '\0');
            std::memcpy(f.data(), &n, 8);
            write_file(d_ / "st-header-not-json" / "model.safetensors", f + h + parts.data);
        }
        edit_header("st-overlap", [](nlohmann::ordered_json& h) {
            h["bert.encoder.layer.0.attention.self.key.bias"]["data_offsets"] =
                h["bert.encoder.layer.0.attention.self.query.bias"]["data_offsets"];
        });
        edit_header("st-out-of-file", [](nlohmann::ordered_json& h) {
            auto& o = h["classifier.bias"]["data_offsets"];
            const std::size_t end = o[1].get<std::size_t>();
            o = {end + 4096, end + 4096 + 8};
        });
        edit_header("st-size-mismatch", [](nlohmann::ordered_json& h) {
            h["bert.encoder.layer.0.attention.self.query.bias"]["shape"] = {33};
        });
        edit_header("st-unknown-dtype", [](nlohmann::ordered_json& h) {
            h["bert.encoder.layer.0.attention.self.query.bias"]["dtype"] = "F8_E4M3";
        });
        // Well-formed files that disagree with the config.
        rewrite_tensors("st-missing-tensor", [](auto& entries) {
            std::erase_if(entries, [](const auto& e) { return e.name == "bert.encoder.layer.1.output.dense.weight"; });
        });
        rewrite_tensors("st-wrong-shape", [&](auto& entries) {
            for (auto& e : entries) {
                if (e.name == q0) {
                    e.shape = {32, 31};
                    e.bytes.resize(32 * 31 * sizeof(float));
                }
            }
        });
        rewrite_tensors("st-int-dtype", [](auto& entries) {
            for (auto& e : entries) {
                if (e.name == "classifier.bias") e.type = io::dtype::I32;
            }
        });
        rewrite_tensors("st-nan", [&](auto& entries) {
            for (auto& e : entries) {
                if (e.name == q0) set_float(e.bytes, 37, std::numeric_limits<float>::quiet_NaN());
            }
        });
        rewrite_tensors("st-inf", [](auto& entries) {
            for (auto& e : entries) {
                if (e.name == "bert.embeddings.word_embeddings.weight") set_float(e.bytes, 3, -std::numeric_limits<float>::infinity());
            }
        });
        // Finite weights, but 3e38 throughout one matrix: the forward pass overflows, every logit is NaN.
        rewrite_tensors("st-huge", [](auto& entries) {
            for (auto& e : entries) {
                if (e.name != "bert.encoder.layer.1.output.dense.weight") continue;
                for (std::size_t i = 0; i < e.bytes.size() / sizeof(float); ++i) set_float(e.bytes, i, 3e38f);
            }
        });
        fs::create_directories(d_ / "no-model");
        fs::copy(d_ / "model" / "config.json", d_ / "no-model" / "config.json");
        fs::create_directories(d_ / "no-config");
        fs::copy(d_ / "model" / "model.safetensors", d_ / "no-config" / "model.safetensors");
    }

    void make_configs() {
        edit_config("cfg-heads-indivisible", [](auto& j) { j["num_attention_heads"] = 5; });
        edit_config("cfg-missing-key", [](auto& j) { j.erase("vocab_size"); });
        edit_config("cfg-negative", [](auto& j) { j["intermediate_size"] = -64; });
        edit_config("cfg-huge-vocab", [](auto& j) { j["vocab_size"] = 400000000; });
        edit_config("cfg-activation", [](auto& j) { j["hidden_act"] = "relu"; });
        edit_config("cfg-pruned-heads", [](auto& j) { j["pruned_heads"] = {{"0", {4}}}; });
        edit_config("cfg-labels", [](auto& j) {
            j["num_labels"] = 3;
            j["id2label"] = {{"0", "a"}, {"1", "b"}};
        });
        model_copy("cfg-not-json");
        write_file(d_ / "cfg-not-json" / "config.json", "{\"hidden_size\": 32,\n \"num_attention_heads\": 4\n");
    }

    void make_data() {
        // Valid rows: [CLS]=2 ... ids in [5, 20), labels 0/1.
        std::string dev;
        for (int i = 0; i < 8; ++i) {
            dev += "{\"input_ids\": [2, " + std::to_string(5 + i) + ", " + std::to_string(19 - i) + ", 3], \"label\": " +
                   std::to_string(i % 2) + "}\n";
        }
        write_file(d_ / "dev.jsonl", dev);
        write_file(d_ / "train.jsonl", dev + dev);
        const std::string good = "{\"input_ids\": [2, 7, 3], \"label\": 1}\n";
        write_file(d_ / "d-token-oob.jsonl", good + "{\"input_ids\": [2, 20, 3], \"label\": 0}\n" + good);
        write_file(d_ / "d-negative-id.jsonl", good + good + "{\"input_ids\": [2, -1, 3], \"label\": 0}\n");
        std::string long_row = "{\"input_ids\": [2";
        for (int i = 0; i < 16; ++i) long_row += ", 5";
        write_file(d_ / "d-too-long.jsonl", good + long_row + "], \"label\": 0}\n");
        write_file(d_ / "d-empty.jsonl", "");
        write_file(d_ / "d-blank.jsonl", "\n  \n\n");
        write_file(d_ / "d-malformed.jsonl", good + good + "{\"input_ids\": [2, 5, 3], \"label\": 1\n" + good);
        write_file(d_ / "d-label-oob.jsonl", good + good + good + "{\"input_ids\": [2, 5, 3], \"label\": 2}\n");
        write_file(d_ / "d-no-label.jsonl", good + "{\"input_ids\": [2, 5, 3]}\n");
        write_file(d_ / "d-text-no-vocab.jsonl", "{\"text\": \"a b c\", \"label\": 0}\n");
        write_file(d_ / "d-text-nul.jsonl", "{\"text\": \"a\\u0000b c\", \"label\": 0}\n");
        write_file(d_ / "d-types-length.jsonl", "{\"input_ids\": [2, 5, 3], \"token_type_ids\": [0, 0], \"label\": 0}\n");
        write_file(d_ / "d-mask-first.jsonl", "{\"input_ids\": [2, 5, 3], \"attention_mask\": [1, 1, 1], \"label\": 0}\n"
                                              "{\"input_ids\": [2, 5, 3], \"attention_mask\": [0, 1, 1], \"label\": 1}\n");
        write_file(d_ / "d-token-type-oob.jsonl", good + "{\"input_ids\": [2, 5, 3], \"token_type_ids\": [0, 2, 0], \"label\": 0}\n");
        write_file(d_ / "d-not-object.jsonl", good + "[2, 5, 3]\n");
        std::string ids;  // 2 MiB of token ids on one line: far beyond 16 positions, refused after 1 MiB
        while (ids.size() < (std::size_t{2} << 20)) ids += "5, ";
        write_file(d_ / "d-huge-row.jsonl", good + "{\"input_ids\": [2, " + ids + "3], \"label\": 0}\n");
        write_file(d_ / "lm-huge-row.jsonl", "{\"input_ids\": [1, 2]}\n{\"input_ids\": [" + ids + "3]}\n");
    }

    void make_masks() {
        write_file(d_ / "mask-shape.json", R"({"heads": [[1, 1, 1], [1, 1, 1]]})");
        write_file(d_ / "mask-layers.json", R"({"heads": [[1, 1, 1, 1]], "mlps": [1]})");
        write_file(d_ / "mask-mlps.json", R"({"heads": [[1, 1, 1, 1], [1, 1, 1, 1]], "mlps": [1, 1, 1]})");
        write_file(d_ / "mask-values.json", R"({"heads": [[1, 2, 1, 1], [1, 1, 1, 1]]})");
        write_file(d_ / "mask-not-json.json", R"({"heads": [[1, 1, 1, 1], [1, 1, 1, 1]])");
        write_file(d_ / "mask-none.json", R"({"heads": [[0, 0, 0, 0], [0, 0, 0, 0]], "mlps": [0, 0]})");
        const std::vector<std::uint8_t> ones(32 * 32, 1);
        {
            io::safetensors_writer w;
            w.add_u8("bert.encoder.layer.0.attention.self.query.weight", {32, 31},
                     std::span<const std::uint8_t>(ones.data(), 32 * 31));
            w.write(d_ / "emask-shape.safetensors");
        }
        {
            io::safetensors_writer w;
            w.add_u8("bert.encoder.layer.7.attention.self.query.weight", {32, 32}, ones);
            w.write(d_ / "emask-unknown.safetensors");
        }
        {
            io::safetensors_writer w;
            const std::vector<float> f(32 * 32, 1.0f);
            w.add("bert.encoder.layer.0.attention.self.query.weight", io::dtype::F32, {32, 32}, std::as_bytes(std::span(f)));
            w.write(d_ / "emask-f32.safetensors");
        }
    }

    // `lm` in two shards with an index, damaged: lm-shard-cut's second shard is 64 bytes short,
    // lm-shard-gone's index names a second shard that is not there.
    void make_sharded_decoders() {
        const io::checkpoint lm = io::checkpoint::open(d_ / "lm");
        const std::size_t n = lm.tensors().size();
        const std::string second = "model-00002-of-00002.safetensors";
        for (const char* name : {"lm-shard-cut", "lm-shard-gone"}) {
            std::size_t t = 0;
            prune_test::reshard(d_ / "lm", d_ / name,
                                [&](const std::string&) { return 2 * t++ < n ? "model-00001-of-00002.safetensors" : second; },
                                [](const std::string&) { return false; });
            if (std::string(name) == "lm-shard-gone") fs::remove(d_ / name / second);
            else fs::resize_file(d_ / name / second, fs::file_size(d_ / name / second) - 64);
        }
    }

    // Importance matrices of `lm` (llama-imatrix's GGUF layout, every sum 1 over 10 tokens):
    // lm-imatrix-missing.gguf lacks blk.1.ffn_down.weight; in lm-imatrix-width.gguf
    // blk.0.attn_q.weight has 31 columns (the weight reads 32).
    void make_imatrices() {
        io::imatrix all;
        for (int l = 0; l < 2; ++l) {
            for (const std::string w : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}) {
                const std::vector<double> sums(w == "ffn_down" ? 48 : 32, 1.0);
                all.entries.push_back(io::imatrix_entry_from("blk." + std::to_string(l) + "." + w + ".weight", sums, 10));
            }
        }
        io::imatrix missing = all;
        missing.entries.pop_back();
        io::write_imatrix(d_ / "lm-imatrix-missing.gguf", missing);
        all.entries.front() = io::imatrix_entry_from("blk.0.attn_q.weight", std::vector<double>(31, 1.0), 10);
        io::write_imatrix(d_ / "lm-imatrix-width.gguf", all);
    }

    // `lm` as GGUF (lm.gguf), and lm-q8.gguf: the same with blk.1.ffn_up.weight [48, 32] in
    // llama.cpp's Q8_0 (48 rows of one 34-byte block, zeros).
    void make_gguf_models() {
        io::convert_hf_to_gguf(d_ / "lm", d_ / "lm.gguf");
        const io::gguf_file file = io::gguf_file::open(d_ / "lm.gguf");
        io::gguf_model m = io::borrow_gguf_model(file);
        for (io::tensor_blob& t : m.tensors) {
            if (t.name == "blk.1.ffn_up.weight") {
                t.type = io::ggml_type::Q8_0;
                t.owned.assign(48 * 34, std::byte{0});
            }
        }
        io::write_gguf_model(m, d_ / "lm-q8.gguf");
    }

    // Causal LMs: `lm` is a tiny Llama (vocab 50, hidden 32, 2 layers x 4 heads, 2 K/V heads, FFN 48,
    // 16 positions); lm-* copies with a bad config.json; lm*.jsonl data; mask-lm-*.json masks.
    void make_decoders() {
        const std::string base = R"("model_type": "llama", "hidden_size": 32, "num_attention_heads": 4,
            "num_key_value_heads": 2, "num_hidden_layers": 2, "intermediate_size": 48, "vocab_size": 50,
            "max_position_embeddings": 16)";
        const decoder::config cfg = decoder::config_from_json(io::parse_json("{" + base + "}", "lm config"));
        decoder::save_model(decoder::random_weights(cfg, 3, 0.1f), d_ / "lm");
        decoder::weights huge = decoder::random_weights(cfg, 3, 0.1f);  // finite, but layer 0's MLP output overflows
        std::fill(huge.layers[0].down.begin(), huge.layers[0].down.end(), 3e38f);
        decoder::save_model(huge, d_ / "lm-huge");
        {  // `lm` with a NaN in layer 1's down_proj (save_model refuses to write one): prune-eval finds it when it reads layer 1
            const io::checkpoint lm = io::checkpoint::open(d_ / "lm");
            io::safetensors_writer w;
            std::vector<float> down = lm.to_float("model.layers.1.mlp.down_proj.weight");
            down[5] = std::numeric_limits<float>::quiet_NaN();
            for (const io::tensor_info& info : lm.tensors()) {
                if (info.name == "model.layers.1.mlp.down_proj.weight") w.add(info.name, info.type, info.shape, std::as_bytes(std::span(down)));
                else w.add(info.name, info.type, info.shape, lm.bytes(info.name));
            }
            fs::create_directories(d_ / "lm-nan-layer");
            fs::copy_file(d_ / "lm" / "config.json", d_ / "lm-nan-layer" / "config.json");
            w.write(d_ / "lm-nan-layer" / "model.safetensors");
        }
        auto lm_copy = [&](const std::string& name, const std::string& from, const std::string& to) {
            fs::copy(d_ / "lm", d_ / name, fs::copy_options::recursive);
            std::string config = base;
            config.replace(config.find(from), from.size(), to);
            write_file(d_ / name / "config.json", "{" + config + "}");
        };
        lm_copy("lm-unknown-type", R"("llama")", R"("mistral")");
        lm_copy("lm-gqa", R"("num_key_value_heads": 2)", R"("num_key_value_heads": 3)");
        lm_copy("lm-missing-tensor", R"("num_hidden_layers": 2)", R"("num_hidden_layers": 3)");
        lm_copy("lm-wrong-shape", R"("intermediate_size": 48)", R"("intermediate_size": 40)");
        lm_copy("lm-huge-vocab", R"("vocab_size": 50)", R"("vocab_size": 400000000)");
        make_sharded_decoders();
        make_imatrices();
        make_gguf_models();
        std::string rows;
        for (int i = 0; i < 6; ++i) {
            rows += "{\"input_ids\": [1";
            for (int t = 0; t <= 2 * i; ++t) rows += ", " + std::to_string((7 * i + 3 * t) % 50);
            rows += "]}\n";
        }
        write_file(d_ / "lm.jsonl", rows);
        const std::string good = "{\"input_ids\": [1, 7, 9]}\n";
        write_file(d_ / "lm-token-oob.jsonl", good + "{\"input_ids\": [1, 50, 2]}\n");
        std::string long_row = "{\"input_ids\": [1";
        for (int i = 0; i < 16; ++i) long_row += ", 5";
        write_file(d_ / "lm-too-long.jsonl", good + long_row + "]}\n");
        write_file(d_ / "lm-empty.jsonl", "\n");
        write_file(d_ / "lm-empty-row.jsonl", "{\"input_ids\": []}\n");
        write_file(d_ / "lm-single.jsonl", "{\"input_ids\": [5]}\n{\"input_ids\": [7]}\n");
        write_file(d_ / "mask-lm-kv.json", R"({"kv_groups": [[1, 1, 1], [1, 1]]})");
        write_file(d_ / "mask-lm-channels.json", R"({"mlp_channels": [[1, 0, 1], [1, 1]]})");  // layers have 48 channels
        {
            const std::vector<std::uint8_t> ones(48 * 32, 1);
            io::safetensors_writer shape;  // down_proj is [32, 48]
            shape.add_u8("model.layers.1.mlp.down_proj.weight", {48, 32}, ones);
            shape.write(d_ / "emask-lm-shape.safetensors");
            io::safetensors_writer unknown;
            unknown.add_u8("model.layers.2.mlp.down_proj.weight", {32, 48}, ones);
            unknown.write(d_ / "emask-lm-unknown.safetensors");
            // packed bits (docs/formats.md): down_proj [32, 48] stored as 32 rows of 6 bytes
            std::vector<std::uint8_t> packed(32 * 6, 0xff);
            packed[5] = 0x3f;  // with 45 bits a row, bits 5..7 of a row's last byte are padding: bit 5 set
            for (const auto& [file, last] : {std::pair{"emask-lm-bits-pad.safetensors", 45}, std::pair{"emask-lm-bits-len.safetensors", 40}}) {
                io::safetensors_writer bits;
                bits.add_u8("model.layers.1.mlp.down_proj.weight", {32, 6}, packed);
                bits.set_metadata("prune.mask_layout", "bits-lsb");
                bits.set_metadata("prune.mask_last_dims", R"({"model.layers.1.mlp.down_proj.weight": )" + std::to_string(last) + "}");
                bits.write(d_ / file);
            }
        }
        write_file(d_ / "mask-lm-uneven.json", R"({"heads": [[1, 0, 1, 1], [1, 1, 1, 1]]})");  // groups of 1 and 2
        write_file(d_ / "mask-lm-none.json", R"({"heads": [[0, 0, 0, 0], [0, 0, 0, 0]], "mlps": [0, 0], "kv_groups": [[0, 0], [0, 0]]})");
        make_decoder_text();
    }

    // Text for causal LMs: `lm-tok` is `lm` with a byte-level BPE tokenizer.json of 50 ids trained
    // on lm.txt; `lm-wp` holds a WordPiece tokenizer.json (BERT's kind); lm-text.jsonl has text rows,
    // lm-short.txt fewer tokens than one window of 16.
    void make_decoder_text() {
        const std::string text = "the cat sat on the mat and the dog sat on the log by the cat.\n";
        write_file(d_ / "lm.txt", text + text);
        write_file(d_ / "lm-short.txt", "the cat.\n");
        write_file(d_ / "lm-text.jsonl", "{\"text\": \"the cat sat\"}\n");
        fs::copy(d_ / "lm", d_ / "lm-tok", fs::copy_options::recursive);
        text::bpe_trainer_options o;
        o.vocab_size = 50;
        o.min_frequency = 1;
        o.full_alphabet = false;
        text::bpe_trainer t(o);
        t.add_text(text);
        t.save(t.train(), d_ / "lm-tok" / "tokenizer.json");
        fs::copy(d_ / "lm", d_ / "lm-wp", fs::copy_options::recursive);
        write_file(d_ / "lm-wp" / "tokenizer.json", R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}}})");
    }

    prune_test::temp_dir dir_;  // d_ and the stderr file of the runs
    fs::path d_;                // where the binaries run and write: listed before and after each row
};

using prune_test::outcome;
using prune_test::last_line;

outcome run(const fixture& fx, const std::string& command) {
    return prune_test::run_binary(command, fx.d(), fx.stderr_path(), "OPENBLAS_NUM_THREADS=1");
}

}  // namespace

TEST_CASE("docs/bad-inputs.md: every bad input gives its exact message, exit 2, and writes nothing") {
    const auto rows = table();
    REQUIRE(rows.size() >= 25);
    fixture fx;
    const std::string d = fx.d().string();
    const bool print = std::getenv("PRUNE_BAD_INPUTS_PRINT") != nullptr;
    std::set<int> numbers;
    for (const row& r : rows) {
        INFO("row " << r.number << ": " << r.command);
        CHECK(numbers.insert(r.number).second);
        const auto before = listing(fx.d());
        const outcome o = run(fx, substitute(r.command, "{d}", d));
        const auto after = listing(fx.d());
        const std::string message = substitute(last_line(o.err), d, "{d}");
        if (print) {
            std::cout << "| " << r.number << " | " << r.binary << " | " << r.input << " | `" << r.command << "` | `"
                      << (o.code == 0 ? std::string("-") : message) << "` | " << o.code << " |\n";
        }
        CHECK(o.code == r.exit_code);
        if (r.exit_code == 0) {
            CHECK(after.size() > before.size());  // the allowed input ran and wrote its output
            for (const auto& [path, size] : after) {
                if (!before.count(path)) fs::remove_all(path);
            }
        } else {
            CHECK(message == r.message);
            CHECK(std::count(o.err.begin(), o.err.end(), '\n') >= 1);
            CHECK(before == after);  // no output, no staging debris
        }
    }
}
