"""PNG encoding and decoding shared by storage, the loader and the embedded datasets.

Kept in one place so that every dataset is stored, and every image decoded, the same way.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def as_hwc(image: np.ndarray) -> np.ndarray:
    """Validates an image array and returns it as uint8 HxWxC with C in (1, 3)."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"Images must be uint8, got {array.dtype}.")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3) or min(array.shape[:2]) < 1:
        raise ValueError(f"Images must be HxW or HxWxC with C in (1, 3), got {array.shape}.")
    return array


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 image; deterministic for a given Pillow version."""
    array = as_hwc(image)
    pil = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def _open(data: bytes) -> Image.Image:
    pil = Image.open(io.BytesIO(data))
    pil.load()  # Decode now so that corruption raises here, not later.
    if pil.mode not in ("L", "RGB"):
        pil = pil.convert("RGB" if pil.mode in ("RGBA", "P", "CMYK", "YCbCr") else "L")
    return pil


def decode_image(data: bytes) -> np.ndarray:
    """Decodes PNG/JPEG bytes to uint8 HxWxC (C = 1 for grey, 3 for colour)."""
    array = np.asarray(_open(data))
    return array[:, :, None] if array.ndim == 2 else array


def decode_resized_rgb(data: bytes, size: int) -> np.ndarray:
    """Decodes and bilinearly resizes to uint8 [size, size, 3]; grey becomes RGB after resizing.

    Resizing before the grey->RGB conversion does a third of the work. Aspect ratio is not kept:
    every task is fed to the model at one square resolution.
    """
    pil = _open(data)
    if pil.size != (size, size):
        pil = pil.resize((size, size), Image.Resampling.BILINEAR)
    array = np.asarray(pil)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return array


def normalise_encoded(data: bytes, channels: int, max_side: int | None = None) -> bytes:
    """Encoded image bytes as stored: the source's own PNG/JPEG bytes when they already fit.

    Decodes once (so corrupt data fails here, at preparation, not during training). The bytes
    are kept unchanged when the format is PNG or JPEG, the mode matches `channels` (L for 1,
    RGB for 3) and no side exceeds `max_side`; otherwise the image is converted (and shrunk,
    keeping its aspect ratio) and PNG-encoded. Keeping JPEGs avoids a lossy re-encode and makes
    preparation about as fast as decoding.
    """
    pil = Image.open(io.BytesIO(data))
    mode = "L" if channels == 1 else "RGB"
    too_big = max_side is not None and max(pil.size) > max_side
    if pil.format in ("PNG", "JPEG") and pil.mode == mode and not too_big:
        # Decoded only to prove the data whole: a JPEG at 1/8 scale still reads every
        # entropy-coded block (truncation and corruption raise) but skips most of the work.
        pil.draft(mode, (max(1, pil.size[0] // 8), max(1, pil.size[1] // 8)))
        pil.load()
        return data
    pil.load()
    if pil.mode != mode:
        if pil.mode in ("RGBA", "LA", "PA") or (pil.mode == "P" and "transparency" in pil.info):
            pil = pil.convert("RGBA")  # composite onto white rather than black
            background = Image.new("RGBA", pil.size, (255, 255, 255, 255))
            pil = Image.alpha_composite(background, pil)
        pil = pil.convert(mode)
    if too_big:
        pil.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    return encode_png(np.asarray(pil))
