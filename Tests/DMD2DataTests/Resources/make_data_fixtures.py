#!/usr/bin/env python3
"""Write the small data files DMD2DataTests reads, with tools independent of the Swift code.

PNGs come from a stdlib-only PNG encoder below (zlib + struct, not libpng), .npz files from
numpy's own `np.savez` / `np.savez_compressed` / `np.lib.format.write_array`, zips from Python's
`zipfile`. Pixel values follow closed-form patterns that the Swift tests recompute:

    png_value(x, y, c)          = (x*40 + y*9 + c*70) % 256            (8-bit PNGs)
    npz_value(n, c, y, x)       = (n*50 + c*80 + y*8 + x*3) % 256      (.npz rows, planar)
    edm_value(k, x, y, c)       = (k*30 + x*20 + y*5 + c*60) % 256     (EDM / class-folder images)
    idx_value(i, y, x)          = (i*13 + y*5 + x*3) % 256             (Fashion-MNIST-like idx files)

Run from anywhere:  python3 Tests/DMD2DataTests/Resources/make_data_fixtures.py
Needs numpy. Output is deterministic (fixed zip timestamps), so re-running changes nothing.
"""
import json
import os
import shutil
import struct
import zipfile
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ZIP_DATE = (2024, 1, 1, 0, 0, 0)


# ---------------------------------------------------------------- PNG (stdlib only)

def png_bytes(width, height, color_type, bit_depth, rows, palette=None):
    """Encode rows (lists of sample values, already laid out per pixel) as a PNG.

    color_type: 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA. Filter type 0 on every row.
    """
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    raw = bytearray()
    for row in rows:
        raw.append(0)
        if bit_depth == 16:
            for v in row:
                raw += struct.pack(">H", v)
        else:
            raw += bytes(row)
    out = b"\x89PNG\r\n\x1a\n"
    out += chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0))
    if palette is not None:
        out += chunk(b"PLTE", bytes(v for rgb in palette for v in rgb))
    out += chunk(b"IDAT", zlib.compress(bytes(raw), 9))
    out += chunk(b"IEND", b"")
    return out


def png_value(x, y, c):
    return (x * 40 + y * 9 + c * 70) % 256


def pattern_png(width, height, channels, color_type):
    rows = [[png_value(x, y, c) for x in range(width) for c in range(channels)] for y in range(height)]
    return png_bytes(width, height, color_type, 8, rows)


def edm_value(k, x, y, c):
    return (k * 30 + x * 20 + y * 5 + c * 60) % 256


def edm_png(k, size=8, channels=3):
    rows = [[edm_value(k, x, y, c) for x in range(size) for c in range(channels)] for y in range(size)]
    return png_bytes(size, size, 2 if channels == 3 else 0, 8, rows)


