// prune/io/atomic.hpp: outputs that appear whole or not at all.
//
// `atomic_file` writes to a hidden temporary file in the target's directory, fsyncs
// it and renames it over the target on `commit()`; destroyed uncommitted (an
// exception, an early return) it removes the temporary. `write_file_atomically` does
// that for a buffer in one call. `output_directory` stages a whole output directory
// (a model, a report, masks) in a hidden sibling directory and moves it into place on
// `commit()`, replacing an existing directory: the old one is renamed aside, the new
// one renamed in, the old one removed. A reader therefore sees the previous output
// or the new one, never a mixture.
//
// Special targets: `atomic_file` (and so `write_file_atomically`) follows a symbolic link and
// writes its target (atomically when that is a regular file or does not exist yet); a
// character device, FIFO or socket (`/dev/stdout`, `/dev/null`, a named pipe) is opened and
// written in place, since a rename would replace it with a regular file. A directory is
// refused before anything is written. `output_directory` refuses "/" (it has no parent to
// stage in).
//
// Interruption: every temporary path is registered in a small process-wide registry
// while it exists. `remove_staging_on_signal()` installs SIGINT/SIGTERM/SIGHUP handlers
// that delete the registered temporaries and then re-raise the signal with its default
// action, so an interrupted binary leaves the previous output intact (or none) and no
// staging debris. Binaries call it once at the start of main.
//
// Debris of killed processes: a process killed outright (SIGKILL, a power cut) cannot clean
// up. Temporaries are named ".<name>.<tmp|staging|old>-<pid>-<host>-<random>" (<host>: 8
// hex digits hashing the machine's host name), and every new atomic_file or
// output_directory first removes, from its directory, the temporaries whose process of this
// machine no longer exists. (Processes in another PID namespace sharing the directory under
// the same host name would look dead: give containers their own host names.)
#pragma once

#include <prune/error.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>  // renameat2 (glibc, _GNU_SOURCE)
#include <cstring>
#include <filesystem>
#include <iterator>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>  // kill
#include <sys/stat.h>
#include <unistd.h>

namespace prune::io {

namespace detail {

/// The process-wide list of temporary paths to delete when SIGINT/SIGTERM/SIGHUP arrives.
/// Fixed-size storage so the signal handler touches no allocator.
class staging_registry {
public:
    static constexpr std::size_t slots = 64;        ///< at most this many live temporaries are tracked
    static constexpr std::size_t max_path = 4096;   ///< longer paths are not tracked

    /// The single instance.
    static staging_registry& instance() noexcept {
        static staging_registry registry;
        return registry;
    }

    /// Tracks a path; returns its slot, or -1 when the registry is full or the path too long.
    int add(const std::filesystem::path& path) noexcept {
        const std::string& text = path.native();
        if (text.size() + 1 > max_path) {
            return -1;
        }
        for (std::size_t i = 0; i < slots; ++i) {
            int expected = free_slot;
            if (state_[i].compare_exchange_strong(expected, writing)) {
                std::memcpy(paths_[i], text.c_str(), text.size() + 1);
                state_[i].store(used);
                return static_cast<int>(i);
            }
        }
        return -1;
    }

    /// Stops tracking a slot returned by add (no-op for -1).
    void remove(int slot) noexcept {
        if (slot >= 0) {
            state_[static_cast<std::size_t>(slot)].store(free_slot);
        }
    }

    /// Deletes every tracked path (files, or directories recursively). Async-signal-tolerant:
    /// only POSIX calls, no allocation beyond what opendir does.
    void remove_all_now() noexcept {
        for (std::size_t i = 0; i < slots; ++i) {
            int expected = used;
            if (state_[i].compare_exchange_strong(expected, writing)) {
                remove_tree(paths_[i]);
                state_[i].store(free_slot);
            }
        }
    }

private:
    static constexpr int free_slot = 0;
    static constexpr int writing = 1;
    static constexpr int used = 2;

    static void remove_tree(const char* path) noexcept {
        struct stat info {};
        if (::lstat(path, &info) != 0) {
            return;
        }
        if (S_ISDIR(info.st_mode)) {
            if (DIR* dir = ::opendir(path)) {
                char child[max_path];
                while (const dirent* entry = ::readdir(dir)) {
                    if (std::strcmp(entry->d_name, ".") == 0 || std::strcmp(entry->d_name, "..") == 0) {
                        continue;
                    }
                    const std::size_t a = std::strlen(path);
                    const std::size_t b = std::strlen(entry->d_name);
                    if (a + b + 2 > sizeof(child)) {
                        continue;
                    }
                    std::memcpy(child, path, a);
                    child[a] = '/';
                    std::memcpy(child + a + 1, entry->d_name, b + 1);
                    remove_tree(child);
                }
                ::closedir(dir);
            }
            ::rmdir(path);
        } else {
            ::unlink(path);
        }
    }

