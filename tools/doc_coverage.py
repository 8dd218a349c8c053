#!/usr/bin/env python3
"""Lists public declarations of the library modules that have no doc comment.

A declaration counts as documented when a `///` line (or the end of a `/** */` block) sits
right above it (attributes between are skipped), or when it implements a requirement that its
type's protocol documents (DocC shows the protocol's documentation there). Generated code and
data tables are skipped, and so are the command-line tool's modules. Exit status 1 when any
declaration is undocumented, so CI keeps the API documented.

    python3 tools/doc_coverage.py [--list]
"""
import collections
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "Sources"
SKIP_FILES = {"onnx.pb.swift", "ImageNetClasses.swift"}
SKIP_MODULES = {"LoupeCLI", "loupe", "KernelEmbedder"}
TYPE = re.compile(r"\s*(?:@[\w()]+\s+)*(?:(?:public|private|fileprivate|internal|final|open)\s+)*"
                  r"(struct|class|enum|extension|protocol|actor)\s+([\w.]+)(?:<[^>]*>)?\s*(?::\s*([^{]*))?")
PUBLIC = re.compile(r"\s*(?:@[\w()]+\s+)*(?:public|open)\s")
MEMBER = re.compile(r"\b(func|var|let|case|init|subscript|typealias|associatedtype)\b\s*([A-Za-z_]\w*)?")


def files():
    for path in sorted(ROOT.rglob("*.swift")):
        module = path.relative_to(ROOT).parts[0]
        if path.name not in SKIP_FILES and module not in SKIP_MODULES:
            yield path, path.read_text().split("\n")


def documented(lines, i):
    j = i - 1
    while j >= 0 and lines[j].lstrip().startswith("@"):
        j -= 1
    return j >= 0 and (lines[j].strip().startswith("///") or lines[j].strip().endswith("*/"))


def member_name(line):
    m = MEMBER.search(line)
    return (m.group(2) or m.group(1)) if m else None


def indent(line):
    return len(line) - len(line.lstrip())


def scan():
    """(requirements documented per protocol, conformances per type, every file's lines)."""
    requirements, conformances, sources = collections.defaultdict(set), collections.defaultdict(set), []
    for path, lines in files():
        sources.append((path, lines))
        protocol = None
        for i, line in enumerate(lines):
            m = TYPE.match(line)
            if m:
                kind, name, inherits = m.groups()
                if inherits:
                    conformances[name].update(p.strip().split("<")[0].split()[0] for p in inherits.split(",") if p.strip())
                if kind == "protocol":
                    protocol = (name, indent(line))
                    continue
            if protocol:
                if line.strip() == "}" and indent(line) == protocol[1]:
                    protocol = None
                elif re.match(r"\s*(?:static\s+|mutating\s+)?(?:func|var|init)\b", line) and documented(lines, i):
                    requirements[protocol[0]].add(member_name(line))
    return requirements, conformances, sources


def inherits_doc(type_name, member, requirements, conformances, seen=None):
    seen = seen if seen is not None else set()
    for protocol in conformances.get(type_name, ()):
        if protocol not in seen:
            seen.add(protocol)
            if member in requirements.get(protocol, ()) or inherits_doc(protocol, member, requirements, conformances, seen):
                return True
    return False


def main():
    requirements, conformances, sources = scan()
    total, missing = 0, []
    for path, lines in sources:
        enclosing = []  # (indent, type name) of the open type declarations
        for i, line in enumerate(lines):
            if line.strip() == "}" and enclosing and indent(line) == enclosing[-1][0]:
                enclosing.pop()
                continue
            m = TYPE.match(line)
            if PUBLIC.match(line) and not re.match(r"\s*public\s+import\b", line) and not (m and m.group(1) == "extension"):
                total += 1
                if not documented(lines, i):
                    name = member_name(line) if not m else None
                    owner = enclosing[-1][1] if enclosing else None
                    if not (owner and name and inherits_doc(owner, name, requirements, conformances)):
                        missing.append(f"{path.relative_to(ROOT.parent)}:{i + 1}: {line.strip()[:100]}")
            if m and line.rstrip().endswith("{"):
                enclosing.append((indent(line), m.group(2)))
    print(f"doc coverage: {total - len(missing)} of {total} public declarations documented")
    if missing:
        print("\n".join(missing if "--list" in sys.argv or len(missing) <= 40 else missing[:40] + [f"... {len(missing) - 40} more (--list)"]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
