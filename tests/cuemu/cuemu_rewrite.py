#!/usr/bin/env python3
"""cuemu_rewrite.py: turns a CUDA source into the host C++ the emulated device
compiles (with tests/cuemu/cuemu_device.h force-included). Mechanical
rewrites, each keeping every line where it was, under a #line directive, so
that compiler errors and sanitizer reports name kernels/X.cu:LINE:

  kernel<<<grid, block[, smem[, stream]]>>>(args)  ->  CUEMU_LAUNCH(kernel, grid, block...)(args)
  [static] __shared__ [__align__(n)] T name[dims];  ->  CUEMU_SHARED(T, name, [dims]);
  extern __shared__ T name[];                       ->  CUEMU_EXTERN_SHARED(T, name);

Comments and string literals are left alone. What it does not understand (two
declarators in one __shared__ declaration, a launch of a template kernel whose
arguments are deduced) fails to compile, loudly.

usage: cuemu_rewrite.py SOURCE.cu OUTPUT.cpp
"""
import os
import re
import sys

TYPE = r"([A-Za-z_][\w \t:<>,*]*?)"   # no newline: a match never spans lines
LAUNCH = re.compile(r"([A-Za-z_][\w:]*(?:[ \t]*<[^<>;]*(?:<[^<>;]*>[^<>;]*)*>)?)[ \t]*<<<")
EXTERN_SHARED = re.compile(r"extern[ \t]+__shared__[ \t]+(?:__align__\(\s*\d+\s*\)[ \t]+)?" + TYPE +
                           r"[ \t]*\b(\w+)[ \t]*\[[ \t]*\][ \t]*;")
SHARED = re.compile(r"(?:static[ \t]+)?__shared__[ \t]+(?:__align__\(\s*\d+\s*\)[ \t]+)?" + TYPE +
                    r"[ \t]*\b(\w+)[ \t]*((?:\[[^\]\n]+\][ \t]*)*);")


def mask_comments_and_strings(text):
    """The text with comments and string/char literals blanked (newlines kept),
    so the patterns only see code; positions are unchanged."""
    out = list(text)
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
        else:
            i += 1
            continue
        for k in range(i, j):
            if out[k] != "\n":
                out[k] = " "
        i = j
    return "".join(out)


def rewrite(text, path):
    code = mask_comments_and_strings(text)
    edits = []   # (start, end, replacement) on the original text

    def add(m, replacement):
        edits.append((m.start(), m.end(), replacement))

    for m in EXTERN_SHARED.finditer(code):
        add(m, "CUEMU_EXTERN_SHARED(%s, %s);" % (text[m.start(1):m.end(1)].strip(), m.group(2)))
    taken = [(a, b) for a, b, _ in edits]
    for m in SHARED.finditer(code):
        if any(a <= m.start() < b for a, b in taken):
            continue
        dims = re.sub(r"\s+", "", text[m.start(3):m.end(3)])
        add(m, "CUEMU_SHARED(%s, %s, %s);" % (text[m.start(1):m.end(1)].strip(), m.group(2), dims))
    for m in LAUNCH.finditer(code):
        end = code.find(">>>", m.end())
        if end < 0:
            sys.exit("%s: a <<< without >>>" % path)
        name = text[m.start(1):m.end(1)]
        if "," in name:
            name = "(" + name + ")"   # a template argument list: keep it one macro argument
        # the launch configuration keeps its newlines, so the lines below stay put
        edits.append((m.start(), m.end(), "CUEMU_LAUNCH(%s, " % name))
        edits.append((end, end + 3, ")"))
    edits.sort()
    out, pos = [], 0
    for a, b, r in edits:
        if a < pos:
            sys.exit("%s: overlapping rewrites near offset %d" % (path, a))
        out.append(text[pos:a])
        out.append(r)
        pos = b
    out.append(text[pos:])
    result = "".join(out)
    if "<<<" in mask_comments_and_strings(result) or ">>>" in mask_comments_and_strings(result):
        sys.exit("%s: a launch the rewrite did not understand" % path)
    return '#line 1 "%s"\n' % path + result


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    source, output = sys.argv[1], sys.argv[2]
    with open(source) as f:
        text = f.read()
    result = rewrite(text, source)
    with open(output + ".tmp", "w") as f:
        f.write(result)
    os.replace(output + ".tmp", output)


if __name__ == "__main__":
    main()
