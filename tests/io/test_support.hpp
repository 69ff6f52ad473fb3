// tests/io/test_support.hpp: helpers shared by the io tests: a self-removing temporary
// directory, whole-file reads/writes, running the Python reference, and a safetensors
// file assembled from a literal header (for malformed-file tables).
#pragma once

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace prune_test {

/// Matches an exception whose what() contains every one of the given fragments.
class message_matcher : public Catch::MatcherBase<std::exception> {
public:
    explicit message_matcher(std::vector<std::string> fragments) : fragments_(std::move(fragments)) {}
    bool match(const std::exception& e) const override {
        const std::string what = e.what();
        return std::all_of(fragments_.begin(), fragments_.end(),
                           [&](const std::string& f) { return what.find(f) != std::string::npos; });
    }
    std::string describe() const override {
        std::string d = "has a message containing";
        for (const auto& f : fragments_) {
            d += " \"" + f + "\"";
        }
        return d;
    }

private:
    std::vector<std::string> fragments_;
};

/// says("a", "b"): the exception's message contains "a" and "b".
template <class... Fragments>
message_matcher says(const Fragments&... fragments) {
    return message_matcher({std::string(fragments)...});
}

/// A fresh directory under the system temp dir, removed with everything in it on destruction.
class temp_dir {
public:
    temp_dir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "prune-io-test-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) {
            throw std::runtime_error("mkdtemp failed");
        }
        path_ = pattern;
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::permissions(path_, std::filesystem::perms::owner_all, std::filesystem::perm_options::add, ec);
        std::filesystem::remove_all(path_, ec);
    }
    [[nodiscard]] const std::filesystem::path& path() const { return path_; }
    [[nodiscard]] std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
    /// The names in the directory (hidden ones included), sorted.
    [[nodiscard]] std::vector<std::string> listing() const {
        std::vector<std::string> names;
        for (const auto& entry : std::filesystem::directory_iterator(path_)) {
            names.push_back(entry.path().filename().string());
        }
        std::sort(names.begin(), names.end());
        return names;
    }

private:
    std::filesystem::path path_;
};

/// Writes bytes to a file (plainly, for fixtures).
inline void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// Reads a whole file.
inline std::string read_bytes(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// Reads a JSON file.
inline nlohmann::json read_json(const std::filesystem::path& path) { return nlohmann::json::parse(read_bytes(path)); }

/// Runs tests/<script> with the Python that has torch; throws when it fails.
inline void run_python(const std::string& script_and_args) {
    const std::string command = std::string(PRUNE_TEST_PYTHON) + " " + PRUNE_SOURCE_DIR + "/tests/" + script_and_args;
    if (std::system(command.c_str()) != 0) {
        throw std::runtime_error("python failed: " + command);
    }
}

/// An 8-byte little-endian length, the header text as given, then `data_bytes` zero bytes.
inline std::string safetensors_bytes(const std::string& header, std::size_t data_bytes = 0) {
    std::string out(8, '\0');
    const std::uint64_t n = header.size();
    std::memcpy(out.data(), &n, 8);
    return out + header + std::string(data_bytes, '\0');
}

}  // namespace prune_test

/// CHECK_THROWS_SAYS(expression, exception_type, "fragment", ...): throws that type, and its
/// message contains every fragment.
#define CHECK_THROWS_SAYS(expression, type, ...) \
    CHECK_THROWS_MATCHES(expression, type, ::prune_test::says(__VA_ARGS__))
