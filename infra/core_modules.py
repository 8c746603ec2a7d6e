#!/usr/bin/env python3
"""The module graph of shared/core: import cycles and oversized files.

Reads every .rs file under shared/core/src, maps each file to its module path
(`lib.rs` is `crate`, `a.rs` and `a/mod.rs` are `crate::a`, `a/b.rs` is
`crate::a::b`), and collects the modules each one refers to: `use` trees
(`crate::`, `super::`, `self::` and child-module paths, with `{...}` groups,
`self`, globs and `as`), and `crate::`, `super::` and `self::` paths in code.
Comments and string literals are skipped. A path is charged to the longest
module file it names; a name a module re-exports (`pub use`) is followed to
where it comes from, so `crate::Issue` counts as an import of the module that
defines `Issue`. A `mod` declaration is not an import (a parent declaring its
child), and an inline module (`mod tests { ... }`) counts as its file.

It prints (a) every import cycle: each strongly connected component of more
than one module, with the edges inside it and where each is first made; and
(b) every module file over MAX_LINES lines. Exit status 1 if there is a
cycle or an oversized file, else 0.

Usage: infra/core_modules.py [--edges] [SRC_DIR]
  --edges   also print every edge of the graph
  SRC_DIR   defaults to shared/core/src beside this script's repository
"""
import os
import re
import sys

MAX_LINES = 600


