// libFuzzer target: a GGUF file from arbitrary bytes, then the same bytes as an importance
// matrix in both of llama.cpp's layouts.
// Properties: the reader either throws a prune::error or yields tensors whose every accessor
// works (sizes agree with the type table; quantized tensors refuse their values with a
// dtype_error); everything read writes back with gguf_writer (when the writer's stricter
// limits accept it) and reads again to equal metadata and bytes; a llama/gpt2 model's
// hyperparameters parse or throw, and removing its block 0 leaves a consistent model.
#include <prune/io/gguf.hpp>
#include <prune/io/gguf_convert.hpp>
#include <prune/io/imatrix.hpp>

#include <cstdlib>
#include <cstring>

namespace {

void check(bool ok) {
    if (!ok) {
        std::abort();
    }
}

void check_tensors(const prune::io::gguf_file& file) {
    using namespace prune::io;
    for (const gguf_tensor_info& t : file.tensors()) {
        check(file.bytes(t.name).size() == t.byte_size);
        if (traits_of(t.type).quantized) {
            try {
                (void)file.to_float(t.name);
                check(false);
            } catch (const prune::dtype_error&) {
            }
            continue;
        }
        check(file.to_float(t.name).size() == t.numel());
        try {
            if (t.type == ggml_type::F32) check(file.view<float>(t.name).size() == t.numel());
            if (t.type == ggml_type::F16) check(file.view<prune::half>(t.name).size() == t.numel());
            if (t.type == ggml_type::BF16) check(file.view<prune::bfloat16>(t.name).size() == t.numel());
        } catch (const prune::format_error&) {
            // not aligned to the element (alignment 1): documented
        }
    }
}

void check_round_trip(const prune::io::gguf_file& file) {
    using namespace prune::io;
    gguf_writer writer;
    try {
        for (const gguf_kv& kv : file.metadata()) {
            writer.set(kv.key, kv.value);
        }
        for (const gguf_tensor_info& t : file.tensors()) {
            writer.add_borrowed(t.name, t.type, t.shape(), file.bytes(t.name));
        }
    } catch (const prune::error&) {
        return;  // names over 63 bytes, an alignment the writer refuses, ...: the writer is stricter
    }
    const std::vector<std::byte> bytes = writer.to_bytes();
    const gguf_file again = gguf_file::from_bytes(bytes, "rewritten");
    check(again.metadata().size() == file.metadata().size());
    for (std::size_t i = 0; i < file.metadata().size(); ++i) {
        check(again.metadata()[i].key == file.metadata()[i].key);
        check(again.metadata()[i].value == file.metadata()[i].value);
    }
    check(again.tensors().size() == file.tensors().size());
    for (const gguf_tensor_info& t : file.tensors()) {
        const auto a = file.bytes(t.name);
        const auto b = again.bytes(t.name);
        check(again.info(t.name).ne == t.ne && a.size() == b.size());
        check(a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
    }
}

void check_model(const prune::io::gguf_file& file) {
    using namespace prune::io;
    try {
        const decoder_hparams hp = hparams_from_gguf(file.metadata(), 0, "fuzz");
        check(hp.n_head.size() == hp.n_layer && hp.n_ff.size() == hp.n_layer);
        if (hp.n_layer == 0) {
            return;
        }
        gguf_model m = borrow_gguf_model(file);
        const std::vector<std::size_t> first = {0};
        remove_blocks(m, first);
        check(m.find(std::string(arch_name(hp.arch)) + ".block_count")->as_count() == hp.n_layer - 1);
    } catch (const prune::error&) {
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace prune::io;
    const auto bytes = std::as_bytes(std::span(data, size));
    try {
        const gguf_file file = gguf_file::from_bytes(bytes, "fuzz");
        check_tensors(file);
        check_round_trip(file);
        check_model(file);
        try {
            const imatrix m = read_imatrix(file);
            for (const imatrix_entry& e : m.entries) {
                check(m.column_norms(e.name).size() == e.columns);
            }
        } catch (const prune::error&) {
        }
    } catch (const prune::error&) {
    }
    try {
        const imatrix legacy = parse_imatrix_dat(bytes, "fuzz.dat");
        check(legacy.legacy && !legacy.entries.empty());
        for (const imatrix_entry& e : legacy.entries) {
            check(legacy.column_norms(e.name).size() == e.columns);
        }
    } catch (const prune::error&) {
    }
    return 0;
}
