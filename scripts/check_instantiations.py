#!/usr/bin/env python3
"""Checks, before the library is compiled, that every template a header declares is
instantiated by its .cpp for each scalar type.

Templates are compiled once, in their .cpp, for float and double (autograd/instantiate.hpp).
A declaration in NAME.hpp that NAME.cpp does not instantiate would show up much later as a
link error ("undefined reference to flowgrad::softsign<double>") in whatever program calls
it. Here it is a build error naming the header line and the line to add.

    check_instantiations.py [--root DIR] STAMP FILE...   (the library's .hpp and .cpp files;
                                                          meson runs it, names relative to DIR)

It counts, per name, the function templates a header declares (a declaration ends in ';')
and the explicit instantiations in the paired .cpp (`template R name(...);` inside its
FLOWGRAD_FOR_EACH_SCALAR macro, or one per type); a class template whose members the .cpp
defines needs `template class NAME<T>;`. Scalar-type-specific code is left alone.
"""
import os
import re
import sys
from collections import Counter
from pathlib import Path

TEMPLATE_HEAD = re.compile(r"template\s*<\s*(?:class|typename)\s+T\s*(?:=\s*\w+\s*)?>\s*")
SCALARS = ("float", "double")


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def suggestion(decl):
    """The instantiation line for a declaration: no defaults, ScalarArg<T> as T."""
    decl = re.sub(r"\s*=[^,)]*", "", " ".join(decl.split()))
    return "template " + decl.replace("ScalarArg<T>", "T") + ";"


def declarations(header_text):
    """(name, line, instantiation) of each function template declared without a body, and the class
    templates, as {name: line}."""
    functions, classes = [], {}
    for m in TEMPLATE_HEAD.finditer(header_text):
        line = header_text.count("\n", 0, m.start()) + 1
        rest = header_text[m.end():]
        end = min((i for i in (rest.find(";"), rest.find("{")) if i >= 0), default=-1)
        if end < 0:
            continue
        decl = rest[:end]
        cls = re.match(r"(?:class|struct)\s+(\w+)", decl)
        if cls:
            classes[cls.group(1)] = line
        elif rest[end] == ";" and "(" in decl:
            name = re.search(r"(operator\s*\S+?|\w+)\s*\($", decl[:decl.index("(") + 1])
            if name and "friend" not in decl and " = " not in decl.split("(")[0]:
                functions.append((re.sub(r"\s+", "", name.group(1)), line, suggestion(decl)))
    return functions, classes


def instantiations(source_text):
    """Counter of explicitly instantiated function names, per scalar type, and the set of
    instantiated class templates."""
    macros = {m.group(1): m.group(2) for m in re.finditer(
        r"#define\s+(\w+)\(T\)((?:[^\n]*\\\n)*[^\n]*)", source_text)}
    bodies = {t: [] for t in SCALARS}
    for name, body in macros.items():
        if re.search(r"FLOWGRAD_FOR_EACH_SCALAR\(\s*%s\s*\)" % name, source_text):
            for t in SCALARS:
                bodies[t].append(re.sub(r"\bT\b", t, body.replace("\\\n", " ")))
    outside = re.sub(r"#define[^\n]*(?:\\\n[^\n]*)*", "", source_text)
    for t in SCALARS:
        bodies[t].append(outside)
    functions = {t: Counter() for t in SCALARS}
    classes = {t: set() for t in SCALARS}
    for t in SCALARS:
        text = " ".join(bodies[t])
        for m in re.finditer(r"\btemplate\s+(?!<)([^;{]*?)\b(operator\s*[^\s(]+|\w+)\s*(?:<[^;()<>]*>)?\s*\(", text):
            head = m.group(1)
            if re.match(r"(class|struct)\b", head):
                continue
            functions[t][re.sub(r"\s+", "", m.group(2))] += 1
        # Explicit specializations (gemm<float> calls cblas_sgemm) count as well.
        for m in re.finditer(r"\btemplate\s*<\s*>[^;{]*?\b(\w+)\s*<\s*%s\s*>\s*\(" % t, text):
            functions[t][m.group(1)] += 1
        for m in re.finditer(r"\btemplate\s+(?:class|struct)\s+(?:\w+::)*(\w+)\s*<\s*%s\s*>" % t, text):
            classes[t].add(m.group(1))
    return functions, classes


def check_pair(header, source):
    header_text = strip_comments(header.read_text())
    source_text = strip_comments(source.read_text())
    declared, classes = declarations(header_text)
    made, made_classes = instantiations(source_text)
    problems = []
    if "FLOWGRAD_FOR_EACH_SCALAR" in source_text:
        where = f"the macro at the end of {source} that FLOWGRAD_FOR_EACH_SCALAR expands"
    else:
        where = (f"a macro at the end of {source}, `#define MY_FAMILY(T) ...` then "
                 f"`FLOWGRAD_FOR_EACH_SCALAR(MY_FAMILY)` with autograd/instantiate.hpp included "
                 f"(as autograd/elementwise.cpp ends)")
    wanted = Counter(name for name, _, _ in declared)
    for name, line, line_to_add in declared:
        missing = [t for t in SCALARS if made[t][name] < wanted[name]]
        if missing and wanted.pop(name, None):
            problems.append(
                f"{header}:{line}: {name} is declared here but {source} does not instantiate it for "
                f"{' and '.join(missing)}; add `{line_to_add}` to {where} (otherwise a program calling {name} fails to "
                f"link with \"undefined reference\")")
    for name, line in classes.items():
        missing = [t for t in SCALARS if name not in made_classes[t]]
        if missing and re.search(r"\b%s<T>::" % name, source_text):
            problems.append(
                f"{header}:{line}: class template {name} has members defined in {source}, which does "
                f"not instantiate it for {' and '.join(missing)}; add `template class {name}<T>;` to "
                f"{where}")
    return problems


def main():
    args = sys.argv[1:]
    root = None
    if args[:1] == ["--root"]:
        root, args = args[1], args[2:]
    stamp = os.path.abspath(args[0])
    files = [Path(os.path.relpath(f, root) if root else f) for f in args[1:]]
    if root:
        os.chdir(root)  # so messages name files as the source tree does
    by_stem = {}
    for f in files:
        by_stem.setdefault(f.with_suffix(""), {})[f.suffix] = f
    problems = []
    for pair in by_stem.values():
        if ".hpp" in pair and ".cpp" in pair:
            problems += check_pair(pair[".hpp"], pair[".cpp"])
    if problems:
        print("\n".join(["missing explicit instantiation:"] + problems), file=sys.stderr)
        return 1
    Path(stamp).write_text("// generated by scripts/check_instantiations.py: every declared template is instantiated\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
