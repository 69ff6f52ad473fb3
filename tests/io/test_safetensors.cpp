// Tests for prune/io/safetensors.hpp: files written by an independent Python writer
// (tests/io/safetensors_reference.py, on torch) read back bit-exactly, our files read
// back by that script's independent parser, round trips for every dtype, sharded
// checkpoints, write_like (a checkpoint written back in its own layout: the Python writer's
// shards and index, or one file), and a table of malformed files each giving its specific error.
#include <prune/io/checkpoint_writer.hpp>
#include <prune/io/safetensors.hpp>

#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstring>
#include <span>
#include <vector>

#include <sys/stat.h>

using namespace prune;
using namespace prune::io;

using prune_test::temp_dir;

namespace {

/// The raw bits of element i of a tensor's bytes, as an unsigned integer.
std::uint64_t bits_at(std::span<const std::byte> bytes, std::size_t size, std::size_t i) {
    std::uint64_t v = 0;
    std::memcpy(&v, bytes.data() + i * size, size);
    return v;
}

/// Checks a checkpoint-like source against the Python description {name: {dtype, shape, bits, float32_bits}}.
template <class Source>
void check_against(const Source& source, const nlohmann::json& expected) {
    REQUIRE(source.tensors().size() == expected.size());
    for (const auto& [name, e] : expected.items()) {
        INFO("tensor " << name);
        REQUIRE(source.contains(name));
        const tensor_info& info = source.info(name);
        CHECK(dtype_name(info.type) == e["dtype"].template get<std::string>());
        CHECK(info.shape == e["shape"].template get<std::vector<std::size_t>>());
        const auto bits = e["bits"].template get<std::vector<std::uint64_t>>();
        REQUIRE(info.numel() == bits.size());
        const auto bytes = source.bytes(name);
        for (std::size_t i = 0; i < bits.size(); ++i) {
            CHECK(bits_at(bytes, dtype_size(info.type), i) == bits[i]);
        }
        // to_float must agree with torch's own .to(torch.float32), bit for bit (NaN included)
        const auto f32 = e["float32_bits"].template get<std::vector<std::uint32_t>>();
        const std::vector<float> converted = source.to_float(name);
        REQUIRE(converted.size() == f32.size());
        for (std::size_t i = 0; i < f32.size(); ++i) {
            if (std::isnan(converted[i])) {
                CHECK(std::isnan(std::bit_cast<float>(f32[i])));
            } else {
                CHECK(std::bit_cast<std::uint32_t>(converted[i]) == f32[i]);
            }
        }
    }
}

/// The Python reference's files, generated once per process (torch is slow to import).
const temp_dir& reference_files() {
    static const temp_dir dir;
    static const bool written = [] {
        prune_test::run_python("io/safetensors_reference.py write " + dir.path().string());
        return true;
    }();
    (void)written;
    return dir;
}

}  // namespace

TEST_CASE("files written by the Python reference read back bit-exactly") {
    const temp_dir& dir = reference_files();
    const nlohmann::json expected = prune_test::read_json(dir / "expected.json");

    const safetensors_file file = safetensors_file::open(dir / "reference.safetensors");
    check_against(file, expected["reference"]);
    CHECK(file.metadata().at("format") == "pt");
    CHECK(file.metadata().at("written_by") == "safetensors_reference.py");

    SECTION("zero-copy views point into the mapping") {
        const auto weights = file.view<float>("encoder.weight");
        CHECK(weights.extents() == prune::shape{3, 4});
        const auto bytes = file.bytes("encoder.weight");
        CHECK(static_cast<const void*>(weights.data().data()) == static_cast<const void*>(bytes.data()));
        const auto file_span = file.file_bytes();
        CHECK(bytes.data() >= file_span.data());
        CHECK(bytes.data() + bytes.size() <= file_span.data() + file_span.size());
        CHECK(file.view<half>("half").size() == 10);
        CHECK(file.view<bfloat16>("brain").extents() == prune::shape{3, 4});
        CHECK(file.view<double>("double").extents() == prune::shape{2, 2});
        CHECK(file.view<float>("scalar").extents() == prune::shape{});
        CHECK(file.view<float>("scalar").data()[0] == 2.5f);
        CHECK(file.view<float>("empty").size() == 0);
    }
    SECTION("a view of the wrong dtype is a dtype_error naming both") {
        CHECK_THROWS_SAYS(file.view<float>("half"), dtype_error,
                             "'half'", "is F16, not F32", "reference.safetensors");
        CHECK_THROWS_AS(file.view<double>("ids"), dtype_error);
    }
    SECTION("a missing tensor is a format_error naming it and the file") {
        CHECK_FALSE(file.contains("nope"));
        CHECK_THROWS_SAYS(file.info("nope"), format_error,
                             "no tensor 'nope'", "reference.safetensors");
    }
    SECTION("checkpoint::open on the file gives the same") {
        const checkpoint ckpt = checkpoint::open(dir / "reference.safetensors");
        check_against(ckpt, expected["reference"]);
    }
    SECTION("header order is kept") {
        CHECK(file.tensors().front().name == "double");
        CHECK(file.tensors().back().name == "odd.u8");
    }
}