def write(path, data):
    full = os.path.join(HERE, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        f.write(data)


def write_zip(path, members, compression=zipfile.ZIP_STORED):
    full = os.path.join(HERE, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with zipfile.ZipFile(full, "w", compression) as z:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = compression
            info.external_attr = 0o644 << 16
            z.writestr(info, data)


def make_pngs():
    write("png/grey8.png", pattern_png(5, 3, 1, 0))
    write("png/ga8.png", pattern_png(4, 4, 2, 4))
    write("png/rgb8.png", pattern_png(6, 4, 3, 2))
    write("png/rgba8.png", pattern_png(4, 3, 4, 6))
    # Palette: 4 entries, pixel (x, y) uses entry (x + y) % 4.
    palette = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (10, 20, 30)]
    write("png/palette.png", png_bytes(4, 2, 3, 8, [[(x + y) % 4 for x in range(4)] for y in range(2)], palette))
    # 16-bit RGB: sample (x, y, c) = png_value*257 + 200 (so the low byte matters).
    rows16 = [[png_value(x, y, c) * 257 + (200 if png_value(x, y, c) < 255 else 0) for x in range(3) for c in range(3)]
              for y in range(2)]
    write("png/rgb16.png", png_bytes(3, 2, 2, 16, rows16))
    rgb = pattern_png(6, 4, 3, 2)
    write("png/truncated.png", rgb[: len(rgb) // 2])
    write("png/notpng.png", b"this is not a PNG file\n")


# ---------------------------------------------------------------- downsampled-ImageNet .npz

def npz_rows(n_rows, res):
    n, c, y, x = np.meshgrid(np.arange(n_rows), np.arange(3), np.arange(res), np.arange(res), indexing="ij")
    return ((n * 50 + c * 80 + y * 8 + x * 3) % 256).astype(np.uint8).reshape(n_rows, 3 * res * res)


def npz(path, compressed=False, **arrays):
    full = os.path.join(HERE, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    (np.savez_compressed if compressed else np.savez)(full, **arrays)


def npz_manual(path, version=(1, 0), fortran=False, **arrays):
    """An .npz assembled by hand with zipfile, to control the .npy version and layout."""
    import io
    members = []
    for name, arr in arrays.items():
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.asfortranarray(arr) if fortran else arr, version=version)
        members.append((name + ".npy", buf.getvalue()))
    write_zip(path, members)


def make_npz():
    labels5 = np.array([3, 1, 4, 1, 5], dtype=np.int64)            # 1-based
    npz("npz/tiny8.npz", data=npz_rows(5, 8), labels=labels5)
    npz("npz/tiny8_compressed.npz", compressed=True, data=npz_rows(5, 8), labels=labels5.astype(np.int32),
        mean=np.zeros(192, dtype=np.float64))
    npz("npz/second8.npz", data=npz_rows(3, 8)[::-1].copy(), labels=np.array([2, 2, 7], dtype=np.int64))
    npz("npz/imagenet64.npz", compressed=True, data=npz_rows(3, 64), labels=np.array([1, 1000, 500], dtype=np.int64))
    npz("npz/badrow.npz", compressed=True, data=np.zeros((2, 12287), dtype=np.uint8), labels=np.array([1, 2]))
    npz("npz/badlabel.npz", data=npz_rows(3, 8), labels=np.array([1, 1001, 2], dtype=np.int64))
    npz("npz/zerolabel.npz", data=npz_rows(2, 8), labels=np.array([0, 2], dtype=np.int64))
    npz("npz/nolabels.npz", data=npz_rows(2, 8))
    npz("npz/labelcount.npz", data=npz_rows(3, 8), labels=np.array([1, 2], dtype=np.int64))
    npz("npz/float_data.npz", data=npz_rows(2, 8).astype(np.float32), labels=np.array([1, 2]))
    npz_manual("npz/v2.npz", version=(2, 0), data=npz_rows(2, 8), labels=np.array([9, 10], dtype=np.int64))
    npz_manual("npz/fortran.npz", fortran=True, data=npz_rows(2, 8), labels=np.array([1, 2], dtype=np.int64))
    npz("npz/reference_stats.npz", mu=np.arange(4, dtype=np.float64) / 8,
        sigma=(np.arange(16, dtype=np.float64).reshape(4, 4) - 3.5).astype(np.float64))
    write("npz/notzip.npz", b"PK but not really a zip file" * 4)


# ---------------------------------------------------------------- EDM layout and class folders

def edm_members(n=6, classes=3):
    images = [("00000/img%08d.png" % k, edm_png(k)) for k in range(n)]
    labels = [[name, k % classes] for k, (name, _) in enumerate(images)]
    return images, labels


def dataset_json(labels, **extra):
    return json.dumps(dict(labels=labels, **extra)).encode()


def make_edm():
    images, labels = edm_members()
    write_zip("edm/tiny.zip", images + [("dataset.json", dataset_json(labels))])
    write_zip("edm/deflated.zip", images + [("dataset.json", dataset_json(labels, class_names=["a", "b", "c", "d"]))],
              compression=zipfile.ZIP_DEFLATED)
    write_zip("edm/unlabelled.zip", images + [("dataset.json", dataset_json(None))])
    write_zip("edm/nojson.zip", images)
    write_zip("edm/missing_entry.zip", images + [("dataset.json", dataset_json(labels[:3] + labels[4:]))])
    write_zip("edm/orphan_entry.zip", images[:5] + [("dataset.json", dataset_json(labels))])
    truncated = [(name, data[: len(data) // 2] if k == 2 else data) for k, (name, data) in enumerate(images)]
    write_zip("edm/truncated_png.zip", truncated + [("dataset.json", dataset_json(labels))])
    mixed = images[:5] + [(images[5][0], edm_png(5, size=4))]
    write_zip("edm/mixed_size.zip", mixed + [("dataset.json", dataset_json(labels))])
    tiny = open(os.path.join(HERE, "edm/tiny.zip"), "rb").read()
    write("edm/cut.zip", tiny[: len(tiny) - 40])                      # no end-of-central-directory record

    folder = os.path.join(HERE, "edm/folder")
    shutil.rmtree(folder, ignore_errors=True)
    for name, data in images:
        write("edm/folder/" + name, data)
    write("edm/folder/dataset.json", dataset_json(labels))

    classes = os.path.join(HERE, "classes")
    shutil.rmtree(classes, ignore_errors=True)
    for k, path in enumerate(["ant/a.png", "ant/b.png", "bee/c.png", "cat/d.png", "cat/sub/e.png"]):
        write("classes/" + path, edm_png(k))
    write("classes/cat/notes.txt", b"not an image, ignored\n")


# ---------------------------------------------------------------- Fashion-MNIST-like idx files

def make_idx():
    """Tiny stand-ins for Debian's Fashion-MNIST files: gzip'd IDX, labels i % 10."""
    import gzip

    def gz(path, payload):
        write(path, gzip.compress(payload, mtime=0))

    for prefix, n in [("train", 20), ("t10k", 10)]:
        images = bytes((i * 13 + y * 5 + x * 3) % 256 for i in range(n) for y in range(28) for x in range(28))
        gz("fmnist/%s-images-idx3-ubyte.gz" % prefix, struct.pack(">BBBBIII", 0, 0, 8, 3, n, 28, 28) + images)
        gz("fmnist/%s-labels-idx1-ubyte.gz" % prefix, struct.pack(">BBBBI", 0, 0, 8, 1, n) + bytes(i % 10 for i in range(n)))
    write("fmnist_bad/train-images-idx3-ubyte.gz", gzip.compress(b"\x00\x00\x08\x03" + struct.pack(">III", 5, 28, 28) + bytes(100), mtime=0))


if __name__ == "__main__":
    make_pngs()
    make_npz()
    make_edm()
    make_idx()
    print("fixtures written under", HERE)