    std::atomic<int> state_[slots]{};
    char paths_[slots][max_path]{};
};

/// A registry slot held for the lifetime of a temporary path.
class staging_ticket {
public:
    staging_ticket() = default;
    explicit staging_ticket(const std::filesystem::path& path) : slot_(staging_registry::instance().add(path)) {}
    staging_ticket(staging_ticket&& other) noexcept : slot_(std::exchange(other.slot_, -1)) {}
    staging_ticket& operator=(staging_ticket&& other) noexcept {
        if (this != &other) {
            release();
            slot_ = std::exchange(other.slot_, -1);
        }
        return *this;
    }
    staging_ticket(const staging_ticket&) = delete;
    staging_ticket& operator=(const staging_ticket&) = delete;
    ~staging_ticket() { release(); }
    void release() noexcept {
        staging_registry::instance().remove(slot_);
        slot_ = -1;
    }

private:
    int slot_ = -1;
};

/// The C error text of errno value e.
inline std::string errno_text(int e) { return std::error_code(e, std::generic_category()).message(); }

/// The tags of hidden siblings: a file being written, a directory being staged, a previous
/// output moved aside.
inline constexpr std::string_view temporary_tags[] = {"tmp", "staging", "old"};

/// This machine's host name, hashed to 8 hex digits (FNV-1a): temporaries carry it so that a
/// sweep never judges the processes of another machine that shares the directory.
inline std::string host_tag() {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0) name[0] = '\0';
    std::uint32_t h = 2166136261u;
    for (const char* p = name; *p != '\0'; ++p) {
        h = (h ^ static_cast<unsigned char>(*p)) * 16777619u;
    }
    static constexpr char hex[] = "0123456789abcdef";
    std::string out(8, '0');
    for (int i = 7; i >= 0; --i, h >>= 4) out[static_cast<std::size_t>(i)] = hex[h & 15u];
    return out;
}

/// A random hidden sibling name: "<dir>/.<name>.<tag>-<pid>-<host>-<random>", with the
/// creating process's id and host_tag() so that a later run can tell a dead process's debris
/// from a live one's. A long `<name>` is shortened so the whole fits a file name (255 bytes).
inline std::filesystem::path hidden_sibling(const std::filesystem::path& target, std::string_view tag) {
    static std::atomic<std::uint64_t> counter{0};
    std::random_device device;
    const std::uint64_t salt = (std::uint64_t{device()} << 32) ^ device() ^ (counter.fetch_add(1) << 48);
    static constexpr char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    std::string suffix = "." + std::string(tag) + "-" + std::to_string(::getpid()) + "-" + host_tag() + "-";
    std::uint64_t v = salt;
    for (int i = 0; i < 10; ++i) {
        suffix += digits[v % 36];
        v /= 36;
    }
    std::string name = target.filename().string();
    const std::size_t room = 255 - 1 - suffix.size();
    if (name.size() > room) name.resize(room);
    const std::filesystem::path parent = target.parent_path();
    const std::string full = "." + name + suffix;
    return parent.empty() ? std::filesystem::path(full) : parent / full;
}

/// The process id and host tag in a name made by hidden_sibling; pid 0 for any other name.
struct temporary_owner {
    long pid = 0;
    std::string host;
};

/// Parses a name made by hidden_sibling from its end: 10 base-36 digits, 8 hex digits, the
/// decimal process id, one of temporary_tags after a '.'.
inline temporary_owner owner_of_temporary(std::string_view name) {
    const auto all = [](std::string_view s, auto accepts) {
        for (const char c : s) {
            if (!accepts(c)) return false;
        }
        return !s.empty();
    };
    const auto base36 = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'); };
    const auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); };
    const auto decimal = [](char c) { return c >= '0' && c <= '9'; };
    if (name.size() < 1 + 10 + 1 + 8 + 1 + 1 + 1 || name.front() != '.') return {};
    const std::string_view random = name.substr(name.size() - 10), host = name.substr(name.size() - 19, 8);
    if (!all(random, base36) || name[name.size() - 11] != '-' || !all(host, hex) || name[name.size() - 20] != '-') {
        return {};
    }
    const std::string_view rest = name.substr(0, name.size() - 20);
    const std::size_t dash = rest.rfind('-');
    if (dash == std::string_view::npos || rest.size() - dash - 1 > 9 || !all(rest.substr(dash + 1), decimal)) return {};
    const std::size_t dot = rest.rfind('.', dash);
    if (dot == std::string_view::npos || dot == 0) return {};
    const std::string_view tag = rest.substr(dot + 1, dash - dot - 1);
    if (std::find(std::begin(temporary_tags), std::end(temporary_tags), tag) == std::end(temporary_tags)) return {};
    return {std::stol(std::string(rest.substr(dash + 1))), std::string(host)};
}

