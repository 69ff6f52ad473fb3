#!/usr/bin/python3
"""Generates include/prune/text/unicode_tables.hpp from Python's unicodedata.

Hugging Face's BertTokenizer (slow, Python) calls unicodedata.category, str.lower,
str.isspace and unicodedata.normalize("NFD"); this script dumps exactly those
properties, so the C++ tokenizer answers as the Python one does for the Unicode
version of the Python that ran it. The byte-level BPE tokenizer (bpe.hpp) adds what its
pre-tokenizer regexes and NFC normalizer need: every code point's general category
(\p{L}, \p{N}, ...), Unicode's White_Space property (\s), the canonical combining
classes and the canonical compositions. Run: /usr/bin/python3 tests/text/gen_unicode_tables.py > include/prune/text/unicode_tables.hpp
"""
import sys
import unicodedata as ud

MAX = 0x110000
HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3


def ranges(pred):
    out, start = [], None
    for cp in range(MAX):
        if pred(cp):
            if start is None:
                start = cp
        elif start is not None:
            out.append((start, cp - 1))
            start = None
    if start is not None:
        out.append((start, MAX - 1))
    return out


def emit_ranges(name, doc, rs):
    print(f"/// {doc}")
    print(f"inline constexpr code_range {name}[] = {{")
    line = "   "
    for a, b in rs:
        item = f" {{0x{a:X}, 0x{b:X}}},"
        if len(line) + len(item) > 96:
            print(line)
            line = "   "
        line += item
    print(line)
    print("};")
    print()


def emit_mapping(name, doc, pairs):
    pool, entries = [], []
    for cp, seq in pairs:
        entries.append((cp, len(pool), len(seq)))
        pool.extend(seq)
    print(f"/// {doc} (targets stored in {name}_pool)")
    print(f"inline constexpr char32_t {name}_pool[] = {{")
    line = "   "
    for v in pool:
        item = f" 0x{v:X},"
        if len(line) + len(item) > 96:
            print(line)
            line = "   "
        line += item
    print(line)
    print("};")
    print(f"/// {doc}: source code point, offset and length in {name}_pool; sorted by source")
    print(f"inline constexpr code_mapping {name}[] = {{")
    line = "   "
    for cp, off, n in entries:
        item = f" {{0x{cp:X}, {off}, {n}}},"
        if len(line) + len(item) > 96:
            print(line)
            line = "   "
        line += item
    print(line)
    print("};")
    print()


def cat(cp):
    return ud.category(chr(cp))


# General categories in the order of prune::text::unicode::category (Cn, unassigned, is 0
# and not listed in the table).
CATEGORIES = ["Cn", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps",
              "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co"]

# Unicode's White_Space property (PropList.txt; unchanged since Unicode 6.3, when U+180E left
# it). unicodedata does not expose it; Oniguruma's and Rust regex's \s are this property.
WHITE_SPACE = [(0x9, 0xD), (0x20, 0x20), (0x85, 0x85), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A),
               (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000)]


def emit_valued_ranges(name, ctype, doc, value_of):
    """Runs of equal non-zero value_of(cp) as {first, last, value}."""
    runs, start, current = [], None, 0
    for cp in range(MAX + 1):
        v = value_of(cp) if cp < MAX else 0
        if v != current:
            if current:
                runs.append((start, cp - 1, current))
            start, current = cp, v
    print(f"/// {doc}")
    print(f"inline constexpr {ctype} {name}[] = {{")
    line = "   "
    for a, b, v in runs:
        item = f" {{0x{a:X}, 0x{b:X}, {v}}},"
        if len(line) + len(item) > 96:
            print(line)
            line = "   "
        line += item
    print(line)
    print("};")
    print()