TEST_CASE("sharded checkpoints through model.safetensors.index.json") {
    const temp_dir& reference = reference_files();
    const nlohmann::json expected = prune_test::read_json(reference / "expected.json");
    temp_dir dir;  // a private copy: sections below damage it
    std::filesystem::copy(reference.path(), dir.path(), std::filesystem::copy_options::recursive);
    const auto sharded = dir / "sharded";

    const checkpoint by_dir = checkpoint::open(sharded);
    check_against(by_dir, expected["sharded"]);
    CHECK(by_dir.files().size() == 2);
    CHECK(by_dir.file_of("classifier.weight").find("model-00002-of-00002.safetensors") != std::string::npos);
    CHECK(by_dir.file_of("bert.embeddings.word_embeddings.weight").find("model-00001-of-00002") != std::string::npos);
    CHECK(by_dir.view<float>("bert.encoder.layer.0.attention.self.query.weight").extents() == prune::shape{4, 4});
    CHECK(by_dir.view<half>("classifier.weight").extents() == prune::shape{2, 4});
    CHECK(by_dir.metadata().at("format") == "pt");
    // the index's order (sorted names) is the checkpoint's order
    CHECK(by_dir.tensors().front().name == "bert.embeddings.word_embeddings.weight");
    CHECK(by_dir.tensors().back().name == "classifier.weight");

    const checkpoint by_index = checkpoint::open(sharded / "model.safetensors.index.json");
    check_against(by_index, expected["sharded"]);
    CHECK_THROWS_SAYS(by_dir.info("missing.weight"), format_error,
                         "'missing.weight'", "index.json");

    SECTION("a model directory with model.safetensors") {
        std::filesystem::copy_file(dir / "reference.safetensors", sharded / "model.safetensors");
        const checkpoint single = checkpoint::open(sharded);  // model.safetensors wins, as in HF
        check_against(single, expected["reference"]);
    }
    SECTION("a missing shard") {
        std::filesystem::remove(sharded / "model-00002-of-00002.safetensors");
        CHECK_THROWS_SAYS(checkpoint::open(sharded), format_error,
                             "model-00002-of-00002.safetensors", "does not exist");
    }
    SECTION("a shard that lacks a mapped tensor") {
        auto index = prune_test::read_json(sharded / "model.safetensors.index.json");
        index["weight_map"]["classifier.weight"] = "model-00001-of-00002.safetensors";
        prune_test::write_bytes(sharded / "model.safetensors.index.json", index.dump());
        CHECK_THROWS_SAYS(checkpoint::open(sharded), format_error,
                             "'classifier.weight'", "does not contain it");
    }
    SECTION("a shard path that leaves the directory") {
        auto index = prune_test::read_json(sharded / "model.safetensors.index.json");
        index["weight_map"]["classifier.weight"] = "../reference.safetensors";
        prune_test::write_bytes(sharded / "model.safetensors.index.json", index.dump());
        CHECK_THROWS_SAYS(checkpoint::open(sharded), format_error, "inside the model directory");
    }
    SECTION("an index without weight_map") {
        prune_test::write_bytes(sharded / "model.safetensors.index.json", R"({"metadata": {}})");
        CHECK_THROWS_SAYS(checkpoint::open(sharded), format_error, "weight_map");
    }
    SECTION("an index that is not JSON") {
        prune_test::write_bytes(sharded / "model.safetensors.index.json", "{\"weight_map\": {");
        CHECK_THROWS_SAYS(checkpoint::open(sharded), format_error, "not valid JSON");
    }
    SECTION("a directory without weights") {
        temp_dir empty;
        CHECK_THROWS_SAYS(checkpoint::open(empty.path()), io_error, "neither model.safetensors");
    }
}