/// True when the process `pid` of this machine no longer exists.
inline bool process_gone(long pid) noexcept {
    return pid > 0 && pid != ::getpid() && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

/// Removes from `dir` the temporaries that processes of this machine left when they died
/// without cleaning up (SIGKILL, a power cut): names made by hidden_sibling whose process is
/// gone. Best effort; a live process's temporaries, other machines' and other files stay.
inline void remove_stale_temporaries(const std::filesystem::path& dir) noexcept {
    try {
        const std::string here = host_tag();
        std::error_code ec;
        std::filesystem::directory_iterator it(dir.empty() ? std::filesystem::path(".") : dir, ec), end;
        for (; !ec && it != end; it.increment(ec)) {
            const temporary_owner owner = owner_of_temporary(it->path().filename().string());
            if (owner.host == here && process_gone(owner.pid)) {
                std::error_code ignored;
                std::filesystem::remove_all(it->path(), ignored);
            }
        }
    } catch (...) {  // allocation failure: the sweep is only housekeeping
    }
}

/// The path a symbolic link finally points to (relative links resolved against their
/// directory), followed at most 40 times as the kernel does; `path` itself when it is no link.
inline std::filesystem::path through_symlinks(std::filesystem::path path) {
    std::error_code ec;
    for (int hops = 0; hops < 40 && std::filesystem::is_symlink(std::filesystem::symlink_status(path, ec)); ++hops) {
        const std::filesystem::path link = std::filesystem::read_symlink(path, ec);
        if (ec) {
            break;
        }
        path = link.is_absolute() ? link : path.parent_path() / link;
    }
    return path;
}

/// True when `path` exists (symbolic links followed) and is a character or block device, a
/// FIFO or a socket: written in place, never replaced.
inline bool is_special_file(const std::filesystem::path& path) noexcept {
    struct stat info {};
    return ::stat(path.c_str(), &info) == 0 && !S_ISREG(info.st_mode) && !S_ISDIR(info.st_mode);
}

/// fsyncs a directory so a rename inside it is durable (best effort).
inline void sync_directory(const std::filesystem::path& dir) noexcept {
    const std::filesystem::path d = dir.empty() ? std::filesystem::path(".") : dir;
    const int fd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
}

/// The signal handler: deletes the staging paths, then dies of the signal as usual.
extern "C" inline void remove_staging_and_reraise(int signal_number) {
    staging_registry::instance().remove_all_now();
    std::signal(signal_number, SIG_DFL);
    std::raise(signal_number);
}

}  // namespace detail

/// Installs SIGINT/SIGTERM/SIGHUP handlers that delete every live staging file or directory,
/// then let the signal terminate the process as it would have. Call once from main.
inline void remove_staging_on_signal() {
    struct sigaction action {};
    action.sa_handler = detail::remove_staging_and_reraise;
    sigemptyset(&action.sa_mask);
    action.sa_flags = static_cast<int>(SA_RESETHAND);
    for (int s : {SIGINT, SIGTERM, SIGHUP}) {
        if (::sigaction(s, &action, nullptr) != 0) {
            throw io_error("prune::io::remove_staging_on_signal: sigaction failed: " + detail::errno_text(errno));
        }
    }
}

/// Deletes every live staging path now (what the signal handler does); for tests and custom handlers.
inline void remove_staging_now() noexcept { detail::staging_registry::instance().remove_all_now(); }

