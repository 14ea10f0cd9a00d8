#!/usr/bin/env python3
"""make_image_data.py OUT_DIR: small generated image sets in every format
data.dataset "files" reads (standard library only: struct, zlib, json), for
tests/cli_files.sh. Class k of K = 4 is a filled rectangle of colour k at a
jittered place on a dark background, so a VAE has something to learn.

  rgb_folder/{circle,square,...}/*.png    RGB 16 x 16, class sub-folders
  rgb_flat/*.png                          RGB 16 x 16, no labels
  grey_npy.npy, grey_npy_labels.npy       uint8 (N, 12, 20): non-square grey, int64 labels
  rgb_nhwc_f32.npy                        float32 (N, 16, 16, 3) in [0, 1]
  rgb_nchw.npy                            uint8 (N, 3, 16, 16)
  rgb.safetensors                         "images" U8 (N, 16, 16, 3), "labels" I64
  rgb_nhwc.idx.gz                         IDX (N, 16, 16, 3), gzip
and malformed ones under bad/.
"""
import json
import os
import random
import struct
import sys
import zlib

N, K, H, W = 64, 4, 16, 16
COLOURS = [(230, 40, 40), (40, 200, 60), (50, 90, 240), (240, 220, 30)]
NAMES = ["cat_red", "dog_green", "eel_blue", "fox_yellow"]


def image(k, rng, h=H, w=W, channels=3):
    """(h, w, channels) bytes of class k."""
    top, left = rng.randrange(0, h // 2), rng.randrange(0, w // 2)
    px = bytearray()
    for y in range(h):
        for x in range(w):
            inside = top <= y < top + h // 2 and left <= x < left + w // 2
            c = COLOURS[k] if inside else (15, 15, 25)
            px += bytes(c) if channels == 3 else bytes([sum(c) // 3])
    return bytes(px)


def write_png(path, w, h, channels, pixels):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    stride = w * channels
    raw = b"".join(b"\x00" + pixels[y * stride:(y + 1) * stride] for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2 if channels == 3 else 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def write_npy(path, descr, shape, payload, version=1, extra="", header=None, minor=0):
    if header is None:   # (a given header: a malformed one)
        header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), %s}" % (
            descr, ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else ""), extra)
    prefix = 10 if version == 1 else 12
    header += " " * ((64 - (prefix + len(header) + 1) % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY" + bytes([version, minor]))
        f.write(struct.pack("<H" if version == 1 else "<I", len(header)) + header.encode("latin1"))
        f.write(payload)


def write_safetensors(path, tensors):
    """tensors: [(name, dtype, shape, bytes)]"""
    header, offset, data = {}, 0, b""
    for name, dtype, shape, payload in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(payload)]}
        offset += len(payload)
        data += payload
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def write_idx(path, shape, payload):
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 8, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape) + payload)