TEST_CASE("write_like writes a checkpoint back in its layout: one file, or the same shards and index") {
    const temp_dir& reference = reference_files();
    const nlohmann::json expected = prune_test::read_json(reference / "expected.json");
    const checkpoint sharded = checkpoint::open(reference / "sharded");
    CHECK(sharded.sharded());
    CHECK(sharded.shard_name_of("classifier.weight") == "model-00002-of-00002.safetensors");

    SECTION("shards: the same files, tensors, dtypes, bits; the same weight_map; total_size in tensor bytes") {
        temp_dir out;
        write_like(sharded, out.path());
        CHECK_FALSE(std::filesystem::exists(out / "model.safetensors"));
        for (const char* shard : {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}) {
            INFO(shard);
            const safetensors_file a = safetensors_file::open(reference / "sharded" / shard), b = safetensors_file::open(out / shard);
            REQUIRE(a.tensors().size() == b.tensors().size());
            for (const tensor_info& t : a.tensors()) CHECK(b.contains(t.name));
            CHECK(b.metadata() == a.metadata());
        }
        const checkpoint back = checkpoint::open(out.path());
        check_against(back, expected["sharded"]);
        const nlohmann::json index = prune_test::read_json(out / "model.safetensors.index.json");
        CHECK(index["weight_map"] == prune_test::read_json(reference / "sharded" / "model.safetensors.index.json")["weight_map"]);
        std::size_t total = 0;  // from the Python writer's description: numel x dtype size
        for (const auto& [name, e] : expected["sharded"].items()) {
            total += e["bits"].size() * dtype_size(parse_dtype(e["dtype"].get<std::string>()));
        }
        CHECK(index["metadata"]["total_size"].get<std::size_t>() == total);
    }
    SECTION("a replaced tensor gets its new bytes, in its shard") {
        temp_dir out;
        std::vector<half> h(8);
        for (std::size_t i = 0; i < h.size(); ++i) h[i] = to_half(static_cast<float>(i) - 3.5f);
        const auto bytes = std::as_bytes(std::span<const half>(h));
        write_like(sharded, out.path(), {{"classifier.weight", std::vector<std::byte>(bytes.begin(), bytes.end())}});
        const checkpoint back = checkpoint::open(out.path());
        CHECK(back.file_of("classifier.weight").find("model-00002-of-00002.safetensors") != std::string::npos);
        CHECK(back.to_float("classifier.weight") == std::vector<float>{-3.5f, -2.5f, -1.5f, -0.5f, 0.5f, 1.5f, 2.5f, 3.5f});
        CHECK(back.to_float("bert.encoder.layer.0.attention.self.query.bias") ==
              sharded.to_float("bert.encoder.layer.0.attention.self.query.bias"));
    }
    SECTION("one file: model.safetensors with its metadata, no index") {
        temp_dir out;
        const checkpoint single = checkpoint::open(reference / "reference.safetensors");
        CHECK_FALSE(single.sharded());
        write_like(single, out.path());
        CHECK_FALSE(std::filesystem::exists(out / "model.safetensors.index.json"));
        const checkpoint back = checkpoint::open(out / "model.safetensors");
        check_against(back, expected["reference"]);
        CHECK(back.metadata().at("written_by") == "safetensors_reference.py");
    }
    SECTION("bad replacements: named, nothing written") {
        temp_dir out;
        CHECK_THROWS_SAYS(write_like(sharded, out.path(), {{"no.such.weight", std::vector<std::byte>(4)}}), format_error,
                          "'no.such.weight'");
        CHECK_THROWS_SAYS(write_like(sharded, out.path(), {{"classifier.weight", std::vector<std::byte>(4)}}), shape_error,
                          "'classifier.weight'", "has 4 bytes (expected 16");
        CHECK(std::filesystem::is_empty(out.path()));
    }
}

