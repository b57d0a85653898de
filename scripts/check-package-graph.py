#!/usr/bin/env python3
"""The package graph must say what the code does: for every target in Package.swift (sources,
executables and tests), each declared dependency is imported somewhere in the target, and each
imported module is declared (or is a system module). Fails naming the target and the module.

    python3 scripts/check-package-graph.py [PACKAGE_ROOT]

Run by scripts/test.sh before the tests, and by Tests/DMD2CoreTests/PackageGraphTests.swift.
"""
import os
import re
import sys

# Modules of the toolchain and the OS: importable without a declared dependency.
SYSTEM_MODULES = {
    "Foundation", "FoundationEssentials", "FoundationNetworking", "FoundationXML", "Dispatch", "Synchronization",
    "Glibc", "Musl", "Darwin", "XCTest", "Testing", "_Concurrency", "Swift", "os", "CoreFoundation",
}

# Modules a declared product brings with it (its own system-library target, not a product we can
# name): importable only by a target that declares that product. ZIPFoundation's zlib module
# gives DMD2Data the CRC-32 and inflate it verifies zip members with.
COMES_WITH = {"CZlib": "ZIPFoundation"}

TARGET_KINDS = ("target", "executableTarget", "testTarget", "systemLibrary")


def balanced(text, start, open_char, close_char):
    """The text from `start` (at open_char) to its matching close_char, inclusive."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == open_char:
            depth += 1
        elif text[i] == close_char:
            depth -= 1
            if depth == 0:
                return text[start:i + 1]
    raise ValueError(f"unbalanced {open_char} at offset {start}")


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def read_targets(package_swift):
    """[(kind, name, path or None, [dependency module names])] from Package.swift."""
    text = strip_comments(open(package_swift, encoding="utf-8").read())
    # `let name: [...] = [...]` arrays of dependencies are not used here; targets list them inline.
    targets = []
    for m in re.finditer(r"\.(%s)\(" % "|".join(TARGET_KINDS), text):
        kind = m.group(1)
        body = balanced(text, m.end() - 1, "(", ")")
        name = re.search(r'name:\s*"([^"]+)"', body).group(1)
        path = re.search(r'path:\s*"([^"]+)"', body)
        deps = []
        d = re.search(r"dependencies:\s*\[", body)
        if d:
            block = balanced(body, d.end() - 1, "[", "]")[1:-1]
            for p in re.finditer(r'\.product\(\s*name:\s*"([^"]+)"[^)]*\)', block):
                deps.append(p.group(1))
            block = re.sub(r"\.product\([^)]*\)", "", block)
            block = re.sub(r"\.(?:target|byName)\(\s*name:\s*(\"[^\"]+\")[^)]*\)", r"\1", block)
            deps += re.findall(r'"([^"]+)"', block)
        targets.append((kind, name, path.group(1) if path else None, deps))
    return targets


IMPORT = re.compile(r"^\s*(?:@[\w()]+\s+)*import\s+(?:(?:struct|class|enum|protocol|func|var|let|typealias)\s+)?([A-Za-z_]\w*)", re.M)


def imports_of(folder):
    """{module: first file importing it} over the .swift files under folder."""
    found = {}
    for root, _, files in os.walk(folder):
        for f in sorted(files):
            if not f.endswith(".swift"):
                continue
            path = os.path.join(root, f)
            text = strip_comments(open(path, encoding="utf-8").read())
            for m in IMPORT.finditer(text):
                found.setdefault(m.group(1), path)
    return found


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
    targets = read_targets(os.path.join(root, "Package.swift"))
    problems = []
    checked = 0
    for kind, name, path, deps in targets:
        if kind == "systemLibrary":
            continue
        folder = os.path.join(root, path or ("Tests/" + name if kind == "testTarget" else "Sources/" + name))
        if not os.path.isdir(folder):
            problems.append(f"{name}: source folder {os.path.relpath(folder, root)} not found")
            continue
        imported = imports_of(folder)
        declared = set(deps)
        for module in sorted(declared - set(imported)):
            problems.append(f"{name}: declares dependency {module} but never imports it")
        brought = {m for m, product in COMES_WITH.items() if product in declared}
        for module in sorted(set(imported) - declared - SYSTEM_MODULES - brought - {name}):
            problems.append(f"{name}: imports {module} ({os.path.relpath(imported[module], root)}) without declaring it in Package.swift")
        checked += 1
    if problems:
        print("package graph check FAILED:", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        sys.exit(1)
    print(f"package graph check: {checked} targets, every declared dependency imported and every import declared")


if __name__ == "__main__":
    main()