def main():
    out = sys.argv[1]
    rng = random.Random(7)
    labels = [i % K for i in range(N)]
    rgb = [image(k, rng) for k in labels]   # (H, W, 3) each
    for sub in ("rgb_folder", "rgb_flat", "bad", "bad/mixed", "bad/mixed/a", "bad/mixed/b", "bad/empty_class",
                "bad/empty_class/a", "bad/empty_class/b", "bad/loose", "bad/loose/cls"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    for k, name in enumerate(NAMES):
        os.makedirs(os.path.join(out, "rgb_folder", name), exist_ok=True)
    for i, (k, px) in enumerate(zip(labels, rgb)):
        write_png(os.path.join(out, "rgb_folder", NAMES[k], "img%03d.png" % i), W, H, 3, px)
        write_png(os.path.join(out, "rgb_flat", "img%03d.png" % i), W, H, 3, px)
    # grey, non-square (12 x 20), uint8 (N, H, W) + int64 labels
    grey = b"".join(image(k, rng, 12, 20, 1) for k in labels)
    write_npy(os.path.join(out, "grey_npy.npy"), "|u1", (N, 12, 20), grey)
    write_npy(os.path.join(out, "grey_npy_labels.npy"), "<i8", (N,), b"".join(struct.pack("<q", k) for k in labels))
    nhwc = b"".join(rgb)
    write_npy(os.path.join(out, "rgb_nhwc_f32.npy"), "<f4", (N, H, W, 3),
              b"".join(struct.pack("<f", v / 255.0) for v in nhwc), version=2)
    nchw = bytearray(N * 3 * H * W)
    for i in range(N):
        for y in range(H):
            for x in range(W):
                for c in range(3):
                    nchw[((i * 3 + c) * H + y) * W + x] = rgb[i][(y * W + x) * 3 + c]
    write_npy(os.path.join(out, "rgb_nchw.npy"), "|u1", (N, 3, H, W), bytes(nchw))
    write_safetensors(os.path.join(out, "rgb.safetensors"),
                      [("images", "U8", (N, H, W, 3), nhwc),
                       ("labels", "I64", (N,), b"".join(struct.pack("<q", k) for k in labels))])
    idx = os.path.join(out, "rgb_nhwc.idx")
    write_idx(idx, (N, H, W, 3), nhwc)
    with open(idx, "rb") as f, open(idx + ".gz", "wb") as g:
        import gzip
        g.write(gzip.compress(f.read()))
    os.remove(idx)

    # malformed
    bad = os.path.join(out, "bad")
    with open(os.path.join(bad, "magic.npy"), "wb") as f:
        f.write(b"NOTNUMPY" + bytes(100))
    write_npy(os.path.join(bad, "truncated.npy"), "|u1", (N, H, W), nhwc[:N * H * W - 5])
    write_npy(os.path.join(bad, "float64.npy"), "<f8", (2, H, W), bytes(2 * H * W * 8))
    write_npy(os.path.join(bad, "range.npy"), "<f4", (1, 2, 2), struct.pack("<4f", 0.5, 0.25, 1.5, 0.0))
    # just above 1: float32's next value after 1, said with its digits (%g printed "1")
    write_npy(os.path.join(bad, "above_one.npy"), "<f4", (1, 2, 2), struct.pack("<4f", 0.5, 1.0000001, 0.0, 0.0))
    write_npy(os.path.join(bad, "ambiguous.npy"), "|u1", (2, 3, 4, 3), bytes(2 * 3 * 4 * 3))
    write_npy(os.path.join(bad, "labels_short.npy"), "<i8", (N - 1,), bytes(8 * (N - 1)))
    write_safetensors(os.path.join(bad, "no_images.safetensors"), [("labels", "U8", (2,), bytes(2))])
    write_safetensors(os.path.join(bad, "misspelt_labels.safetensors"),
                      [("images", "U8", (2, 4, 4), bytes(32)), ("label", "U8", (2,), bytes(2))])
    write_safetensors(os.path.join(bad, "f64.safetensors"), [("images", "F64", (1, 2, 2), bytes(32))])
    write_png(os.path.join(bad, "mixed", "a", "x.png"), W, H, 3, rgb[0])
    write_png(os.path.join(bad, "mixed", "b", "y.png"), 8, 8, 3, image(1, rng, 8, 8))
    write_png(os.path.join(bad, "empty_class", "a", "x.png"), W, H, 3, rgb[0])
    write_npy(os.path.join(bad, "labels_int8.npy"), "|i1", (N,), bytes([1] * (N - 1)) + bytes([255]))   # -1 last
    # a uint64 label past int64's range: said as the file holds it
    write_npy(os.path.join(bad, "labels_u64_big.npy"), "<u8", (N,),
              struct.pack("<Q", 1) * (N - 1) + struct.pack("<Q", 2**63 + 5))
    write_npy(os.path.join(bad, "bool_images.npy"), "|b1", (2, 4, 4), bytes(32))
    # a size of 2^63 (past int64: strtoll stops at 2^63 - 1, and 2 x that passed the overflow check)
    write_npy(os.path.join(bad, "shape_2p63.npy"), "|u1", (2, 2**63, 1), b"")
    write_npy(os.path.join(bad, "extra_key.npy"), "|u1", (2, 4, 4), bytes(32), extra="'x': 1, ")
    write_npy(os.path.join(bad, "version_1_1.npy"), "|u1", (2, 4, 4), bytes(32), minor=1)   # NumPy: 1.0, 2.0, 3.0
    # headers NumPy refuses: garbage after the dict's last entry, entries without commas,
    # fortran_order 0, a 1-tuple without its comma (the number 2 in Python), a size 02 (a syntax error)
    for name, header in [("garbage_header", "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 4, 4), ]]]"),
                         ("no_commas", "{'descr': '|u1' 'fortran_order': False 'shape': (2, 4, 4)}"),
                         ("fortran_zero", "{'descr': '|u1', 'fortran_order': 0, 'shape': (2, 4, 4), }"),
                         ("one_tuple", "{'descr': '|u1', 'fortran_order': False, 'shape': (32), }"),
                         ("leading_zero", "{'descr': '|u1', 'fortran_order': False, 'shape': (02, 4, 4), }"),
                         # np.load reads these two (a Python literal; its filter drops Python 2's L),
                         # numpy.save never writes them: refused, saying how to save the array
                         ("double_quotes", '{"descr": "|u1", "fortran_order": False, "shape": (2, 4, 4), }'),
                         ("long_suffix", "{'descr': '|u1', 'fortran_order': False, 'shape': (2L, 4L, 4L), }"),
                         # well formed (NumPy writes it for a structured dtype) but not a dtype cuvae reads
                         ("structured", "{'descr': [('a', '|u1'), ('b', '|u1')], 'fortran_order': False, "
                                        "'shape': (2, 4, 4), }")]:
        write_npy(os.path.join(bad, name + ".npy"), "|u1", (), bytes(32), header=header)
    write_png(os.path.join(bad, "loose", "x.png"), W, H, 3, rgb[0])
    write_png(os.path.join(bad, "loose", "cls", "y.png"), W, H, 3, rgb[1])
    with open(os.path.join(bad, "empty_class", "b", "notes.txt"), "w") as f:
        f.write("not an image\n")


if __name__ == "__main__":
    main()
