#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/TARGET/: small valid
files of each format (raw and gzip, odd gzip headers, concatenated members) and the
hostile inputs of issue 11, so that every fuzz run starts from them and the replay in
.ci/run checks them each time. Run it again only to change the seeds; they are committed.
    python3 tests/fuzz/make_seeds.py"""
import gzip
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def gz(data, level=6):
    return gzip.compress(data, compresslevel=level, mtime=0)


def gz_with_name(data, name=b"file.idx"):
    # FNAME set: the header carries a zero-terminated file name before the deflate data.
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = c.compress(data) + c.flush()
    header = b"\x1f\x8b\x08\x08" + b"\0\0\0\0" + b"\0\x03" + name + b"\0"
    return header + body + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


def idx_images(n, h, w):
    return struct.pack(">IIII", 0x803, n, h, w) + bytes((i * 131 + k * 7) % 256 for i in range(n) for k in range(h * w))


def idx_labels(n):
    return struct.pack(">II", 0x801, n) + bytes(i % 10 for i in range(n))


def cifar(n):
    return b"".join(bytes([i % 10]) + bytes((i * 131 + k * 7) % 256 for k in range(3072)) for i in range(n))


def safetensors(tensors, metadata=None):
    header, blobs, at = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + len(data)]}
        blobs.append(data)
        at += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def raw_safetensors(header_text, data=b""):
    return struct.pack("<Q", len(header_text)) + header_text.encode() + data


images, labels = idx_images(3, 4, 5), idx_labels(3)
for name, data in {
    "images.idx": images, "images.idx.gz": gz(images), "images-level9.idx.gz": gz(images, 9),
    "images-fname.idx.gz": gz_with_name(images), "images-two-members.idx.gz": gz(images[:20]) + gz(images[20:]),
    "images-empty.idx": idx_images(0, 2, 2), "labels.idx": idx_labels(12), "labels.idx.gz": gz(idx_labels(12)),
    # Issue 11: dims whose product is 2^64-1; a gzip whose trailer is cut; a label of 10.
    "images-product-2pow64-minus-1.idx": struct.pack(">IIII", 0x803, 1722007169, 42009217, 255),
    "images-trailer-cut.idx.gz": gz(images)[:-5],
    "labels-out-of-range.idx": idx_labels(11)[:-1] + b"\x0a",
    # Found by fuzzing: no images of 4294955987 x 3553874899 overflowed xtensor's strides.
    "finding-no-images-huge-dims.idx": struct.pack(">IIII", 0x803, 0, 0xFFFFD3D3, 0xD3D3D3D3),
}.items():
    put("idx", name, data)

for name, (lab, img) in {
    "raw-pair": (labels, images), "gz-pair": (gz(labels), gz(images)), "gz-labels-raw-images": (gz(labels), images),
    "count-mismatch": (idx_labels(2), images),
}.items():
    assert len(lab) < 256
    put("idx_dataset", name, bytes([len(lab)]) + lab + img)

put("cifar", "one-record.bin", cifar(1))
put("cifar", "two-records.bin", cifar(2))
put("cifar", "bad-label.bin", b"\x0c" + cifar(1)[1:])

f32 = struct.pack("<3f", 1.5, -2.0, 3.25)
put("safetensors", "four-dtypes.safetensors", safetensors({
    "w": ("F32", [3], f32), "d": ("F64", [], struct.pack("<d", 3.14159)),
    "n": ("I64", [2], struct.pack("<2q", -1, 1 << 40)), "b": ("U8", [2, 2], bytes([0, 1, 2, 255])),
    "e": ("F32", [0, 3], b""),
}, {"step": "12", "config": "{\"model\": \"nice\"}"}))
put("safetensors", "empty-header.safetensors", raw_safetensors("{}"))
put("safetensors", "metadata-only.safetensors", raw_safetensors('{"__metadata__":{"k":"v"}}'))
# Issue 11 and this work's findings: a number past double's range, a zero beside huge dims.
put("safetensors", "number-too-large.safetensors", raw_safetensors('{"__metadata__":{"k":"v"},"x":1e999}'))
put("safetensors", "zero-beside-huge.safetensors",
    raw_safetensors('{"a":{"dtype":"F32","shape":[0,4611686018427387904],"data_offsets":[0,0]}}'))

# Run configurations as checkpoints store them: one valid per model, the form older runs
# wrote (no recipe fields), and the tampered values of issue 11.
def run_config(**changes):
    model = {"name": "glow", "bench": False, "image": [1, 28, 28], "levels": 2, "flow_steps": 4, "hidden": 64,
             "couplings": 0, "blocks": 0, "layers": 0, "additive": False, "learn_top": True, "prior": "",
             "logit_alpha": 1e-05, "scale_clamp": 2.0, "net_actnorm": False}
    train = {"dataset": "fashion-mnist", "data_dir": "", "batch": 64, "optimizer": "adam", "lr": 0.004,
             "weight_decay": 0.0, "warmup": 200, "lr_decay": "cosine", "ema": 0.999, "clip": 0.0,
             "clip_factor": 5.0, "seed": 0, "flip": False, "epochs": 0, "steps": 0, "minutes": 4.0,
             "eval_every": 0, "checkpoint_every": 0}
    for key, value in changes.items():
        part, field = key.split("__")
        part = model if part == "model" else train
        if value is None:
            del part[field]
        else:
            part[field] = value
    return json.dumps({"format": "flowgrad-run-config-1", "model": model, "train": train}).encode()


for name, changes in {
    "glow": {},
    "realnvp": dict(model__name="realnvp", model__flow_steps=0, model__couplings=2, model__blocks=1,
                    model__hidden=32, model__learn_top=False, model__scale_clamp=0.0, train__lr=0.001),
    "nice": dict(model__name="nice", model__levels=0, model__flow_steps=0, model__couplings=4, model__layers=4,
                 model__hidden=500, model__prior="logistic", model__learn_top=False, train__lr=0.001),
    "old-form": dict(model__scale_clamp=None, model__net_actnorm=None, train__optimizer=None,
                     train__weight_decay=None, train__lr_decay=None, train__ema=None, train__clip_factor=None),
    "hidden-negative": dict(model__hidden=-1),
    "hidden-2p35": dict(model__hidden=2 ** 35),
    "hidden-1e30": dict(model__hidden=1e30),
    "levels-64": dict(model__levels=64),
    "eval-every-2p64m1": dict(train__eval_every=2 ** 64 - 1),
    "minutes-string": dict(train__minutes="x"),
    "warmup-2p63": dict(train__warmup=2 ** 63),
}.items():
    put("run_config", name + ".json", run_config(**changes))
put("run_config", "not-an-object.json", b"[1, 2, 3]")