def emit_bpe_tables():
    print("/// General categories; the values index `category_names` (Cn, unassigned, is 0).")
    print("enum class category : std::uint8_t {")
    items = [f"{c} = {i}," for i, c in enumerate(CATEGORIES)]
    for k in range(0, len(items), 10):
        print("    " + " ".join(items[k:k + 10]))
    print("};")
    print()
    print("/// The two-letter names of `category` values, in value order.")
    print("inline constexpr const char* category_names[] = {")
    names = [f'"{c}",' for c in CATEGORIES]
    for k in range(0, len(names), 15):
        print("    " + " ".join(names[k:k + 15]))
    print("};")
    print()
    print("/// A range of code points [first, last] sharing one value.")
    print("struct valued_range {")
    print("    char32_t first;      ///< first code point of the range")
    print("    char32_t last;       ///< last code point of the range (inclusive)")
    print("    std::uint8_t value;  ///< the value (a category or a combining class)")
    print("};")
    print()
    print("/// A canonical composition: `first` followed by `second` composes to `composite` (NFC).")
    print("struct composition {")
    print("    char32_t first;      ///< the starter")
    print("    char32_t second;     ///< the character that combines with it")
    print("    char32_t composite;  ///< the primary composite")
    print("};")
    print()
    index = {c: i for i, c in enumerate(CATEGORIES)}
    emit_valued_ranges("general_categories", "valued_range",
                       "General category of every assigned code point (value: a `category`); sorted, gaps are Cn.",
                       lambda cp: index[ud.category(chr(cp))])
    emit_ranges("white_space_ranges", "Unicode White_Space (PropList.txt): Oniguruma's and Rust regex's \\s.",
                WHITE_SPACE)
    emit_valued_ranges("combining_class_ranges", "valued_range",
                       "Every non-zero canonical combining class (value: the class); sorted, gaps are class 0.",
                       lambda cp: ud.combining(chr(cp)))
    pairs = []
    for cp in range(MAX):
        if 0xD800 <= cp <= 0xDFFF or HANGUL_FIRST <= cp <= HANGUL_LAST:
            continue
        d = ud.decomposition(chr(cp))
        if not d or d.startswith("<"):
            continue
        parts = [int(x, 16) for x in d.split()]
        # Primary composites: two-character canonical mappings that NFC recomposes (not
        # singletons, not composition exclusions, not non-starter decompositions).
        if len(parts) == 2 and ud.normalize("NFC", chr(parts[0]) + chr(parts[1])) == chr(cp):
            pairs.append((parts[0], parts[1], cp))
    pairs.sort()
    print("/// Canonical compositions of NFC (Hangul syllables are algorithmic and not listed); sorted by (first, second).")
    print("inline constexpr composition canonical_compositions[] = {")
    line = "   "
    for a, b, c in pairs:
        item = f" {{0x{a:X}, 0x{b:X}, 0x{c:X}}},"
        if len(line) + len(item) > 96:
            print(line)
            line = "   "
        line += item
    print(line)
    print("};")
    print()


