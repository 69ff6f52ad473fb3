// Tests for prune/data/glue_tsv.hpp: TSV files written by Python's csv module (MNLI-like
// with a header and label names, CoLA-like without a header) read back exactly, and
// malformed rows give errors naming the file and the line.
#include <prune/data/glue_tsv.hpp>

#include "../io/test_support.hpp"

#include <catch2/catch.hpp>

using namespace prune;
using namespace prune::data;
using prune_test::temp_dir;

TEST_CASE("GLUE TSV written by Python's csv module reads back exactly") {
    temp_dir dir;
    prune_test::run_python("datafiles/make_data.py " + dir.path().string());
    const auto expected = prune_test::read_json(dir / "expected.json");

    tsv_options mnli;
    mnli.text_column = "sentence1";
    mnli.text_pair_column = "sentence2";
    mnli.label_column = "gold_label";
    mnli.labels.num_labels = 3;
    mnli.labels.label_names = {"entailment", "neutral", "contradiction"};
    const dataset data = read_glue_tsv(dir / "mnli.tsv", mnli);
    CHECK(data.form == example_form::text);
    REQUIRE(data.examples.size() == expected["mnli"].size());
    for (std::size_t i = 0; i < data.examples.size(); ++i) {
        const auto& e = expected["mnli"][i];
        CHECK(data.examples[i].text == e["text"].get<std::string>());
        CHECK(*data.examples[i].text_pair == e["text_pair"].get<std::string>());
        CHECK(data.examples[i].label_index() == e["label"].get<int>());
        CHECK(data.examples[i].line == i + 2);
    }

    tsv_options cola;
    cola.header = false;
    cola.text_column = "3";
    cola.label_column = "1";
    const dataset rows = read_glue_tsv(dir / "cola.tsv", cola);
    REQUIRE(rows.examples.size() == expected["cola"].size());
    for (std::size_t i = 0; i < rows.examples.size(); ++i) {
        CHECK(rows.examples[i].text == expected["cola"][i]["text"].get<std::string>());
        CHECK(rows.examples[i].label_index() == expected["cola"][i]["label"].get<int>());
        CHECK_FALSE(rows.examples[i].text_pair.has_value());
    }
}

TEST_CASE("TSV regression labels, CRLF, unlabeled files") {
    tsv_options stsb;
    stsb.text_column = "sentence1";
    stsb.text_pair_column = "sentence2";
    stsb.label_column = "score";
    stsb.labels.num_labels = 1;
    const auto data = parse_glue_tsv("sentence1\tsentence2\tscore\r\na\tb\t3.800\r\nc\td\t0\r\n", "s", stsb);
    REQUIRE(data.examples.size() == 2);
    CHECK(*data.examples[0].label == 3.8);
    CHECK(*data.examples[1].text_pair == "d");
    tsv_options test;
    test.text_column = "sentence";
    test.labels.require_label = false;
    const auto unlabeled = parse_glue_tsv("index\tsentence\n0\thello\n1\tworld\n", "t", test);
    CHECK(unlabeled.examples[1].text == "world");
    CHECK_FALSE(unlabeled.examples[1].label.has_value());
}

