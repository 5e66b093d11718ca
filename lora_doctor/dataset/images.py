"""Read image files cheaply: headers for size/mode/EXIF, the last bytes for truncation, and for
images with an alpha channel a bounded look at the alpha (what sd-scripts' RGB conversion loses).

Pixels are decoded only for images with alpha of at most ALPHA_SAMPLE_MAX_PIXELS; everything
else reads the header (Pillow opens lazily) and at most the file's last 32 bytes.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

# PIL's default Image.MAX_IMAGE_PIXELS, which sd-scripts keeps: above it PIL warns
# (DecompressionBombWarning), above twice it refuses to open (DecompressionBombError).
PIL_MAX_PIXELS = 89_478_485
ALPHA_SAMPLE_MAX_PIXELS = 4_194_304  # decode alpha of images up to 2048×2048; larger ones are not sampled
ALPHA_SAMPLE_SIDE = 128  # the alpha is judged on a reduced copy at most this many pixels wide
ORIENTATION_TAG = 0x0112


@dataclass
class ImageInfo:
    """What one image file is, as far as training cares."""

    path: str
    bytes: int = 0
    width: int = 0
    height: int = 0
    mode: str = ""
    format: str = ""
    error: str = ""  # why it cannot be used ('' when fine)
    truncated: bool = False
    orientation: int = 1  # EXIF orientation; sd-scripts ignores it
    has_alpha: bool = False
    transparent_share: float | None = None  # share of (sampled) pixels with alpha < 128
    background_luma: float | None = None  # mean brightness those pixels get once converted to RGB
    foreground_luma: float | None = None

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def ok(self) -> bool:
        return not self.error


def _truncated(fh, fmt: str, size: int) -> bool:
    """True when the file visibly ends early (missing PNG IEND / JPEG EOI, short RIFF/BMP)."""
    try:
        if fmt == "PNG":
            fh.seek(max(0, size - 12))
            return b"IEND" not in fh.read(12)
        if fmt == "JPEG":
            fh.seek(max(0, size - 32))
            tail = fh.read(32).rstrip(b"\x00\r\n ")
            return not tail.endswith(b"\xff\xd9")
        if fmt == "WEBP":
            fh.seek(4)
            declared = int.from_bytes(fh.read(4), "little") + 8
            return size < declared
        if fmt == "BMP":
            fh.seek(2)
            declared = int.from_bytes(fh.read(4), "little")
            return 0 < size < declared
    except OSError:
        return False
    return False


def _orientation(img) -> int:
    raw = img.info.get("exif")
    if not raw:
        return 1
    try:
        from PIL import Image

        exif = Image.Exif()
        exif.load(raw)
        return int(exif.get(ORIENTATION_TAG, 1) or 1)
    except Exception:
        return 1


def _sample_alpha(img, info: ImageInfo) -> None:
    """Share of transparent pixels and the brightness they turn into, on a reduced copy."""
    from PIL import ImageStat

    img.load()
    rgba = img.convert("RGBA")
    factor = max(1, max(rgba.size) // ALPHA_SAMPLE_SIDE)
    small = rgba.reduce(factor) if factor > 1 else rgba
    alpha = small.getchannel("A")
    transparent = alpha.point(lambda v: 255 if v < 128 else 0)
    # Visible at all: thin lines reduced with their transparent surroundings keep a low alpha.
    visible = alpha.point(lambda v: 255 if v >= 16 else 0)
    count = transparent.histogram()[255]
    total = small.size[0] * small.size[1]
    info.transparent_share = count / total if total else 0.0
    luma = small.convert("RGB").convert("L")
    if count:
        info.background_luma = ImageStat.Stat(luma, mask=transparent).mean[0]
    if visible.histogram()[255]:
        info.foreground_luma = ImageStat.Stat(luma, mask=visible).mean[0]


def read_image(path: str, sample_alpha: bool = True) -> ImageInfo:
    """Header facts of one image; never raises."""
    from PIL import Image, UnidentifiedImageError

    info = ImageInfo(path)
    try:
        info.bytes = os.stat(path).st_size
    except OSError as exc:
        info.error = f"cannot be read ({exc.strerror or exc})"
        return info
    if info.bytes == 0:
        info.error = "is an empty (0-byte) file"
        return info
    try:
        with open(path, "rb") as fh:
            with Image.open(fh) as img:
                info.width, info.height = img.size
                info.mode, info.format = img.mode, img.format or ""
                info.orientation = _orientation(img)
                info.has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
                info.truncated = _truncated(fh, info.format, info.bytes)
                if info.truncated:
                    info.error = "is truncated (the file ends early: an interrupted download or copy)"
                elif info.has_alpha and sample_alpha and info.pixels <= ALPHA_SAMPLE_MAX_PIXELS:
                    fh.seek(0)
                    try:
                        _sample_alpha(img, info)
                    except (OSError, ValueError, SyntaxError) as exc:
                        info.error = f"cannot be decoded ({exc})"
    except UnidentifiedImageError:
        info.error = "is not an image Pillow can read (a web page or another file saved with an image extension?)"
        try:
            with open(path, "rb") as fh:
                head = fh.read(64).lstrip().lower()
            if head.startswith((b"<!doctype html", b"<html", b"<?xml", b"{")):
                info.error = "is not an image: it holds text (" + head[:15].decode("ascii", "replace") + "…), e.g. a saved web page"
        except OSError:
            pass
    except Image.DecompressionBombError as exc:
        info.error = f"is too large for Pillow to open ({exc})"
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        info.error = f"cannot be read ({exc})"
    return info


def scan(paths: list[str], workers: int | None = None, sample_alpha: bool = True) -> list[ImageInfo]:
    """read_image over many files with a thread pool (file I/O and Pillow's C code release the GIL)."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # we judge the size ourselves (PIL_MAX_PIXELS); headers only
    if not paths:
        return []
    workers = workers or min(16, (os.cpu_count() or 2) * 4)
    if len(paths) < 32:
        return [read_image(p, sample_alpha) for p in paths]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda p: read_image(p, sample_alpha), paths, chunksize=64))
