// Tests for prune/io/masks.hpp: structure mask JSON (round trips, absent keys, ragged
// layers, wrong shapes naming the expected one, bad values) and element mask
// safetensors (round trips, files written by the torch-based reference, bad bytes,
// shape checks against a model).
#include <prune/io/masks.hpp>

#include "test_support.hpp"

#include <catch2/catch.hpp>

using namespace prune;
using namespace prune::io;
using prune_test::temp_dir;

TEST_CASE("structure masks round trip through JSON") {
    temp_dir dir;
    structure_mask mask{group_mask::uniform(3, 4), group_mask::uniform(3, 1)};
    mask.heads.set(0, 1, false);
    mask.heads.set(2, 3, false);
    mask.mlps.set(1, 0, false);
    write_structure_mask(dir / "mask.json", mask);
    CHECK(read_structure_mask(dir / "mask.json") == mask);
    CHECK(read_structure_mask(dir / "mask.json", std::vector<std::size_t>{4, 4, 4}) == mask);
    // the text is the documented format, one row per layer
    const auto text = prune_test::read_bytes(dir / "mask.json");
    const auto parsed = nlohmann::json::parse(text);
    CHECK(parsed["heads"] == nlohmann::json::parse("[[1,0,1,1],[1,1,1,1],[1,1,1,0]]"));
    CHECK(parsed["mlps"] == nlohmann::json::parse("[1,0,1]"));
    CHECK(dir.listing() == std::vector<std::string>{"mask.json"});

    SECTION("ragged layers (a physically pruned model)") {
        const auto ragged = parse_structure_mask(R"({"heads": [[1, 0], [1], []], "mlps": [0, 1, 1]})", "m",
                                                 std::vector<std::size_t>{2, 1, 0});
        CHECK(ragged.heads.groups(0) == 2);
        CHECK(ragged.heads.groups(2) == 0);
        CHECK_FALSE(ragged.heads.kept(0, 1));
        CHECK_FALSE(ragged.mlps.kept(0, 0));
        CHECK(parse_structure_mask(structure_mask_json(ragged), "again") == ragged);
    }
    SECTION("a decoder's K/V groups and MLP channels (ragged widths), one row per layer") {
        structure_mask m{group_mask::uniform(2, 4), group_mask::uniform(2, 1)};
        m.kv_groups = group_mask::uniform(2, 2);
        m.kv_groups.set(1, 0, false);
        m.mlp_channels = group_mask(std::vector<std::size_t>{5, 3});
        m.mlp_channels.set(0, 4, false);
        m.mlp_channels.set(1, 0, false);
        const std::string text = structure_mask_json(m);
        const auto parsed = nlohmann::json::parse(text);
        CHECK(parsed["kv_groups"] == nlohmann::json::parse("[[1,1],[0,1]]"));
        CHECK(parsed["mlp_channels"] == nlohmann::json::parse("[[1,1,1,1,0],[0,1,1]]"));
        CHECK(parse_structure_mask(text, "again") == m);
        CHECK_THROWS_SAYS(parse_structure_mask(R"({"mlps": [1, 1], "mlp_channels": [[1]]})", "'m.json'"), shape_error,
                          "mlp_channels has 1 rows (expected 2, one per layer)");
    }
}

TEST_CASE("absent keys mean all kept") {
    const std::vector<std::size_t> heads{3, 3};
    const auto only_mlps = parse_structure_mask(R"({"mlps": [1, 0]})", "m", heads);
    CHECK(only_mlps.heads == group_mask::uniform(2, 3));
    CHECK_FALSE(only_mlps.mlps.kept(1, 0));
    const auto only_heads = parse_structure_mask(R"({"heads": [[true, false, true], [1, 1, 1]]})", "m", heads);
    CHECK(only_heads.mlps == group_mask::uniform(2, 1));
    CHECK_FALSE(only_heads.heads.kept(0, 1));
    const auto empty = parse_structure_mask("{}", "m", heads);
    CHECK(empty.heads == group_mask::uniform(2, 3));
    CHECK(empty.mlps == group_mask::uniform(2, 1));
    // without an expected shape: heads alone still give all-kept MLPs; nothing gives empty masks
    CHECK(parse_structure_mask(R"({"heads": [[1], [0]]})", "m").mlps == group_mask::uniform(2, 1));
    CHECK(parse_structure_mask("{}", "m").heads.layers() == 0);
}

