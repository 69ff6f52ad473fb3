// prune/mask.hpp: which parts of a network are kept.
//
// `element_mask` keeps one bit per weight (1 = kept), in the tensor's logical
// (row-major) order, packed 64 to a word; it knows the shape it was made for.
// `group_mask` keeps one flag per structural group, per layer, with per-layer counts
// that may differ: heads (layers x heads) and MLPs (one group per layer).
// `apply` zeroes what a mask prunes in any adapted tensor.
#pragma once

#include <prune/error.hpp>
#include <prune/tensor.hpp>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace prune {

/// One bit per element, 1 = kept, in logical row-major order.
class element_mask {
public:
    /// Bits per storage word.
    static constexpr std::size_t word_bits = 64;

    /// An empty mask of shape [0].
    element_mask() : shape_{0} {}

    /// A mask of the given shape with every element kept (or every one pruned).
    explicit element_mask(prune::shape extents, bool kept = true)
        : words_((extents.numel() + word_bits - 1) / word_bits, kept ? ~std::uint64_t{0} : 0),
          size_(extents.numel()),
          shape_(extents) {
        clear_tail();
    }

    /// A mask from a byte mask (0 = pruned, 1 = kept); throws value_error on any other byte.
    [[nodiscard]] static element_mask from_bytes(std::span<const std::uint8_t> bytes, prune::shape extents) {
        if (bytes.size() != extents.numel()) {
            throw shape_error("prune::element_mask::from_bytes: " + std::to_string(bytes.size()) +
                              " bytes for shape " + extents.to_string() + " (expected " +
                              std::to_string(extents.numel()) + ")");
        }
        element_mask mask(extents, false);
        for (std::size_t i = 0; i < bytes.size(); ++i) {
            if (bytes[i] > 1) {
                throw value_error("prune::element_mask::from_bytes: byte " + std::to_string(bytes[i]) +
                                  " at index " + std::to_string(i) + " (expected 0 or 1)");
            }
            mask.words_[i / word_bits] |= std::uint64_t{bytes[i]} << (i % word_bits);
        }
        return mask;
    }

    /// The mask as bytes, 1 = kept.
    [[nodiscard]] std::vector<std::uint8_t> to_bytes() const {
        std::vector<std::uint8_t> bytes(size_);
        for (std::size_t i = 0; i < size_; ++i) {
            bytes[i] = static_cast<std::uint8_t>((words_[i / word_bits] >> (i % word_bits)) & 1u);
        }
        return bytes;
    }

    /// The number of elements covered.
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    /// The shape the mask was made for.
    [[nodiscard]] const prune::shape& extents() const noexcept { return shape_; }
    /// The packed words; bits past size() are zero.
    [[nodiscard]] std::span<const std::uint64_t> words() const noexcept { return words_; }
    /// Mutable packed words; callers must keep bits past size() zero.
    [[nodiscard]] std::span<std::uint64_t> words_mutable() noexcept { return words_; }

    /// True when element i (logical order) is kept.
    [[nodiscard]] bool kept(std::size_t i) const noexcept {
        PRUNE_ASSERT(i < size_);
        return (words_[i / word_bits] >> (i % word_bits)) & 1u;
    }

    /// Marks element i kept or pruned.
    void set(std::size_t i, bool keep) noexcept {
        PRUNE_ASSERT(i < size_);
        const std::uint64_t bit = std::uint64_t{1} << (i % word_bits);
        words_[i / word_bits] = keep ? (words_[i / word_bits] | bit) : (words_[i / word_bits] & ~bit);
    }

    /// The number of kept elements.
    [[nodiscard]] std::size_t count_kept() const noexcept {
        std::size_t n = 0;
        for (std::uint64_t w : words_) {
            n += static_cast<std::size_t>(std::popcount(w));
        }
        return n;
    }
    /// The number of pruned elements.
    [[nodiscard]] std::size_t count_pruned() const noexcept { return size_ - count_kept(); }
    /// The pruned fraction (0 for an empty mask).
    [[nodiscard]] double sparsity() const noexcept {
        return size_ == 0 ? 0.0 : static_cast<double>(count_pruned()) / static_cast<double>(size_);
    }