TEST_CASE("checkpoint_writer: the input's own layout byte for byte, tensors put in any order, nothing left unfinished") {
    const temp_dir& reference = reference_files();
    const checkpoint sharded = checkpoint::open(reference / "sharded");
    const std::vector<std::string> shards = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};

    SECTION("nothing put: every file is the Python writer's, byte for byte") {
        temp_dir out;
        write_like(sharded, out.path());
        for (const auto& shard : shards) CHECK(prune_test::read_bytes(out / shard) == prune_test::read_bytes(reference / "sharded" / shard));
    }
    SECTION("every tensor put again, last first, after a release: the same bytes") {
        temp_dir out;
        checkpoint_writer writer(sharded, out.path());
        for (auto it = sharded.tensors().rbegin(); it != sharded.tensors().rend(); ++it) {
            const std::vector<std::byte> copy(sharded.bytes(it->name).begin(), sharded.bytes(it->name).end());
            sharded.release(it->name);  // the bytes come back from the page cache
            CHECK(std::equal(copy.begin(), copy.end(), sharded.bytes(it->name).begin()));
            writer.put(it->name, copy);
            CHECK(writer.was_put(it->name));
        }
        writer.finish();
        for (const auto& shard : shards) CHECK(prune_test::read_bytes(out / shard) == prune_test::read_bytes(reference / "sharded" / shard));
    }
    SECTION("a put tensor's bytes land in its place; the others are copied") {
        temp_dir out;
        checkpoint_writer writer(sharded, out.path());
        const std::vector<std::byte> zeros(sharded.info("classifier.weight").byte_size(), std::byte{0});
        writer.put("classifier.weight", zeros);
        CHECK_FALSE(writer.was_put("bert.encoder.layer.0.attention.self.query.bias"));
        writer.finish();
        const checkpoint back = checkpoint::open(out.path());
        CHECK(back.to_float("classifier.weight") == std::vector<float>(8, 0.0f));
        for (const tensor_info& t : sharded.tensors()) {
            if (t.name == "classifier.weight") continue;
            INFO(t.name);
            CHECK(std::ranges::equal(back.bytes(t.name), sharded.bytes(t.name)));
        }
    }
    SECTION("bad puts are named; an unfinished writer leaves nothing behind") {
        temp_dir out;
        {
            checkpoint_writer writer(sharded, out.path());
            CHECK_THROWS_SAYS(writer.put("no.such.weight", std::vector<std::byte>(4)), format_error, "'no.such.weight'");
            CHECK_THROWS_SAYS(writer.put("classifier.weight", std::vector<std::byte>(4)), shape_error, "'classifier.weight'",
                              "has 4 bytes (expected 16");
            writer.put("classifier.weight", std::vector<std::byte>(16));
            CHECK_THROWS_SAYS(writer.put("classifier.weight", std::vector<std::byte>(16)), value_error, "put twice");
        }
        CHECK(std::filesystem::is_empty(out.path()));
    }
}

