// fuzz/common.hpp: what the file-based fuzz targets share. libFuzzer hands a target bytes;
// readers that take a path (a vocab.txt, a sharded checkpoint's directory) get them through
// a private temporary directory made once per process and removed at exit.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include <unistd.h>

namespace prune_fuzz {

/// Makes a fresh directory <tmp>/<prefix>XXXXXX (mkdtemp) and registers its removal at exit; aborts if it cannot.
inline std::filesystem::path make_private_directory(const std::string& prefix) {
    std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        std::abort();
    }
    static std::filesystem::path made;  // one per process: each target calls this once
    made = pattern;
    std::atexit([] { std::filesystem::remove_all(made); });
    return made;
}

/// Writes `bytes` to `path`, replacing what was there.
inline void write(const std::filesystem::path& path, std::string_view bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace prune_fuzz