def strip(text):
    """`text` with comments and the contents of string and char literals
    blanked out (newlines kept, so offsets keep their line numbers)."""
    out = []
    i, n = 0, len(text)
    char_lit = re.compile(r"'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'\n])'")

    def blank(s):
        return re.sub(r"[^\n]", " ", s)

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(text[i:j]))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(text[i:j]))
            i = j
        elif (m := re.match(r'b?r(#*)"', text[i:i + 300])) and (
            i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")
        ):
            end = '"' + m.group(1)
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append(blank(text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(blank(text[i:j]))
            i = j
        elif c == "'" and (m := char_lit.match(text, i)):
            out.append(blank(m.group(0)))
            i = m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


def module_of(rel):
    """The module path of a file, relative to the source directory."""
    parts = rel[:-3].split(os.sep)
    if parts[-1] in ("lib", "main") and len(parts) == 1:
        parts = []
    elif parts[-1] == "mod":
        parts = parts[:-1]
    return tuple(["crate", *parts])


TOKEN = re.compile(r"::|\w+|[{},*]")


def use_paths(tree):
    """The paths a use tree names: `a::{b, c::{self, d}}` gives a::b, a::c, a::c::d."""
    tokens = TOKEN.findall(tree)
    pos = 0

    def parse(prefix):
        nonlocal pos
        path = list(prefix)
        while pos < len(tokens):
            t = tokens[pos]
            if t == "{":
                pos += 1
                out = []
                while pos < len(tokens) and tokens[pos] != "}":
                    out += parse(path)
                    if pos < len(tokens) and tokens[pos] == ",":
                        pos += 1
                pos += 1
                return out
            if t == "*":
                pos += 1
                return [path]
            if t in (",", "}"):
                break
            if t == "::":
                pos += 1
                continue
            if t == "as":
                pos += 2
                break
            if t == "self" and path:
                pos += 1
                continue
            path.append(t)
            pos += 1
        return [path]

    return parse([])


def scan(src):
    files = {}
    for dirpath, _, names in os.walk(src):
        for name in sorted(names):
            if name.endswith(".rs"):
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, src)
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                files[module_of(rel)] = (rel, text)
    return files


def inline_modules(code):
    """(start, end, name) of each inline `mod name { ... }`, outermost first."""
    spans = []
    for m in re.finditer(r"\bmod\s+(\w+)\s*\{", code):
        depth, j = 1, m.end()
        while j < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
        spans.append((m.start(), j, m.group(1)))
    return spans


def analyse(src):
    files = scan(src)
    modules = set(files)
    # Per file: [(scope module path, path segments, line, is_pub_use)].
    refs = {}
    for mod, (rel, text) in files.items():
        code = strip(text)
        spans = inline_modules(code)
        line_at = lambda off: code.count("\n", 0, off) + 1

        def scope(off):
            path = list(mod)
            for start, end, name in spans:
                if start <= off < end:
                    path.append(name)
            return tuple(path)

        found = []
        uses = list(re.finditer(r"(\bpub\s*(?:\([^)]*\)\s*)?)?\buse\s+([^;]+);", code))
        for m in uses:
            for path in use_paths(m.group(2)):
                found.append((scope(m.start()), path, line_at(m.start()), bool(m.group(1)), True))
        rest = code
        for m in reversed(uses):
            rest = rest[: m.start()] + re.sub(r"[^\n]", " ", m.group(0)) + rest[m.end():]
        for m in re.finditer(r"(?<![\w$])\$?((?:crate|super|self)(?:::\w+)+)", rest):
            path = m.group(1).split("::")
            found.append((scope(m.start()), path, line_at(m.start()), False, False))
        refs[mod] = found

    def absolute(scope_path, path, in_use):
        """The absolute path `path` names from `scope_path`, or None (another crate)."""
        head = path[0]
        if head == "crate":
            return ["crate", *path[1:]]
        if head in ("super", "self"):
            base = list(scope_path)
            i = 0
            while i < len(path) and path[i] in ("super", "self"):
                if path[i] == "super":
                    base = base[:-1]
                i += 1
            return base + path[i:]
        if in_use and tuple([*scope_path, head]) in modules:
            return [*scope_path, *path]
        return None

    # Re-exports: module -> name -> absolute path it re-exports.
    reexports = {}
    for mod, found in refs.items():
        for scope_path, path, _, is_pub, in_use in found:
            if is_pub and scope_path == mod and (target := absolute(scope_path, path, in_use)):
                reexports.setdefault(mod, {})[target[-1]] = target

    def owner(target, seen=()):
        """The module file that defines what `target` names."""
        for k in range(len(target), 0, -1):
            prefix = tuple(target[:k])
            if prefix in modules:
                if k < len(target) and target[k] in reexports.get(prefix, {}):
                    via = reexports[prefix][target[k]]
                    if tuple(via) not in seen:
                        return owner(via + target[k + 1:], (*seen, tuple(via)))
                return prefix
        return None

    edges = {m: {} for m in modules}
    for mod, found in refs.items():
        for scope_path, path, line, _, in_use in found:
            target = absolute(scope_path, path, in_use)
            if target is None:
                continue
            to = owner(target)
            if to is not None and to != mod:
                edges[mod].setdefault(to, line)
    return files, edges


def cycles(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(out)


def name(mod):
    return "::".join(mod)


def main(argv):
    show_edges = "--edges" in argv
    args = [a for a in argv if a != "--edges"]
    if args and args[0].startswith("-"):
        print(__doc__.strip())
        return 2
    here = os.path.dirname(os.path.abspath(__file__))
    src = args[0] if args else os.path.join(here, "..", "shared", "core", "src")
    src = os.path.normpath(src)
    files, edges = analyse(src)

    print(f"{os.path.relpath(src)}: {len(files)} module files")
    if show_edges:
        print("edges:")
        for mod in sorted(edges):
            for to, line in sorted(edges[mod].items()):
                print(f"  {name(mod)} -> {name(to)}  ({files[mod][0]}:{line})")

    found = cycles(edges)
    print(f"import cycles: {len(found)}")
    for i, comp in enumerate(found, 1):
        print(f"  cycle {i}: {', '.join(name(m) for m in comp)}")
        for mod in comp:
            for to, line in sorted(edges[mod].items()):
                if to in comp:
                    print(f"    {name(mod)} -> {name(to)}  ({files[mod][0]}:{line})")

    long = sorted(
        ((len(text.splitlines()), rel) for rel, text in files.values() if len(text.splitlines()) > MAX_LINES),
        reverse=True,
    )
    print(f"module files over {MAX_LINES} lines: {len(long)}")
    for lines, rel in long:
        print(f"  {lines:5} {rel}")
    return 1 if found or long else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