    /// Keeps what both keep; throws shape_error on different shapes.
    element_mask& operator&=(const element_mask& other) {
        check_same_shape(other, "&");
        for (std::size_t w = 0; w < words_.size(); ++w) {
            words_[w] &= other.words_[w];
        }
        return *this;
    }
    /// Keeps what either keeps; throws shape_error on different shapes.
    element_mask& operator|=(const element_mask& other) {
        check_same_shape(other, "|");
        for (std::size_t w = 0; w < words_.size(); ++w) {
            words_[w] |= other.words_[w];
        }
        return *this;
    }
    /// Keeps what both keep.
    [[nodiscard]] friend element_mask operator&(element_mask a, const element_mask& b) { return a &= b; }
    /// Keeps what either keeps.
    [[nodiscard]] friend element_mask operator|(element_mask a, const element_mask& b) { return a |= b; }
    /// Keeps exactly what this prunes.
    [[nodiscard]] element_mask operator~() const {
        element_mask result = *this;
        for (std::uint64_t& w : result.words_) {
            w = ~w;
        }
        result.clear_tail();
        return result;
    }
    /// Same shape and same bits.
    [[nodiscard]] friend bool operator==(const element_mask& a, const element_mask& b) noexcept {
        return a.shape_ == b.shape_ && a.words_ == b.words_;
    }

private:
    void clear_tail() noexcept {
        if (size_ % word_bits != 0) {
            words_.back() &= (std::uint64_t{1} << (size_ % word_bits)) - 1u;
        }
    }
    void check_same_shape(const element_mask& other, const char* op) const {
        if (!(shape_ == other.shape_)) {
            throw shape_error(std::string("prune::element_mask ") + op + ": shapes " + shape_.to_string() +
                              " and " + other.shape_.to_string() + " differ");
        }
    }

    std::vector<std::uint64_t> words_;
    std::size_t size_ = 0;
    prune::shape shape_;
};

namespace detail {

/// An unsigned integer of the element's width, for branch-free zeroing.
template <std::size_t Bytes>
struct unsigned_of_width;
template <>
struct unsigned_of_width<2> {
    using type = std::uint16_t;
};
template <>
struct unsigned_of_width<4> {
    using type = std::uint32_t;
};
template <>
struct unsigned_of_width<8> {
    using type = std::uint64_t;
};

/// Zeroes the pruned elements of a contiguous run in logical order.
template <element T>
void apply_contiguous(std::span<const std::uint64_t> words, std::span<T> data) noexcept {
    using U = typename unsigned_of_width<sizeof(T)>::type;
    const std::size_t n = data.size();
    const std::size_t full_words = n / element_mask::word_bits;
    auto* bytes = reinterpret_cast<unsigned char*>(data.data());
    for (std::size_t w = 0; w < full_words; ++w) {
        const std::uint64_t bits = words[w];
        if (bits == ~std::uint64_t{0}) {
            continue;
        }
        unsigned char* block = bytes + w * element_mask::word_bits * sizeof(T);
        if (bits == 0) {
            std::memset(block, 0, element_mask::word_bits * sizeof(T));
            continue;
        }
        U lanes[element_mask::word_bits];
        std::memcpy(lanes, block, sizeof(lanes));
        for (std::size_t j = 0; j < element_mask::word_bits; ++j) {
            lanes[j] &= static_cast<U>(U{0} - static_cast<U>((bits >> j) & 1u));
        }
        std::memcpy(block, lanes, sizeof(lanes));
    }
    for (std::size_t i = full_words * element_mask::word_bits; i < n; ++i) {
        if (!((words[i / element_mask::word_bits] >> (i % element_mask::word_bits)) & 1u)) {
            data[i] = std::remove_const_t<T>{};
        }
    }
}

}  // namespace detail

namespace detail {
/// Zeroes, in a view, every element the mask prunes; throws shape_error on a size mismatch.
template <element T>
    requires(!std::is_const_v<T>)
void apply_to_view(const element_mask& mask, const tensor_view<T>& tensor) {
    if (mask.size() != tensor.size() || !(mask.extents().numel() == tensor.extents().numel())) {
        throw shape_error("prune::apply: mask of shape " + mask.extents().to_string() +
                          " does not fit a tensor of shape " + tensor.extents().to_string());
    }
    if (tensor.is_logically_contiguous()) {
        detail::apply_contiguous(mask.words(), tensor.data());
        return;
    }
    const std::span<T> data = tensor.data();
    const prune::shape& extents = tensor.extents();
    if (extents.rank() == 2) {  // column-major matrix: walk storage, index the mask logically
        const std::size_t rows = extents[0];
        const std::size_t cols = extents[1];
        for (std::size_t c = 0; c < cols; ++c) {
            for (std::size_t r = 0; r < rows; ++r) {
                if (!mask.kept(r * cols + c)) {
                    data[c * rows + r] = T{};
                }
            }
        }
        return;
    }
    for (std::size_t i = 0; i < mask.size(); ++i) {
        if (!mask.kept(i)) {
            data[tensor.storage_index(i)] = T{};
        }
    }
}

}  // namespace detail