TEST_CASE("writer round trips every dtype, and the Python parser agrees") {
    temp_dir dir;
    safetensors_writer writer;
    const std::vector<float> f32 = {1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-40f};
    writer.add("f32", make_view(f32.data(), {2, 3}));
    const std::vector<double> f64 = {1.0 / 3.0, -2.5e300};
    writer.add("f64", tensor_view<const double>(std::span<const double>(f64)));
    const std::vector<half> f16 = {to_half(1.0f), to_half(-65504.0f), to_half(6e-8f)};
    writer.add("f16", tensor_view<const half>(std::span<const half>(f16)));
    const std::vector<bfloat16> bf16 = {to_bfloat16(3.0e38f), to_bfloat16(-1.0f)};
    writer.add("bf16", make_view(bf16.data(), {1, 2}));
    const std::vector<std::int64_t> i64 = {-5, 1LL << 50};
    writer.add("i64", dtype::I64, {2}, std::as_bytes(std::span(i64)));
    const std::vector<std::int32_t> i32 = {7, -7, 1 << 30};
    writer.add("i32", dtype::I32, {3}, std::as_bytes(std::span(i32)));
    const std::vector<std::uint8_t> u8 = {0, 1, 1, 0, 1};
    writer.add_u8("mask.u8", {5}, u8);
    const std::vector<std::uint8_t> flags = {1, 0, 0};
    writer.add("flags", dtype::BOOL, {3, 1}, std::as_bytes(std::span(flags)));
    // column-major 2 x 3 matrix [[1 2 3] [4 5 6]] is stored 1 4 2 5 3 6; written row-major
    const std::vector<float> column_major = {1, 4, 2, 5, 3, 6};
    writer.add("colmajor", make_view(column_major.data(), {2, 3}, layout::column_major));
    writer.add("scalar", dtype::F32, {}, std::as_bytes(std::span(f32).first(1)));
    writer.add("empty", dtype::F32, {0, 4}, {});
    writer.set_metadata("format", "pt");
    const auto path = dir / "ours.safetensors";
    writer.write(path);
    CHECK(dir.listing() == std::vector<std::string>{"ours.safetensors"});

    const safetensors_file file = safetensors_file::open(path);
    CHECK(file.tensors().size() == 11);
    const auto v = file.view<float>("f32");
    CHECK(v.extents() == prune::shape{2, 3});
    CHECK(std::equal(v.data().begin(), v.data().end(), f32.begin(),
                     [](float a, float b) { return std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b); }));
    CHECK(file.view<double>("f64").data()[1] == -2.5e300);
    CHECK(file.view<half>("f16").data()[1].bits == f16[1].bits);
    CHECK(file.view<bfloat16>("bf16").data()[0].bits == bf16[0].bits);
    CHECK(file.to_float("f16") == std::vector<float>{1.0f, -65504.0f, to_float(f16[2])});
    CHECK(file.to_float("i64") == std::vector<float>{-5.0f, static_cast<float>(1LL << 50)});
    CHECK(file.to_float("i32") == std::vector<float>{7.0f, -7.0f, static_cast<float>(1 << 30)});
    CHECK(file.to_float("mask.u8") == std::vector<float>{0, 1, 1, 0, 1});
    CHECK(file.to_float("flags") == std::vector<float>{1, 0, 0});
    CHECK(file.info("flags").shape == std::vector<std::size_t>{3, 1});
    CHECK(file.to_float("colmajor") == std::vector<float>{1, 2, 3, 4, 5, 6});
    CHECK(file.to_float("scalar") == std::vector<float>{1.5f});
    CHECK(file.info("scalar").shape.empty());
    CHECK(file.info("empty").numel() == 0);
    CHECK(file.metadata().at("format") == "pt");
    // header padded to 8 bytes, every tensor aligned to its element size
    const auto all = file.file_bytes();
    std::uint64_t header_length = 0;
    std::memcpy(&header_length, all.data(), 8);
    CHECK(header_length % 8 == 0);
    for (const tensor_info& t : file.tensors()) {
        CHECK(t.begin % dtype_size(t.type) == 0);
    }
    CHECK(writer.to_bytes().size() == all.size());
    CHECK(std::equal(all.begin(), all.end(), writer.to_bytes().begin()));

    // the independent parser (torch.frombuffer) reads the same values
    prune_test::run_python("io/safetensors_reference.py read " + path.string() + " " + (dir / "seen.json").string());
    const auto seen = prune_test::read_json(dir / "seen.json");
    CHECK(seen["problems"].empty());
    CHECK(seen["metadata"]["format"] == "pt");
    check_against(file, seen["tensors"]);
    CHECK(seen["tensors"]["colmajor"]["float32_bits"].size() == 6);
}