/// A file written under a temporary name and renamed over its target on commit().
/// Move-only; an uncommitted file's temporary is removed on destruction.
class atomic_file {
public:
    /// Creates the temporary beside `target` (beside the file a symbolic link points to);
    /// opens a device, FIFO or socket directly. io_error when the directory is not writable or
    /// the target is a directory.
    explicit atomic_file(std::filesystem::path target) : target_(std::move(target)) {
        if (target_.filename().empty()) {
            throw io_error("prune::io: cannot write '" + target_.string() + "': not a file name");
        }
        if (detail::is_special_file(target_)) {
            open_in_place();
            return;
        }
        std::error_code ec;
        if (std::filesystem::is_directory(target_, ec)) {
            throw io_error("prune::io: cannot write '" + target_.string() + "': it is a directory");
        }
        target_ = detail::through_symlinks(target_);
        detail::remove_stale_temporaries(target_.parent_path());
        for (int attempt = 0; attempt < 16 && fd_ < 0; ++attempt) {
            temporary_ = detail::hidden_sibling(target_, "tmp");
            fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
            if (fd_ < 0 && errno != EEXIST) {
                const int e = errno;
                throw io_error("prune::io: cannot create a temporary file in '" +
                               (target_.parent_path().empty() ? std::string(".") : target_.parent_path().string()) +
                               "' to write '" + target_.string() + "': " + detail::errno_text(e));
            }
        }
        if (fd_ < 0) {
            throw io_error("prune::io: cannot create a unique temporary file beside '" + target_.string() + "'");
        }
        ticket_ = detail::staging_ticket(temporary_);
    }

    atomic_file(atomic_file&& other) noexcept
        : target_(std::move(other.target_)),
          temporary_(std::move(other.temporary_)),
          fd_(std::exchange(other.fd_, -1)),
          committed_(std::exchange(other.committed_, true)),
          in_place_(other.in_place_),
          ticket_(std::move(other.ticket_)) {}
    atomic_file& operator=(atomic_file&&) = delete;
    atomic_file(const atomic_file&) = delete;
    atomic_file& operator=(const atomic_file&) = delete;

    /// Removes the temporary unless committed.
    ~atomic_file() { discard(); }

    /// Appends bytes; io_error on a failed write (disk full, ...).
    void write(std::span<const std::byte> bytes) {
        PRUNE_ASSERT(fd_ >= 0);
        const auto* p = reinterpret_cast<const char*>(bytes.data());
        std::size_t left = bytes.size();
        while (left > 0) {
            const ssize_t n = ::write(fd_, p, left);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                const int e = errno;
                throw io_error("prune::io: writing '" + target_.string() + "' failed: " + detail::errno_text(e));
            }
            p += n;
            left -= static_cast<std::size_t>(n);
        }
    }

    /// Appends the characters of a string.
    void write(std::string_view text) { write(std::as_bytes(std::span<const char>(text.data(), text.size()))); }

    /// Writes bytes at a byte offset of the temporary (files written out of order; the file grows
    /// as needed); io_error on a failed write and for a device, FIFO or socket (no offsets there).
    void write_at(std::uint64_t offset, std::span<const std::byte> bytes) {
        PRUNE_ASSERT(fd_ >= 0);
        refuse_in_place("write at an offset into");
        const auto* p = reinterpret_cast<const char*>(bytes.data());
        std::size_t left = bytes.size();
        while (left > 0) {
            const ssize_t n = ::pwrite(fd_, p, left, static_cast<off_t>(offset));
            if (n < 0) {
                if (errno == EINTR) continue;
                const int e = errno;
                throw io_error("prune::io: writing '" + target_.string() + "' failed: " + detail::errno_text(e));
            }
            p += n;
            offset += static_cast<std::uint64_t>(n);
            left -= static_cast<std::size_t>(n);
        }
    }

    /// Reserves `size` bytes of disk for the temporary now (posix_fallocate), so that a disk too
    /// small fails here, before any work is spent on the content; io_error then. A file system
    /// that cannot reserve (EOPNOTSUPP, EINVAL) is let through: its writes still report a full disk.
    void reserve(std::uint64_t size) {
        PRUNE_ASSERT(fd_ >= 0);
        refuse_in_place("reserve space in");
        if (size == 0) return;
        const int e = ::posix_fallocate(fd_, 0, static_cast<off_t>(size));
        if (e != 0 && e != EOPNOTSUPP && e != EINVAL) {
            throw io_error("prune::io: cannot reserve " + std::to_string(size) + " bytes for '" + target_.string() +
                           "': " + detail::errno_text(e));
        }
    }

    /// fsyncs what was written so far: afterwards commit() has only a rename to do. Use it to
    /// make this file durable before committing another output, so both appear together.
    void sync() {
        PRUNE_ASSERT(fd_ >= 0);
        if (!in_place_ && ::fsync(fd_) != 0) {
            const int e = errno;
            throw io_error("prune::io: fsync of '" + target_.string() + "' failed: " + detail::errno_text(e));
        }
    }

    /// fsyncs, closes and renames the temporary over the target (a device, FIFO or socket:
    /// closes it).
    void commit() {
        PRUNE_ASSERT(fd_ >= 0);
        if (in_place_) {
            committed_ = true;
            if (::close(std::exchange(fd_, -1)) != 0) {
                const int e = errno;
                throw io_error("prune::io: closing '" + target_.string() + "' failed: " + detail::errno_text(e));
            }
            return;
        }
        if (::fsync(fd_) != 0) {
            const int e = errno;
            throw io_error("prune::io: fsync of '" + target_.string() + "' failed: " + detail::errno_text(e));
        }
        const int fd = std::exchange(fd_, -1);
        if (::close(fd) != 0) {
            const int e = errno;
            throw io_error("prune::io: closing '" + target_.string() + "' failed: " + detail::errno_text(e));
        }
        if (::rename(temporary_.c_str(), target_.c_str()) != 0) {
            const int e = errno;
            throw io_error("prune::io: cannot rename the temporary onto '" + target_.string() +
                           "': " + detail::errno_text(e));
        }
        committed_ = true;
        ticket_.release();
        detail::sync_directory(target_.parent_path());
    }

    /// The path the file will have once committed.
    [[nodiscard]] const std::filesystem::path& target() const noexcept { return target_; }
    /// The temporary path being written (empty for a device, FIFO or socket, written in place).
    [[nodiscard]] const std::filesystem::path& temporary() const noexcept { return temporary_; }