def main():
    print("// prune/text/unicode_tables.hpp: the Unicode properties BERT's tokenizer needs, generated")
    print(f"// from Python {sys.version.split()[0]}'s unicodedata (Unicode {ud.unidata_version}) by")
    print("// tests/text/gen_unicode_tables.py -- do not edit by hand. Hugging Face's slow BertTokenizer")
    print("// calls exactly these: unicodedata.category (C*, Zs, P*, Mn), str.isspace, str.lower")
    print("// (with the Cased / Case_Ignorable properties of its final-sigma rule), the canonical")
    print("// decomposition of NFD (Hangul syllables are algorithmic and not listed) and the non-zero")
    print("// canonical combining classes of the marks NFD reorders that are not Mn. The byte-level BPE")
    print("// tokenizer (bpe.hpp) also uses the general category of every code point, White_Space,")
    print("// all non-zero canonical combining classes and the canonical compositions (NFC).")
    print("#pragma once")
    print()
    print("#include <cstdint>")
    print()
    print("namespace prune::text::unicode {")
    print()
    print("/// An inclusive range of code points [first, last].")
    print("struct code_range {")
    print("    char32_t first;  ///< first code point of the range")
    print("    char32_t last;   ///< last code point of the range (inclusive)")
    print("};")
    print()
    print("/// One code point mapped to a sequence of code points stored in a pool.")
    print("struct code_mapping {")
    print("    char32_t source;       ///< the mapped code point")
    print("    std::uint16_t offset;  ///< where its target starts in the pool")
    print("    std::uint16_t length;  ///< how many code points the target has")
    print("};")
    print()
    print("/// A code point with its canonical combining class.")
    print("struct combining_class {")
    print("    char32_t code;        ///< the code point")
    print("    std::uint8_t value;   ///< its canonical combining class (non-zero)")
    print("};")
    print()
    emit_ranges("other_ranges", "General category C* (Cc, Cf, Cs, Co, Cn): HF's _is_control.",
                ranges(lambda cp: cat(cp).startswith("C")))
    emit_ranges("space_separator_ranges", "General category Zs: HF's _is_whitespace beyond \\t \\n \\r.",
                ranges(lambda cp: cat(cp) == "Zs"))
    emit_ranges("punctuation_ranges", "General category P*: HF's _is_punctuation beyond its ASCII ranges.",
                ranges(lambda cp: cat(cp).startswith("P")))
    emit_ranges("nonspacing_mark_ranges", "General category Mn: the marks accent stripping removes.",
                ranges(lambda cp: cat(cp) == "Mn"))
    emit_ranges("python_space_ranges", "Python's str.isspace(): what str.split() splits on.",
                ranges(lambda cp: chr(cp).isspace()))

    # Final-sigma context of str.lower (CPython's handle_capital_sigma): probe Python itself.
    # "A" + SIGMA + x lowers the sigma to final (U+03C2) unless x is Cased and not
    # Case_Ignorable; appending "B" turns it back to U+03C3 exactly when x is ignorable.
    # (Cased never matters for an ignorable code point: both scans skip those first.)
    def probe(cp):
        p1 = ("A\u03a3" + chr(cp)).lower()[1]
        p2 = ("A\u03a3" + chr(cp) + "B").lower()[1]
        ignorable = p1 == "\u03c2" and p2 == "\u03c3"
        cased = not ignorable and p1 == "\u03c3"
        return cased, ignorable

    props = [probe(cp) if (cp < 0xD800 or cp > 0xDFFF) else (False, False) for cp in range(MAX)]
    emit_ranges("case_ignorable_ranges", "Unicode Case_Ignorable, as Python's str.lower uses it for the final sigma.",
                ranges(lambda cp: props[cp][1]))
    emit_ranges("cased_ranges", "Unicode Cased and not Case_Ignorable, as Python's str.lower uses it for the final sigma.",
                ranges(lambda cp: props[cp][0]))

    lower = []
    for cp in range(MAX):
        if 0xD800 <= cp <= 0xDFFF or cp == 0x3A3:
            continue
        low = chr(cp).lower()
        if low != chr(cp):
            lower.append((cp, [ord(c) for c in low]))
    emit_mapping("lowercase", "str.lower() of one code point, where it changes (U+03A3 sigma is contextual)", lower)

    nfd = []
    for cp in range(MAX):
        if 0xD800 <= cp <= 0xDFFF or HANGUL_FIRST <= cp <= HANGUL_LAST:
            continue
        d = ud.normalize("NFD", chr(cp))
        if d != chr(cp):
            nfd.append((cp, [ord(c) for c in d]))
    emit_mapping("canonical_decomposition", "Full canonical decomposition (NFD of one code point)", nfd)

    print("/// Non-zero canonical combining classes of the code points that are not Mn (NFD reorders them).")
    print("inline constexpr combining_class spacing_combining_classes[] = {")
    for cp in range(MAX):
        if ud.category(chr(cp)) != "Mn" and ud.combining(chr(cp)) > 0:
            print(f"    {{0x{cp:X}, {ud.combining(chr(cp))}}},")
    print("};")
    print()
    emit_ranges("nonzero_combining_ranges", "Code points with a non-zero canonical combining class (NFD reorders runs of them).",
                ranges(lambda cp: ud.combining(chr(cp)) > 0))
    emit_bpe_tables()
    print("}  // namespace prune::text::unicode")


if __name__ == "__main__":
    main()
