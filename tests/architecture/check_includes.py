#!/usr/bin/env python3
"""tests/architecture/check_includes.py: every #include in the repository points down or
within its own layer, as the tables of docs/architecture.md say.

Usage: check_includes.py REPO_ROOT [--list | --self-test]
Reads two tables from REPO_ROOT/docs/architecture.md:
  "Layers":      | layer | paths | may include | libraries |
  "Exceptions":  | file | includes | reason |
A path pattern is repository-relative: a directory ends with "/" (everything below it), a
file pattern may use "*" (within one directory level). Each source file (.hpp, .cpp, .h)
under include/, examples/, tests/, benchmarks/, fuzz/ and tools/ belongs to exactly one layer.
For every `#include <prune/...>` or `#include "..."` of a repository file, the included file's
layer must be the file's own layer or one it may include, unless the pair is an exception.
For every third-party include (<nlohmann/...>, <Eigen/...>, <xtensor/...>, <ATen/...>,
<c10/...>, <torch/...>, <cblas.h>, <catch2/...>, <benchmark/...>, <CLI/...>) the library must
be listed for the layer ("any": every library).
Prints one line per violation (file:line: what, which rule) and exits 1 when there is any;
exits 2 when the tables are missing or malformed, or a file matches no layer or two.
--list prints the layers each layer actually includes. --self-test checks the checker: it
must find four violations planted in a small copy of the tree (up, sideways, a test including
examples/, a library the layer may not use).
"""
import os
import re
import sys

SOURCE_DIRS = ["include", "examples", "tests", "benchmarks", "fuzz", "tools"]
SOURCE_EXT = (".hpp", ".cpp", ".h")
LIBRARIES = [  # include prefix -> library name used in the table
    ("nlohmann/", "json"), ("Eigen/", "Eigen"), ("unsupported/Eigen/", "Eigen"), ("xtensor/", "xtensor"),
    ("ATen/", "torch"), ("c10/", "torch"), ("torch/", "torch"), ("cblas.h", "BLAS"), ("openblas", "BLAS"),
    ("catch2/", "Catch2"), ("benchmark/", "benchmark"), ("CLI/", "CLI11"), ("mpi.h", "MPI"),
]
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def fail(message):
    print("check_includes: " + message, file=sys.stderr)
    sys.exit(2)


def table_rows(text, heading):
    """The rows (lists of cell strings, code marks removed) of the first table after `heading`."""
    lines = text.splitlines()
    try:
        start = next(i for i, l in enumerate(lines) if l.startswith("#") and l.lstrip("#").strip() == heading)
    except StopIteration:
        fail("docs/architecture.md has no section '" + heading + "'")
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("#"):
            break
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip().replace("`", "") for c in line.strip().strip("|").split("|")]
        if set("".join(cells)) <= set("-: "):
            continue  # the separator row
        rows.append(cells)
    if not rows:
        fail("docs/architecture.md has no table under '" + heading + "'")
    return rows[1:]  # without the header row


def split_list(cell):
    return [x.strip() for x in cell.split(",") if x.strip() and x.strip() != "-"]


def pattern_regex(pattern):
    if pattern.endswith("/"):
        return re.compile(re.escape(pattern) + ".*")
    return re.compile("[^/]*".join(re.escape(p) for p in pattern.split("*")))


def read_tables(root):
    path = os.path.join(root, "docs", "architecture.md")
    if not os.path.exists(path):
        fail("cannot read " + path)
    text = open(path, encoding="utf-8").read()
    layers = {}
    rows = table_rows(text, "Layers")
    if not rows:
        fail("the Layers table of docs/architecture.md is empty")
    for cells in rows:
        if len(cells) != 4:
            fail("a row of the Layers table does not have 4 cells: " + " | ".join(cells))
        name, paths, may, libraries = cells
        layers[name] = {"patterns": [pattern_regex(p) for p in split_list(paths)],
                        "may": set(split_list(may)) | {name}, "libraries": set(split_list(libraries))}
    for name, layer in layers.items():
        unknown = layer["may"] - set(layers) - {"any"}
        if unknown:
            fail("layer " + name + " may include unknown layers: " + ", ".join(sorted(unknown)))
    exceptions = {}
    for cells in table_rows(text, "Exceptions"):
        if len(cells) != 3 or not cells[2]:
            fail("a row of the Exceptions table needs a file, what it includes and a reason: " + " | ".join(cells))
        exceptions[(cells[0], cells[1])] = False
    return layers, exceptions


def sources(root):
    for top in SOURCE_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames.sort()
            for f in sorted(filenames):
                if f.endswith(SOURCE_EXT):
                    yield os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/")


def layer_of(path, layers):
    found = [name for name, layer in layers.items() if any(p.fullmatch(path) for p in layer["patterns"])]
    if len(found) != 1:
        fail(path + (" matches no layer" if not found else " matches several layers: " + ", ".join(found)) +
             " of docs/architecture.md")
    return found[0]


