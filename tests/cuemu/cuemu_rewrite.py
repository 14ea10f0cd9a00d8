#!/usr/bin/env python3
"""cuemu_rewrite.py: turns a CUDA source into the host C++ the emulated device
compiles (with tests/cuemu/cuemu_device.h force-included). Two mechanical
rewrites, each keeping every line where it was, and a #line directive, so
that compiler errors and sanitizer reports name kernels/X.cu:LINE:

  kernel<<<grid, block[, smem[, stream]]>>>(args)  ->  CUEMU_LAUNCH(kernel, grid, block...)(args)
  __shared__ T name[dims];                          ->  CUEMU_SHARED(T, name, [dims]);
  extern __shared__ T name[];                       ->  CUEMU_EXTERN_SHARED(T, name);

usage: cuemu_rewrite.py SOURCE.cu OUTPUT.cpp
"""
import re
import sys

LAUNCH = re.compile(r"([A-Za-z_][\w:]*(?:\s*<[^<>;]*>)?)\s*<<<")
EXTERN_SHARED = re.compile(r"extern\s+__shared__\s+([A-Za-z_][\w\s:<>,*]*?)\s*(\w+)\s*\[\s*\]\s*;")
SHARED = re.compile(r"__shared__\s+([A-Za-z_][\w\s:<>,*]*?)\s*\b(\w+)\s*((?:\[[^\]\n]+\]\s*)*);")


def rewrite(text, path):
    text = EXTERN_SHARED.sub(lambda m: "CUEMU_EXTERN_SHARED(%s, %s);" % (m.group(1).strip(), m.group(2)), text)
    text = SHARED.sub(lambda m: "CUEMU_SHARED(%s, %s, %s);" % (m.group(1).strip(), m.group(2),
                                                              re.sub(r"\s+", "", m.group(3))), text)
    out = []
    pos = 0
    for m in LAUNCH.finditer(text):
        end = text.find(">>>", m.end())
        if end < 0:
            sys.exit("%s: a <<< without >>>" % path)
        config = text[m.end():end]
        # the launch configuration keeps its newlines, so the lines below stay put
        out.append(text[pos:m.start()])
        out.append("CUEMU_LAUNCH(%s, %s)" % (m.group(1), config))
        pos = end + 3
    out.append(text[pos:])
    result = "".join(out)
    if "<<<" in result or ">>>" in result:
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
    import os
    os.replace(output + ".tmp", output)


if __name__ == "__main__":
    main()
