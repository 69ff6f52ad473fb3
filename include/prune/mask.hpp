// prune/mask.hpp: which parts of a network are kept.
//
// `element_mask` keeps one bit per weight (1 = kept), in the tensor's logical
// (row-major) order, packed 64 to a word; it knows the shape it was made for.
// `group_mask` keeps one flag per structural group, per layer, with per-layer counts
// that may differ: heads (layers x heads) and MLPs (one group per layer).
// `apply` zeroes what a mask prunes in any adapted tensor (including runtime-typed ones
// such as torch::Tensor, through visit_view); the mask must have the tensor's shape, or
// its number of elements when either is rank 1. On contiguous row-major storage it runs
// branch-free, one mask word per 64 elements, at memory speed (benchmarks/bench_mask.cpp);
// a column-major matrix is handled in 64x64 tiles whose mask bits are transposed first.
#pragma once

#include <prune/error.hpp>
#include <prune/tensor.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
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
        write_bytes(bytes);
        return bytes;
    }

    /// Writes the mask as bytes, 1 = kept, into `out` (exactly size() bytes; shape_error otherwise).
    void write_bytes(std::span<std::uint8_t> out) const {
        if (out.size() != size_) {
            throw shape_error("prune::element_mask::write_bytes: " + std::to_string(out.size()) + " bytes for " +
                              std::to_string(size_) + " elements");
        }
        for (std::size_t i = 0; i < size_; ++i) {
            out[i] = static_cast<std::uint8_t>((words_[i / word_bits] >> (i % word_bits)) & 1u);
        }
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

/// Zeroes the elements of a block of 64 whose bit is 0 (bit j: element j), branch-free.
template <element T>
inline void apply_word(std::uint64_t bits, T* block) noexcept {
    using U = typename unsigned_of_width<sizeof(T)>::type;
    constexpr std::size_t n = element_mask::word_bits;
    if (bits == ~std::uint64_t{0}) {
        return;
    }
    if (bits == 0) {
        std::memset(static_cast<void*>(block), 0, n * sizeof(T));
        return;
    }
    U lanes[n];
    std::memcpy(lanes, static_cast<const void*>(block), sizeof(lanes));
    for (std::size_t j = 0; j < n; ++j) {
        lanes[j] &= static_cast<U>(U{0} - static_cast<U>((bits >> j) & 1u));
    }
    std::memcpy(static_cast<void*>(block), lanes, sizeof(lanes));
}

/// Zeroes the first `count` (< 64) elements of a block whose bit is 0.
template <element T>
inline void apply_partial_word(std::uint64_t bits, T* block, std::size_t count) noexcept {
    for (std::size_t j = 0; j < count; ++j) {
        if (!((bits >> j) & 1u)) {
            block[j] = T{};
        }
    }
}

/// Zeroes the pruned elements of a contiguous run in logical order.
template <element T>
void apply_contiguous(std::span<const std::uint64_t> words, std::span<T> data) noexcept {
    const std::size_t n = data.size();
    const std::size_t full_words = n / element_mask::word_bits;
    for (std::size_t w = 0; w < full_words; ++w) {
        apply_word(words[w], data.data() + w * element_mask::word_bits);
    }
    if (n % element_mask::word_bits != 0) {
        apply_partial_word(words[full_words], data.data() + full_words * element_mask::word_bits,
                           n % element_mask::word_bits);
    }
}

/// `count` (<= 64) bits of a packed bit array starting at bit `first`, in the low bits.
[[nodiscard]] inline std::uint64_t bits_at(std::span<const std::uint64_t> words, std::size_t first,
                                           std::size_t count) noexcept {
    const std::size_t w = first / element_mask::word_bits;
    const std::size_t offset = first % element_mask::word_bits;
    std::uint64_t value = words[w] >> offset;
    if (offset != 0 && offset + count > element_mask::word_bits) {
        value |= words[w + 1] << (element_mask::word_bits - offset);
    }
    return count == element_mask::word_bits ? value : value & ((std::uint64_t{1} << count) - 1u);
}

/// Transposes a 64x64 bit matrix in place: bit j of row i goes to bit i of row j.
inline void transpose_bits(std::array<std::uint64_t, 64>& rows) noexcept {
    std::uint64_t low = 0x00000000FFFFFFFFull;
    for (std::size_t j = 32; j != 0; j >>= 1, low ^= (low << j)) {
        for (std::size_t k = 0; k < 64; k = ((k | j) + 1) & ~j) {
            const std::uint64_t t = ((rows[k] >> j) ^ rows[k | j]) & low;
            rows[k] ^= t << j;
            rows[k | j] ^= t;
        }
    }
}

/// Applies a logical (row-major) mask to a column-major rows x cols matrix: 64x64 tiles of
/// the mask are transposed into storage order, then applied branch-free column by column.
template <element T>
void apply_column_major(std::span<const std::uint64_t> words, T* data, std::size_t rows, std::size_t cols) noexcept {
    constexpr std::size_t tile = element_mask::word_bits;
    std::array<std::uint64_t, tile> bits{};
    for (std::size_t c0 = 0; c0 < cols; c0 += tile) {
        const std::size_t nc = std::min(tile, cols - c0);
        for (std::size_t r0 = 0; r0 < rows; r0 += tile) {
            const std::size_t nr = std::min(tile, rows - r0);
            for (std::size_t i = 0; i < tile; ++i) {
                bits[i] = i < nr ? bits_at(words, (r0 + i) * cols + c0, nc) : 0;
            }
            transpose_bits(bits);  // bits[j]: rows r0.. of column c0 + j
            for (std::size_t j = 0; j < nc; ++j) {
                T* column = data + (c0 + j) * rows + r0;
                if (nr == tile) {
                    apply_word(bits[j], column);
                } else {
                    apply_partial_word(bits[j], column, nr);
                }
            }
        }
    }
}

/// True when a mask of shape `mask` may be applied to a tensor of shape `tensor`: the same
/// shape, or the same number of elements when either is rank 0 or 1 (a flat mask or tensor).
[[nodiscard]] inline bool mask_fits(const prune::shape& mask, const prune::shape& tensor) noexcept {
    if (mask == tensor) {
        return true;
    }
    return (mask.rank() <= 1 || tensor.rank() <= 1) && mask.numel() == tensor.numel();
}

/// Throws shape_error unless a mask fits a tensor of the given shape (see mask_fits).
inline void check_mask_fits(const element_mask& mask, const prune::shape& tensor) {
    if (!mask_fits(mask.extents(), tensor)) {
        throw shape_error("prune::apply: a mask of shape " + mask.extents().to_string() +
                          " does not fit a tensor of shape " + tensor.to_string() +
                          " (expected the same shape, or the same number of elements when either is rank 1)");
    }
}

/// Zeroes, in a view, every element the mask prunes; throws shape_error when the shapes do not fit.
template <element T>
    requires(!std::is_const_v<T>)
void apply_to_view(const element_mask& mask, const tensor_view<T>& tensor) {
    check_mask_fits(mask, tensor.extents());
    if (tensor.is_logically_contiguous()) {
        apply_contiguous(mask.words(), tensor.data());
        return;
    }
    const std::span<T> data = tensor.data();
    const prune::shape& extents = tensor.extents();
    if (extents.rank() == 2) {
        apply_column_major(mask.words(), data.data(), extents[0], extents[1]);
        return;
    }
    for (std::size_t i = 0; i < mask.size(); ++i) {  // column-major of rank > 2
        if (!mask.kept(i)) {
            data[tensor.storage_index(i)] = T{};
        }
    }
}

}  // namespace detail