/// Zeroes, in any adapted tensor (or view), every element the mask prunes; throws
/// shape_error when the mask's size differs from the tensor's.
template <class Tensor>
void apply(const element_mask& mask, Tensor&& tensor) {
    detail::apply_to_view(mask, view(tensor));
}

/// One keep-flag per group (head, MLP) per layer; per-layer group counts may differ.
class group_mask {
public:
    /// An empty mask (no layers).
    group_mask() = default;

    /// A mask with groups_per_layer[l] groups in layer l, all kept (or all pruned).
    explicit group_mask(std::span<const std::size_t> groups_per_layer, bool kept = true) {
        offsets_.reserve(groups_per_layer.size() + 1);
        offsets_.push_back(0);
        for (std::size_t g : groups_per_layer) {
            offsets_.push_back(offsets_.back() + g);
        }
        flags_.assign(offsets_.back(), kept ? 1 : 0);
    }

    /// A mask of `layers` layers with `groups` groups each.
    [[nodiscard]] static group_mask uniform(std::size_t layers, std::size_t groups, bool kept = true) {
        const std::vector<std::size_t> counts(layers, groups);
        return group_mask(counts, kept);
    }

    /// A mask from nested 0/1 rows; throws value_error on other values.
    [[nodiscard]] static group_mask from_rows(const std::vector<std::vector<int>>& rows) {
        std::vector<std::size_t> counts;
        for (const auto& row : rows) {
            counts.push_back(row.size());
        }
        group_mask mask(counts);
        for (std::size_t l = 0; l < rows.size(); ++l) {
            for (std::size_t g = 0; g < rows[l].size(); ++g) {
                if (rows[l][g] != 0 && rows[l][g] != 1) {
                    throw value_error("prune::group_mask: value " + std::to_string(rows[l][g]) + " at [" +
                                      std::to_string(l) + "][" + std::to_string(g) + "] (expected 0 or 1)");
                }
                mask.set(l, g, rows[l][g] == 1);
            }
        }
        return mask;
    }

    /// The mask as nested 0/1 rows.
    [[nodiscard]] std::vector<std::vector<int>> to_rows() const {
        std::vector<std::vector<int>> rows(layers());
        for (std::size_t l = 0; l < layers(); ++l) {
            for (std::size_t g = 0; g < groups(l); ++g) {
                rows[l].push_back(kept(l, g) ? 1 : 0);
            }
        }
        return rows;
    }

    /// The number of layers.
    [[nodiscard]] std::size_t layers() const noexcept { return offsets_.empty() ? 0 : offsets_.size() - 1; }
    /// The number of groups in layer l.
    [[nodiscard]] std::size_t groups(std::size_t l) const noexcept {
        PRUNE_ASSERT(l < layers());
        return offsets_[l + 1] - offsets_[l];
    }
    /// The number of groups in all layers.
    [[nodiscard]] std::size_t total() const noexcept { return flags_.size(); }
    /// The flat index of group g of layer l (layers in order, groups in order).
    [[nodiscard]] std::size_t flat_index(std::size_t l, std::size_t g) const noexcept {
        PRUNE_ASSERT(l < layers() && g < groups(l));
        return offsets_[l] + g;
    }
    /// True when group g of layer l is kept.
    [[nodiscard]] bool kept(std::size_t l, std::size_t g) const noexcept { return flags_[flat_index(l, g)] != 0; }
    /// True when the group at a flat index is kept.
    [[nodiscard]] bool kept_flat(std::size_t i) const noexcept {
        PRUNE_ASSERT(i < total());
        return flags_[i] != 0;
    }
    /// Marks group g of layer l kept or pruned.
    void set(std::size_t l, std::size_t g, bool keep) noexcept { flags_[flat_index(l, g)] = keep ? 1 : 0; }
    /// Marks the group at a flat index kept or pruned.
    void set_flat(std::size_t i, bool keep) noexcept {
        PRUNE_ASSERT(i < total());
        flags_[i] = keep ? 1 : 0;
    }
    /// The number of kept groups in layer l.
    [[nodiscard]] std::size_t count_kept(std::size_t l) const noexcept {
        return static_cast<std::size_t>(
            std::count(flags_.begin() + static_cast<std::ptrdiff_t>(offsets_[l]),
                       flags_.begin() + static_cast<std::ptrdiff_t>(offsets_[l + 1]), 1));
    }
    /// The number of kept groups in all layers.
    [[nodiscard]] std::size_t count_kept() const noexcept {
        return static_cast<std::size_t>(std::count(flags_.begin(), flags_.end(), 1));
    }
    /// The number of pruned groups in all layers.
    [[nodiscard]] std::size_t count_pruned() const noexcept { return total() - count_kept(); }
    /// The pruned fraction (0 for an empty mask).
    [[nodiscard]] double sparsity() const noexcept {
        return total() == 0 ? 0.0 : static_cast<double>(count_pruned()) / static_cast<double>(total());
    }
    /// True when both masks have the same layers and group counts.
    [[nodiscard]] bool same_layout(const group_mask& other) const noexcept { return offsets_ == other.offsets_; }

