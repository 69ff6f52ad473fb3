// tests/io/gguf_support.hpp: what the GGUF and imatrix tests share: the npm reference
// implementation (@huggingface/gguf, installed once into the build tree) run through
// tests/io/gguf_reference.mjs, hex dumps, and a little-endian byte builder for crafting
// malformed files by hand.
#pragma once

#include "test_support.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdlib>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

namespace prune_test {

/// The npm package the GGUF tests read and write with (pinned).
inline constexpr const char* gguf_npm_package = "@huggingface/gguf@0.4.6";

/// The directory holding node_modules/@huggingface/gguf; installed on first use (cached in the build tree).
inline const std::string& npm_prefix() {
    static const std::string prefix = [] {
        const std::string dir = std::string(PRUNE_BINARY_DIR) + "/npm";
        const std::string command = std::string("bash ") + PRUNE_SOURCE_DIR + "/tests/io/npm_install.sh " + dir + " " +
                                    gguf_npm_package;
        if (std::system(command.c_str()) != 0) {
            throw std::runtime_error("cannot install " + std::string(gguf_npm_package) + " with npm: " + command);
        }
        return dir;
    }();
    return prefix;
}

/// Runs tests/io/gguf_reference.mjs MODE PREFIX TARGET; returns its stdout.
inline std::string run_gguf_reference(const std::string& mode, const std::string& target) {
    const temp_dir out;
    const std::string command = "node " + std::string(PRUNE_SOURCE_DIR) + "/tests/io/gguf_reference.mjs " + mode +
                                " " + npm_prefix() + " " + target + " > " + (out / "stdout").string();
    if (std::system(command.c_str()) != 0) {
        throw std::runtime_error("node failed: " + command);
    }
    return read_bytes(out / "stdout");
}

/// @huggingface/gguf's reading of a file, as JSON (see gguf_reference.mjs).
inline nlohmann::json js_read_gguf(const std::filesystem::path& file) {
    return nlohmann::json::parse(run_gguf_reference("read", file.string()));
}

/// Lower-case hex of bytes.
inline std::string hex(std::span<const std::byte> bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (std::byte b : bytes) {
        const auto v = std::to_integer<unsigned>(b);
        out += digits[v >> 4];
        out += digits[v & 15];
    }
    return out;
}

/// Little-endian bytes assembled by hand (for malformed files).
struct byte_builder {
    std::string bytes;  ///< what was appended
    template <class T>
    byte_builder& put(T value) {
        bytes.append(reinterpret_cast<const char*>(&value), sizeof(T));
        return *this;
    }
    byte_builder& u32(std::uint32_t v) { return put(v); }
    byte_builder& u64(std::uint64_t v) { return put(v); }
    byte_builder& str(std::string_view s) {
        u64(s.size());
        bytes.append(s);
        return *this;
    }
    byte_builder& raw(std::string_view s) {
        bytes.append(s);
        return *this;
    }
    byte_builder& pad(std::size_t alignment) {
        bytes.append((alignment - bytes.size() % alignment) % alignment, '\0');
        return *this;
    }
    [[nodiscard]] std::span<const std::byte> span() const { return std::as_bytes(std::span(bytes)); }
};

}  // namespace prune_test