TEST_CASE("writer rejects bad input and leaves nothing behind") {
    temp_dir dir;
    safetensors_writer writer;
    const std::vector<float> data = {1, 2, 3};
    writer.add("a", dtype::F32, {3}, std::as_bytes(std::span(data)));
    CHECK_THROWS_SAYS(writer.add("a", dtype::F32, {3}, std::as_bytes(std::span(data))), value_error,
                         "'a' added twice");
    CHECK_THROWS_SAYS(writer.add("b", dtype::F32, {2, 2}, std::as_bytes(std::span(data))), shape_error,
                         "12 bytes (expected 16");
    CHECK_THROWS_AS(writer.add("__metadata__", dtype::F32, {3}, std::as_bytes(std::span(data))), value_error);
    // unwritable target: the directory does not exist
    CHECK_THROWS_AS(writer.write(dir / "missing" / "x.safetensors"), io_error);
    // a target that is a directory: the rename fails, the temporary is removed
    std::filesystem::create_directory(dir / "taken");
    CHECK_THROWS_AS(writer.write(dir / "taken"), io_error);
    CHECK(dir.listing() == std::vector<std::string>{"taken"});
    // borrowed data is written as it is at write() time
    safetensors_writer borrowing;
    std::vector<float> live = {1, 2};
    borrowing.add_borrowed("live", dtype::F32, {2}, std::as_bytes(std::span(live)));
    live[1] = 9;
    borrowing.write(dir / "b.safetensors");
    CHECK(safetensors_file::open(dir / "b.safetensors").to_float("live") == std::vector<float>{1, 9});
}

TEST_CASE("a misaligned tensor cannot be viewed in place but converts") {
    // One U8 byte first, then an F32 at data offset 1: legal, but not 4-byte aligned.
    const std::string header =
        R"({"u":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"f":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}})";
    std::string bytes = prune_test::safetensors_bytes(header + std::string((8 - header.size() % 8) % 8, ' '), 5);
    const float value = 3.5f;
    std::memcpy(bytes.data() + bytes.size() - 4, &value, 4);
    const auto file = safetensors_file::from_bytes(std::as_bytes(std::span(bytes)), "misaligned");
    CHECK_THROWS_SAYS(file.view<float>("f"), format_error, "not a multiple of 4");
    CHECK(file.to_float("f") == std::vector<float>{3.5f});
}