def resolve(root, source, quote, target):
    """The repository path an include names, or None when it is not a repository file."""
    candidates = []
    if quote == '"':
        candidates.append(os.path.join(os.path.dirname(source), target))
    # then the include paths a target may add (include/ first; examples/ is one for its binaries)
    candidates += [os.path.join(top, target) for top in SOURCE_DIRS]
    for c in candidates:
        c = os.path.normpath(c).replace(os.sep, "/")
        if os.path.isfile(os.path.join(root, c)):
            return c
    return None


def library_of(target):
    for prefix, name in LIBRARIES:
        if target.startswith(prefix):
            return name
    return None


def self_test(root):
    """Runs the checker on a small tree with this repository's tables and four planted
    violations (up, sideways, tests -> examples, a library core may not use); all must be found."""
    import shutil
    import subprocess
    import tempfile
    files = {
        "include/prune/error.hpp": "#include <prune/models/bert/weights.hpp>\n",
        "include/prune/mask.hpp": "#include <nlohmann/json.hpp>\n#include <vector>\n",
        "include/prune/models/bert/weights.hpp": "#include <prune/models/llama/llama.hpp>\n#include <prune/error.hpp>\n",
        "include/prune/models/llama/llama.hpp": "#include <prune/io/json.hpp>\n",
        "include/prune/io/json.hpp": "#include <prune/error.hpp>\n#include <nlohmann/json.hpp>\n",
        "examples/common/cli.hpp": "#include <prune/error.hpp>\n",
        "tests/core/test_x.cpp": '#include "../../examples/common/cli.hpp"\n#include <prune/io/json.hpp>\n',
    }
    expected = ["include/prune/error.hpp:1: includes include/prune/models/bert/weights.hpp",
                "include/prune/mask.hpp:1: includes <nlohmann/json.hpp>",
                "include/prune/models/bert/weights.hpp:1: includes include/prune/models/llama/llama.hpp",
                "tests/core/test_x.cpp:1: includes examples/common/cli.hpp"]
    with tempfile.TemporaryDirectory() as tree:
        os.makedirs(os.path.join(tree, "docs"))
        shutil.copy(os.path.join(root, "docs", "architecture.md"), os.path.join(tree, "docs"))
        for name, text in files.items():
            os.makedirs(os.path.dirname(os.path.join(tree, name)), exist_ok=True)
            open(os.path.join(tree, name), "w").write(text)
        run = subprocess.run([sys.executable, __file__, tree], capture_output=True, text=True)
    found = [e for e in expected if e in run.stdout]
    # The planted tree cannot hold the repository's exceptions: those are reported unused.
    planted = [l for l in run.stdout.splitlines() if l.startswith(("include/", "tests/", "examples/"))]
    ok = run.returncode == 1 and len(found) == len(expected) and len(planted) == len(expected)
    print(run.stdout + run.stderr)
    print("check_includes --self-test: " + ("found the %d planted violations and nothing else" % len(expected)
                                            if ok else "FAILED"))
    sys.exit(0 if ok else 1)


def main():
    if len(sys.argv) < 2:
        fail("usage: check_includes.py REPO_ROOT [--list | --self-test]")
    root = sys.argv[1]
    if "--self-test" in sys.argv:
        self_test(root)
    layers, exceptions = read_tables(root)
    problems, uses = [], {}
    for source in sources(root):
        layer = layer_of(source, layers)
        uses.setdefault(layer, set())
        for number, line in enumerate(open(os.path.join(root, source), encoding="utf-8", errors="replace"), 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            quote, target = m.groups()
            where = source + ":" + str(number) + ": "
            included = resolve(root, source, quote, target)
            if included is None:
                library = library_of(target)
                if library and library not in layers[layer]["libraries"] and "any" not in layers[layer]["libraries"]:
                    problems.append(where + "includes <" + target + "> (" + library + "), which layer " + layer +
                                    " may not use (docs/architecture.md: " +
                                    (", ".join(sorted(layers[layer]["libraries"])) or "the standard library only") + ")")
                if target.startswith("prune/"):
                    problems.append(where + "includes <" + target + ">, which does not exist")
                continue
            to = layer_of(included, layers)
            uses[layer].add(to)
            if to in layers[layer]["may"] or "any" in layers[layer]["may"]:
                continue
            if (source, included) in exceptions:
                exceptions[(source, included)] = True
                continue
            problems.append(where + "includes " + included + ": layer " + layer + " may not include layer " + to +
                            " (docs/architecture.md allows " + ", ".join(sorted(layers[layer]["may"])) + ")")
    for (source, included), used in exceptions.items():
        if not used:
            problems.append("docs/architecture.md lists the exception " + source + " -> " + included +
                            ", which no longer happens: remove it")
    if "--list" in sys.argv:
        for name in layers:
            print(name + " includes: " + ", ".join(sorted(uses.get(name, set()) - {name})))
    for p in problems:
        print(p)
    print("check_includes: " + ("%d problem(s)" % len(problems) if problems else "every include points down or within its layer"))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