    /// Keeps what both keep; throws shape_error on different layouts.
    group_mask& operator&=(const group_mask& other) {
        check_layout(other, "&");
        for (std::size_t i = 0; i < flags_.size(); ++i) {
            flags_[i] &= other.flags_[i];
        }
        return *this;
    }
    /// Keeps what either keeps; throws shape_error on different layouts.
    group_mask& operator|=(const group_mask& other) {
        check_layout(other, "|");
        for (std::size_t i = 0; i < flags_.size(); ++i) {
            flags_[i] |= other.flags_[i];
        }
        return *this;
    }
    /// Keeps what both keep.
    [[nodiscard]] friend group_mask operator&(group_mask a, const group_mask& b) { return a &= b; }
    /// Keeps what either keeps.
    [[nodiscard]] friend group_mask operator|(group_mask a, const group_mask& b) { return a |= b; }
    /// Keeps exactly what this prunes.
    [[nodiscard]] group_mask operator~() const {
        group_mask result = *this;
        for (std::uint8_t& f : result.flags_) {
            f ^= 1u;
        }
        return result;
    }
    /// Same layout and same flags.
    [[nodiscard]] friend bool operator==(const group_mask&, const group_mask&) = default;

private:
    void check_layout(const group_mask& other, const char* op) const {
        if (!same_layout(other)) {
            throw shape_error(std::string("prune::group_mask ") + op +
                              ": the masks differ in layers or groups per layer");
        }
    }

    std::vector<std::size_t> offsets_;  // offsets_[l] = first flat index of layer l
    std::vector<std::uint8_t> flags_;   // 1 = kept
};

/// The structure of a transformer that s-pruning removes: heads (layers x heads) and MLPs (one per layer).
struct structure_mask {
    group_mask heads;  ///< layers x heads
    group_mask mlps;   ///< layers x 1
    /// Same heads and MLPs.
    [[nodiscard]] friend bool operator==(const structure_mask&, const structure_mask&) = default;
};

/// Zeroes, along `axis` of a tensor split into groups(layer) equal blocks, the blocks of the
/// pruned groups of `layer` (e.g. Q rows: axis 0; attention-output columns: axis 1).
template <class Tensor>
void apply_groups(const group_mask& mask, std::size_t layer, Tensor&& tensor, std::size_t axis) {
    auto v = view(tensor);
    const prune::shape& extents = v.extents();
    if (layer >= mask.layers() || axis >= extents.rank()) {
        throw shape_error("prune::apply_groups: layer " + std::to_string(layer) + " / axis " +
                          std::to_string(axis) + " out of range for a mask of " + std::to_string(mask.layers()) +
                          " layers and a tensor of shape " + extents.to_string());
    }
    const std::size_t groups = mask.groups(layer);
    if (groups == 0 || extents[axis] % groups != 0) {
        throw shape_error("prune::apply_groups: axis " + std::to_string(axis) + " of shape " + extents.to_string() +
                          " does not split into " + std::to_string(groups) + " equal groups");
    }
    element_mask expanded(extents);
    const std::size_t block = extents[axis] / groups;
    std::size_t inner = 1;
    for (std::size_t d = axis + 1; d < extents.rank(); ++d) {
        inner *= extents[d];
    }
    const std::size_t outer = extents.numel() / (extents[axis] * inner);
    for (std::size_t o = 0; o < outer; ++o) {
        for (std::size_t a = 0; a < extents[axis]; ++a) {
            if (!mask.kept(layer, a / block)) {
                for (std::size_t i = 0; i < inner; ++i) {
                    expanded.set((o * extents[axis] + a) * inner + i, false);
                }
            }
        }
    }
    detail::apply_to_view(expanded, v);
}

}  // namespace prune
