"""Make the self-test's known-answer images and record their hashes with the reference tools.

    python scripts/make_selftest_images.py

Writes server/selftest-data/*.png and expected.json. The hashes come from pdqhash and imagehash
called directly (not from hashmatch's own hashing), so the self-test compares the running code
with the references, and catches a Pillow, numpy or hashmatch upgrade that changes a hash.
Run it again only to add images; a changed hash of an existing image is a finding, not a refresh.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import imagehash
import numpy as np
import pdqhash
from PIL import Image

OUT = Path(__file__).resolve().parents[1] / "server" / "selftest-data"


def picture(seed: int, size: tuple[int, int]) -> Image.Image:
    """Smooth colour fields plus a few bars: enough structure for a high PDQ quality."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    channels = []
    for _ in range(3):
        field = np.zeros((h, w))
        for _ in range(6):
            fx, fy, phase = rng.uniform(0.5, 6, 2).tolist() + [rng.uniform(0, 6.28)]
            field += np.sin(2 * np.pi * (fx * x / w + fy * y / h) + phase)
        channels.append(field)
    rgb = np.stack(channels, -1)
    rgb = (rgb - rgb.min()) / (rgb.max() - rgb.min()) * 255
    for _ in range(4):
        x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
        rgb[y0 : y0 + int(rng.integers(10, h // 3)), x0 : x0 + int(rng.integers(10, w // 3))] = rng.integers(0, 256, 3)
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def pdq_hex(bits) -> str:
    return "".join(f"{int(''.join(str(int(b)) for b in bits[i:i + 4]), 2):x}" for i in range(0, 256, 4))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    expected = {}
    for seed, size, fmt in ((1, (320, 240), "PNG"), (2, (200, 300), "PNG"), (3, (256, 256), "PNG")):
        buffer = io.BytesIO()
        picture(seed, size).save(buffer, fmt, optimize=False)
        data = buffer.getvalue()
        name = f"known-{seed}.png"
        (OUT / name).write_bytes(data)
        decoded = Image.open(io.BytesIO(data))
        bits, quality = pdqhash.compute(np.asarray(decoded.convert("RGB")))
        expected[name] = {
            "pdq": pdq_hex(bits),
            "pdq_quality": int(quality),
            "phash": str(imagehash.phash(decoded)),
            "dhash": str(imagehash.dhash(decoded)),
            "ahash": str(imagehash.average_hash(decoded)),
            "whash": str(imagehash.whash(decoded)),
            "md5": hashlib.md5(data).hexdigest(),
            "sha1": hashlib.sha1(data).hexdigest(),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    (OUT / "expected.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
    print(json.dumps(expected, indent=2))


if __name__ == "__main__":
    main()