/// True when an adapter writes masks itself (`static void apply_mask(const element_mask&, T&)`),
/// e.g. torch's, which goes through autograd for a tensor that needs it.
template <class T>
concept applies_masks_itself = requires(const element_mask& mask, T& tensor) {
    tensor_traits<std::remove_cvref_t<T>>::apply_mask(mask, tensor);
};

/// Zeroes, in any adapted tensor (or view), every element the mask prunes. The mask must
/// have the tensor's shape (or its number of elements, when either is rank 1); otherwise
/// throws shape_error.
template <class Tensor>
void apply(const element_mask& mask, Tensor&& tensor) {
    if constexpr (applies_masks_itself<Tensor>) {
        tensor_traits<std::remove_cvref_t<Tensor>>::apply_mask(mask, tensor);
    } else {
        prune::visit_view(tensor, [&mask](auto tensor_view) {
            static_assert(!std::is_const_v<typename decltype(tensor_view)::element_type>,
                          "prune::apply: the tensor is const (or a view of const elements); a mask is applied "
                          "in place, so it needs mutable elements");
            detail::apply_to_view(mask, tensor_view);
        });
    }
}

/// One keep-flag per group (head, MLP) per layer; per-layer group counts may differ.
class group_mask {
public:
    /// An empty mask (no layers).
    group_mask() = default;

    /// A mask with groups_per_layer[l] groups in layer l, all kept (or all pruned).
    explicit group_mask(std::span<const std::size_t> groups_per_layer, bool kept = true) {
        offsets_.reserve(groups_per_layer.size() + 1);
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
    [[nodiscard]] std::size_t layers() const noexcept { return offsets_.size() - 1; }
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
        PRUNE_ASSERT(l < layers());
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

    std::vector<std::size_t> offsets_{0};  // offsets_[l] = first flat index of layer l; back() = total
    std::vector<std::uint8_t> flags_;   // 1 = kept
};

/// The structure of a transformer that s-pruning removes: heads (layers x heads) and MLPs (one per layer).
struct structure_mask {
    group_mask heads;       ///< layers x heads
    group_mask mlps;        ///< layers x 1
    group_mask kv_groups{};  ///< layers x K/V heads (decoders with grouped-query attention); empty = all kept
    group_mask mlp_channels{};  ///< layers x MLP width (decoders: single MLP channels); empty = all kept
    /// Same heads, MLPs, K/V groups and MLP channels.
    [[nodiscard]] friend bool operator==(const structure_mask&, const structure_mask&) = default;
};

namespace detail {
/// The element mask of a tensor of shape `extents` that prunes, along `axis` split into
/// groups(layer) equal blocks, the blocks of the pruned groups of `layer`.
[[nodiscard]] inline element_mask expand_groups(const group_mask& mask, std::size_t layer, const prune::shape& extents,
                                                std::size_t axis) {
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
    return expanded;
}
}  // namespace detail

/// Zeroes, along `axis` of a tensor split into groups(layer) equal blocks, the blocks of the
/// pruned groups of `layer` (e.g. Q rows: axis 0; attention-output columns: axis 1).
template <class Tensor>
void apply_groups(const group_mask& mask, std::size_t layer, Tensor&& tensor, std::size_t axis) {
    const prune::shape extents = prune::visit_view(std::as_const(tensor), [](auto v) { return v.extents(); });
    prune::apply(detail::expand_groups(mask, layer, extents, axis), std::forward<Tensor>(tensor));
}

}  // namespace prune