TEST_CASE("malformed files each give their specific error") {
    using prune_test::safetensors_bytes;
    const std::string ok_entry = R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
    struct bad_case {
        const char* what;
        std::string bytes;
        const char* message;
    };
    std::string huge_length(8, '\0');
    const std::uint64_t huge = 200'000'000;
    std::memcpy(huge_length.data(), &huge, 8);
    std::string past_eof(8, '\0');
    const std::uint64_t forty = 40;
    std::memcpy(past_eof.data(), &forty, 8);
    past_eof += "{}";
    const std::string valid = safetensors_bytes("{" + ok_entry + "}", 8);
    const std::vector<bad_case> cases = {
        {"empty file", "", "is 0 bytes long (expected at least 8"},
        {"truncated length", std::string("\x10\0\0", 3), "is 3 bytes long"},
        {"header length past EOF", past_eof, "header length 40 runs past the end of the file (10 bytes"},
        {"header length above the limit", huge_length + "{}", "exceeds the limit of 100000000"},
        {"truncated data", valid.substr(0, valid.size() - 3), "run past the data section (5 bytes"},
        {"not JSON", safetensors_bytes("{\"w\": [1,", 0), "not valid JSON"},
        {"not an object", safetensors_bytes("[1, 2]"), "is a JSON array (expected an object)"},
        {"entry not an object", safetensors_bytes(R"({"w": 3})"), "tensor 'w' is a number"},
        {"unknown dtype", safetensors_bytes(R"({"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", 8),
         "unknown dtype 'Q4'"},
        {"dtype not a string", safetensors_bytes(R"({"w":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", 8),
         "dtype is 4 (expected a string)"},
        {"missing shape", safetensors_bytes(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", 8), "has no 'shape'"},
        {"missing data_offsets", safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2]}})", 8),
         "has no 'data_offsets'"},
        {"negative extent", safetensors_bytes(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8),
         "shape[0] is -2 (expected a non-negative integer)"},
        {"fractional extent", safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", 8),
         "shape[0] is 2.5"},
        {"shape not an array", safetensors_bytes(R"({"w":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", 8),
         "shape is 2 (expected an array"},
        {"three offsets", safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}})", 8),
         "expected [begin, end]"},
        {"begin after end", safetensors_bytes(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", 8),
         "has begin > end"},
        {"offsets outside the file", safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 8),
         "run past the data section (8 bytes"},
        {"lying size", safetensors_bytes(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 12),
         "hold 8 bytes (expected 12 for shape [3] of F32)"},
        {"overflowing shape",
         safetensors_bytes(R"({"w":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,8]}})", 8),
         "expected an overflowing size"},
        {"overlapping tensors",
         safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
         "tensors 'a' [0, 8) and 'b' [4, 12) overlap"},
        {"duplicate names", safetensors_bytes("{" + ok_entry + "," + ok_entry + "}", 8),
         "has the key 'w' more than once"},
        {"metadata not strings", safetensors_bytes(R"({"__metadata__":{"epoch":3}})"),
         "__metadata__ entry 'epoch' is a number (expected a string)"},
        {"metadata not an object", safetensors_bytes(R"({"__metadata__":[]})"), "__metadata__ is a array"},
        {"trailing garbage in header", safetensors_bytes("{}x"), "not valid JSON"},
        {"invalid UTF-8", safetensors_bytes("{\"\xff\":1}"), "not valid JSON"},
    };
    for (const bad_case& c : cases) {
        INFO(c.what);
        CHECK_THROWS_SAYS(safetensors_file::from_bytes(std::as_bytes(std::span(c.bytes)), "bad.safetensors"),
                             format_error, c.message, "'bad.safetensors'");
    }
    SECTION("the same through a real file on disk") {
        temp_dir dir;
        prune_test::write_bytes(dir / "lying.safetensors", cases[18].bytes);
        CHECK_THROWS_SAYS(safetensors_file::open(dir / "lying.safetensors"), format_error,
                             "lying.safetensors", "tensor 'w'");
        CHECK_THROWS_SAYS(safetensors_file::open(dir / "absent.safetensors"), io_error,
                             "cannot open", "absent.safetensors");
        CHECK_THROWS_SAYS(safetensors_file::open(dir.path()), io_error, "not a regular file");
        REQUIRE(::mkfifo((dir / "fifo").c_str(), 0600) == 0);  // must not block waiting for a writer
        CHECK_THROWS_SAYS(safetensors_file::open(dir / "fifo"), io_error, "not a regular file");
    }
    SECTION("gaps and zero-sized tensors anywhere are accepted") {
        const std::string gappy = safetensors_bytes(
            R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"z":{"dtype":"F32","shape":[0],"data_offsets":[6,6]}})",
            12);
        const auto file = safetensors_file::from_bytes(std::as_bytes(std::span(gappy)));
        CHECK(file.to_float("a") == std::vector<float>{0.0f});
        CHECK(file.info("z").numel() == 0);
    }
}

TEST_CASE("dtype names") {
    for (dtype t : {dtype::F32, dtype::F16, dtype::BF16, dtype::F64, dtype::I64, dtype::I32, dtype::U8, dtype::BOOL}) {
        CHECK(parse_dtype(dtype_name(t)) == t);
    }
    CHECK(dtype_size(dtype::BF16) == 2);
    CHECK(dtype_size(dtype::I64) == 8);
    CHECK(dtype_size(dtype::BOOL) == 1);
    CHECK_THROWS_SAYS(parse_dtype("F8_E4M3", "file.safetensors"), format_error,
                         "file.safetensors", "unknown dtype 'F8_E4M3'");
    CHECK(dtype_of<float>() == dtype::F32);
    CHECK(dtype_of<const half>() == dtype::F16);
}

TEST_CASE("fuzz regressions") {
    SECTION("to_float of an empty tensor (fuzz_safetensors: memcpy to a null vector pointer, UBSan)") {
        const std::string bytes = prune_test::safetensors_bytes(R"({"e":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]}})");
        const auto file = safetensors_file::from_bytes(std::as_bytes(std::span(bytes)), "empty");
        CHECK(file.to_float("e").empty());
        CHECK(file.view<float>("e").size() == 0);
    }
}