TEST_CASE("malformed or wrong-shaped structure masks") {
    const std::vector<std::size_t> heads{12, 12};
    CHECK_THROWS_SAYS(parse_structure_mask(R"({"heads": [[1,1],[1,1],[1,1]]})", "'m.json'", heads), shape_error,
                      "'m.json'", "heads has 3 layers x 2 heads (expected 2 layers x 12 heads)");
    CHECK_THROWS_SAYS(parse_structure_mask(R"({"heads": [[1,1],[1]]})", "'m.json'", std::vector<std::size_t>{2, 2}),
                      shape_error, "heads has 2 layers with [2, 1] heads (expected 2 layers x 2 heads)");
    CHECK_THROWS_SAYS(parse_structure_mask(R"({"mlps": [1, 1, 1]})", "'m.json'", heads), shape_error,
                      "mlps has 3 entries (expected 2, one per layer)");
    CHECK_THROWS_SAYS(parse_structure_mask(R"({"heads": [[1],[1]], "mlps": [1]})", "'m.json'"), shape_error,
                      "mlps has 1 entries (expected 2");
    CHECK_THROWS_SAYS(parse_structure_mask(R"({"heads": [[1, 2]]})", "'m.json'"), format_error,
                      "heads[0][1] is 2 (expected 0 or 1)");
    CHECK_THROWS_SAYS(parse_structure_mask(R"({"mlps": [1, "1"]})", "'m.json'"), format_error,
                      "mlps[1] is \"1\" (expected 0 or 1)");
    CHECK_THROWS_SAYS(parse_structure_mask(R"({"heads": [1, 0]})", "'m.json'"), format_error,
                      "heads[0] is 1 (expected an array)");
    CHECK_THROWS_SAYS(parse_structure_mask(R"({"head": [[1]]})", "'m.json'"), format_error,
                      "unknown key 'head'");
    CHECK_THROWS_SAYS(parse_structure_mask(R"([1])", "'m.json'"), format_error, "expected {\"heads\"");
    CHECK_THROWS_SAYS(parse_structure_mask(R"({"mlps": [1,)", "'m.json'"), format_error, "not valid JSON");
    CHECK_THROWS_SAYS(parse_structure_mask(R"({"mlps": [1], "mlps": [0]})", "'m.json'"), format_error,
                      "key 'mlps' more than once");
    temp_dir dir;
    CHECK_THROWS_SAYS(read_structure_mask(dir / "absent.json"), io_error, "absent.json");
}

TEST_CASE("element masks round trip through safetensors") {
    temp_dir dir;
    element_masks masks;
    element_mask a(prune::shape{3, 5});
    a.set(0, false);
    a.set(14, false);
    element_mask b(prune::shape{130}, false);
    b.set(129, true);
    masks.emplace("layer.0.weight", a);
    masks.emplace("layer.0.bias", b);
    masks.emplace("empty", element_mask(prune::shape{0, 4}));
    write_element_masks(dir / "masks.safetensors", masks);
    const element_masks back = read_element_masks(dir / "masks.safetensors");
    REQUIRE(back.size() == 3);
    CHECK(back.at("layer.0.weight") == a);
    CHECK(back.at("layer.0.bias") == b);
    CHECK(back.at("empty").size() == 0);
    // stored as U8, 1 = kept, row-major
    const auto file = safetensors_file::open(dir / "masks.safetensors");
    CHECK(file.info("layer.0.weight").type == dtype::U8);
    CHECK(file.info("layer.0.weight").shape == std::vector<std::size_t>{3, 5});
    CHECK(file.to_float("layer.0.weight")[0] == 0.0f);
    CHECK(file.to_float("layer.0.weight")[1] == 1.0f);

    SECTION("ordered writing keeps the given order") {
        const std::vector<std::pair<std::string, element_mask>> ordered = {{"z", a}, {"a", b}};
        write_element_masks(dir / "ordered.safetensors", ordered);
        const auto f = safetensors_file::open(dir / "ordered.safetensors");
        CHECK(f.tensors()[0].name == "z");
        CHECK(f.tensors()[1].name == "a");
    }
}

TEST_CASE("element masks written by the torch-based reference") {
    temp_dir dir;
    prune_test::run_python("io/safetensors_reference.py masks " + dir.path().string());
    const auto expected = prune_test::read_json(dir / "masks.json");
    const element_masks masks = read_element_masks(dir / "masks.safetensors");
    REQUIRE(masks.size() == expected.size());
    for (const auto& [name, e] : expected.items()) {
        INFO(name);
        const element_mask& mask = masks.at(name);
        CHECK(mask.extents() == prune::shape(e["shape"].get<std::vector<std::size_t>>()));
        CHECK(mask.to_bytes() == e["values"].get<std::vector<std::uint8_t>>());
    }
}

TEST_CASE("bad element mask files") {
    temp_dir dir;
    safetensors_writer writer;
    const std::vector<std::uint8_t> bad = {1, 0, 2, 1};
    writer.add_u8("w", {2, 2}, bad);
    writer.write(dir / "bad.safetensors");
    CHECK_THROWS_SAYS(read_element_masks(dir / "bad.safetensors"), format_error, "element mask 'w'", "bad.safetensors",
                      "has 2 at index 2 (expected 0 or 1");
    safetensors_writer floats;
    const std::vector<float> values = {1, 0};
    floats.add("w", make_view(values.data(), {2}));
    floats.write(dir / "float.safetensors");
    CHECK_THROWS_SAYS(read_element_masks(dir / "float.safetensors"), format_error, "is F32 (expected U8");
    CHECK_THROWS_AS(read_element_masks(dir / "absent.safetensors"), io_error);
}

TEST_CASE("element masks checked against a model") {
    temp_dir dir;
    safetensors_writer model;
    const std::vector<float> w(6, 1.0f);
    model.add("w", make_view(w.data(), {2, 3}));
    model.write(dir / "model.safetensors");
    const checkpoint ckpt = checkpoint::open(dir.path());
    element_masks good;
    good.emplace("w", element_mask(prune::shape{2, 3}));
    CHECK_NOTHROW(check_element_masks(good, ckpt));
    element_masks wrong_shape;
    wrong_shape.emplace("w", element_mask(prune::shape{3, 2}));
    CHECK_THROWS_SAYS(check_element_masks(wrong_shape, ckpt), shape_error,
                      "element mask 'w' has shape [3, 2] (expected [2, 3]");
    element_masks unknown;
    unknown.emplace("v", element_mask(prune::shape{1}));
    CHECK_THROWS_SAYS(check_element_masks(unknown, ckpt), format_error, "'v' names no tensor");
}
