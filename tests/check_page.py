#!/usr/bin/env python3
"""check_page.py: validates an HTML report page: every <img src> (and linked
.png) exists beside it and is a valid PNG (signature, chunk CRCs, IHDR, IDAT
inflates to exactly the size IHDR implies, IEND), and nothing points at the
network. Prints one line per problem and exits 1 if any; else prints the number
of images checked."""
import re
import struct
import sys
import zlib
from pathlib import Path

CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def png_problem(path):
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return "bad signature"
    pos, idat, ihdr, ended = 8, b"", None, False
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length or pos + 12 + length > len(data):
            return "truncated chunk"
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            return f"CRC mismatch in {kind!r}"
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            ended = True
            break
        pos += 12 + length
    if ihdr is None or not ended:
        return "missing IHDR or IEND"
    width, height, depth, color, _, _, interlace = ihdr
    if width == 0 or height == 0 or interlace != 0 or color not in CHANNELS:
        return f"unexpected IHDR {ihdr}"
    raw = zlib.decompress(idat)
    row = (width * CHANNELS[color] * depth + 7) // 8
    if len(raw) != height * (1 + row):
        return f"IDAT holds {len(raw)} bytes, IHDR implies {height * (1 + row)}"
    return None


def main():
    page = Path(sys.argv[1])
    html = page.read_text()
    problems = []
    if re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", html):
        problems.append("page links to the network")
    refs = set(re.findall(r"""<img[^>]*\ssrc="([^"]+)\"""", html))
    refs |= set(re.findall(r"""href="([^"]+\.png)\"""", html))
    if not refs:
        problems.append("page references no image")
    for ref in sorted(refs):
        path = page.parent / ref
        if not path.is_file():
            problems.append(f"{ref}: missing")
            continue
        why = png_problem(path)
        if why:
            problems.append(f"{ref}: {why}")
    for p in problems:
        print(p)
    if not problems:
        print(f"{len(refs)} images checked")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