private:
    void refuse_in_place(const char* what) const {
        if (in_place_) throw io_error("prune::io: cannot " + std::string(what) + " '" + target_.string() + "': not a regular file");
    }

    void open_in_place() {
        fd_ = ::open(target_.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd_ < 0) {
            const int e = errno;
            throw io_error("prune::io: cannot open '" + target_.string() + "' for writing: " + detail::errno_text(e));
        }
        in_place_ = true;
    }

    void discard() noexcept {
        if (fd_ >= 0) {
            ::close(fd_);
            fd_ = -1;
        }
        if (!committed_ && !temporary_.empty()) {
            ::unlink(temporary_.c_str());
        }
        committed_ = true;
        ticket_.release();
    }

    std::filesystem::path target_;
    std::filesystem::path temporary_;
    int fd_ = -1;
    bool committed_ = false;
    bool in_place_ = false;  ///< a device, FIFO or socket: written directly, nothing to rename
    detail::staging_ticket ticket_;
};

/// Writes bytes to path atomically (temporary, fsync, rename; a device or FIFO in place); nothing is left on failure.
inline void write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes) {
    atomic_file file(path);
    file.write(bytes);
    file.commit();
}

/// Writes a string to path atomically (temporary, fsync, rename; a device or FIFO in place); nothing is left on failure.
inline void write_file_atomically(const std::filesystem::path& path, std::string_view text) {
    atomic_file file(path);
    file.write(text);
    file.commit();
}