TEST_CASE("malformed TSV files name the file, the line and what was expected") {
    tsv_options sst;
    sst.text_column = "sentence";
    sst.label_column = "label";
    CHECK_THROWS_SAYS(parse_glue_tsv("", "'e.tsv'", sst), format_error, "'e.tsv' has no examples");
    CHECK_THROWS_SAYS(parse_glue_tsv("sentence\tlabel\n", "'e.tsv'", sst), format_error, "has no examples");
    CHECK_THROWS_SAYS(parse_glue_tsv("text\tlabel\nhi\t1\n", "'e.tsv'", sst), format_error,
                      "'e.tsv':1: no text column 'sentence' in the header (columns: 'text', 'label')");
    CHECK_THROWS_SAYS(parse_glue_tsv("sentence\tlabel\nhi\t1\nbad row\n", "'e.tsv'", sst), format_error,
                      "'e.tsv':3: the row has 1 tab-separated fields (expected 2, as the header)");
    CHECK_THROWS_SAYS(parse_glue_tsv("sentence\tlabel\nhi\t1\nho\t2\n", "'e.tsv'", sst), format_error,
                      "'e.tsv':3: label 2 is not a class index in [0, 2)");
    CHECK_THROWS_SAYS(parse_glue_tsv("sentence\tlabel\nhi\tyes\n", "'e.tsv'", sst), format_error,
                      "'e.tsv':2: label 'yes' is not a number (expected a class index in [0, 2), or give label names)");
    CHECK_THROWS_SAYS(parse_glue_tsv("sentence\tlabel\nhi\t\n", "'e.tsv'", sst), format_error,
                      "'e.tsv':2: label '' is not a number");
    // a raw NUL byte in a field: refused, not cut (std::string literals keep it through operator+)
    CHECK_THROWS_SAYS(parse_glue_tsv(std::string("sentence\tlabel\nhi\t1\n") + std::string("a\0b", 3) + "\t1\n", "'e.tsv'", sst),
                      format_error, "'e.tsv':3: text holds a NUL byte at byte 1 (expected text without NUL bytes)");
    tsv_options names = sst;
    names.labels.label_names = {"negative", "positive"};
    CHECK_THROWS_SAYS(parse_glue_tsv("sentence\tlabel\nhi\tneutral\n", "'e.tsv'", names), format_error,
                      "'e.tsv':2: label 'neutral' is not one of the label names (negative, positive)");
    tsv_options no_header;
    no_header.header = false;
    no_header.text_column = "sentence";
    no_header.label_column = "1";
    CHECK_THROWS_SAYS(parse_glue_tsv("a\t1\n", "'e.tsv'", no_header), value_error, "must be a 0-based index");
    no_header.text_column = "5";
    CHECK_THROWS_SAYS(parse_glue_tsv("a\t1\n", "'e.tsv'", no_header), format_error, "text column 5 does not exist");
    tsv_options no_label;
    no_label.text_column = "sentence";
    CHECK_THROWS_SAYS(parse_glue_tsv("sentence\nhi\n", "'e.tsv'", no_label), value_error, "no label column given");
    temp_dir dir;
    CHECK_THROWS_SAYS(read_glue_tsv(dir / "absent.tsv", sst), io_error, "absent.tsv");
}

// Columns as GLUE's download script writes the files (header lines quoted from GLUE's train.tsv).
TEST_CASE("GLUE task presets read their files and name their metric") {
    CHECK_FALSE(glue_task_named("wordnet").has_value());
    REQUIRE(glue_task_named("sts-b").has_value());
    CHECK(glue_task_named("STSB")->name == "STS-B");
    CHECK(glue_task_named("STS-B")->columns.labels.num_labels == 1);
    CHECK(glue_task_named("cola")->metric == "mcc");
    CHECK(glue_task_named("MRPC")->metric == "f1");
    CHECK(glue_task_named("sst2")->metric == "accuracy");
    const auto mrpc = parse_glue_tsv("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t7\t8\tHe said .\tHe told .\n",
                                     "mrpc", glue_task_named("MRPC")->columns);
    REQUIRE(mrpc.examples.size() == 1);
    CHECK(mrpc.examples[0].text == "He said .");
    CHECK(mrpc.examples[0].text_pair == "He told .");
    CHECK(*mrpc.examples[0].label == 1.0);
    // CoLA's train/dev files have no header: source, label, original judgement, sentence
    const auto cola = parse_glue_tsv("gj04\t1\t\tOur friends won't buy this analysis.\n", "cola",
                                     glue_task_named("CoLA")->columns);
    CHECK(cola.examples[0].text == "Our friends won't buy this analysis.");
    CHECK(*cola.examples[0].label == 1.0);
    const auto rte = parse_glue_tsv("index\tsentence1\tsentence2\tlabel\n0\tA man runs.\tA person moves.\tentailment\n"
                                    "1\tA cat.\tA dog.\tnot_entailment\n",
                                    "rte", glue_task_named("RTE")->columns);
    CHECK(*rte.examples[0].label == 0.0);
    CHECK(*rte.examples[1].label == 1.0);
    const auto mnli = glue_task_named("MNLI")->columns;
    CHECK(mnli.labels.label_names == std::vector<std::string>{"contradiction", "entailment", "neutral"});
}