/// An output directory staged in a hidden sibling and moved into place by commit().
/// Write files into path() (plain writes are fine: the whole directory appears at once).
/// Destroyed uncommitted, the staging directory and everything in it are removed.
class output_directory {
public:
    /// Creates "<parent>/.<name>.staging-XXXX"; io_error when the parent is missing or unwritable.
    explicit output_directory(std::filesystem::path target) : target_(std::move(target)) {
        while (!target_.empty() && target_.filename().empty()) {  // "out/" -> "out"
            if (target_.parent_path() == target_) {  // "/": its own parent, nowhere to stage
                throw io_error("prune::io: '" + target_.string() +
                               "' cannot be an output directory (the root directory; expected a name)");
            }
            target_ = target_.parent_path();
        }
        if (target_.empty() || target_.filename() == "." || target_.filename() == "..") {
            throw io_error("prune::io: '" + target_.string() + "' cannot be an output directory (expected a name)");
        }
        std::error_code ec;
        if (std::filesystem::exists(target_, ec) && !std::filesystem::is_directory(target_, ec)) {
            throw io_error("prune::io: output '" + target_.string() + "' exists and is not a directory");
        }
        const std::filesystem::path parent = target_.parent_path().empty() ? "." : target_.parent_path();
        if (!std::filesystem::is_directory(parent, ec)) {
            throw io_error("prune::io: cannot create output '" + target_.string() + "': the parent directory '" +
                           parent.string() + (std::filesystem::exists(parent, ec) ? "' is not a directory"
                                                                                  : "' does not exist"));
        }
        detail::remove_stale_temporaries(parent);
        for (int attempt = 0; attempt < 16; ++attempt) {
            staging_ = detail::hidden_sibling(target_, "staging");
            if (::mkdir(staging_.c_str(), 0755) == 0) {
                ticket_ = detail::staging_ticket(staging_);
                return;
            }
            if (errno != EEXIST) {
                const int e = errno;
                staging_.clear();
                throw io_error("prune::io: cannot create output '" + target_.string() + "': '" + parent.string() +
                               "' is not writable (" + detail::errno_text(e) + ")");
            }
        }
        staging_.clear();
        throw io_error("prune::io: cannot create a unique staging directory beside '" + target_.string() + "'");
    }

    output_directory(output_directory&& other) noexcept
        : target_(std::move(other.target_)),
          staging_(std::move(other.staging_)),
          committed_(std::exchange(other.committed_, true)),
          ticket_(std::move(other.ticket_)) {}
    output_directory& operator=(output_directory&&) = delete;
    output_directory(const output_directory&) = delete;
    output_directory& operator=(const output_directory&) = delete;

    /// Removes the staging directory unless committed.
    ~output_directory() { discard(); }

    /// The staging directory: write the outputs here.
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return staging_; }
    /// A file inside the staging directory.
    [[nodiscard]] std::filesystem::path operator/(const std::filesystem::path& name) const { return staging_ / name; }
    /// Where the directory appears after commit().
    [[nodiscard]] const std::filesystem::path& target() const noexcept { return target_; }
    /// True once commit() succeeded.
    [[nodiscard]] bool committed() const noexcept { return committed_; }

    /// Moves the staging directory into place, replacing an existing target directory.
    void commit() {
        PRUNE_ASSERT(!committed_ && !staging_.empty());
        std::error_code ec;
        if (std::filesystem::exists(std::filesystem::symlink_status(target_, ec))) {
            // Linux: swap the two directories in one step; the old output then sits at the
            // (still registered) staging path and is removed below.
            if (::renameat2(AT_FDCWD, staging_.c_str(), AT_FDCWD, target_.c_str(), RENAME_EXCHANGE) == 0) {
                committed_ = true;
                detail::sync_directory(target_.parent_path());
                std::filesystem::remove_all(staging_, ec);  // best effort: the new output is in place
                ticket_.release();
                return;
            }
            if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) {
                const int e = errno;
                throw io_error("prune::io: cannot replace '" + target_.string() + "': " + detail::errno_text(e));
            }
            // No RENAME_EXCHANGE on this file system: move the old directory aside first.
            const std::filesystem::path old = detail::hidden_sibling(target_, "old");
            if (::rename(target_.c_str(), old.c_str()) != 0) {
                const int e = errno;
                throw io_error("prune::io: cannot move the previous '" + target_.string() +
                               "' aside: " + detail::errno_text(e));
            }
            if (::rename(staging_.c_str(), target_.c_str()) != 0) {
                const int e = errno;
                ::rename(old.c_str(), target_.c_str());  // put the previous output back
                throw io_error("prune::io: cannot move the output into '" + target_.string() +
                               "': " + detail::errno_text(e));
            }
            committed_ = true;
            ticket_.release();
            detail::sync_directory(target_.parent_path());
            std::filesystem::remove_all(old, ec);
            return;
        }
        if (::rename(staging_.c_str(), target_.c_str()) != 0) {
            const int e = errno;
            throw io_error("prune::io: cannot move the output into '" + target_.string() +
                           "': " + detail::errno_text(e));
        }
        committed_ = true;
        ticket_.release();
        detail::sync_directory(target_.parent_path());
    }

private:
    void discard() noexcept {
        if (!committed_ && !staging_.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(staging_, ec);
        }
        committed_ = true;
        ticket_.release();
    }

    std::filesystem::path target_;
    std::filesystem::path staging_;
    bool committed_ = false;
    detail::staging_ticket ticket_;
};

}  // namespace prune::io
