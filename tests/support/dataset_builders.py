"""Real datasets for the dataset-doctor tests: PNG/JPEG/WebP files made with Pillow, captions on disk."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw


def image(path: Path, size=(64, 64), color="white", fmt: str | None = None, mode: str = "RGB",
          exif_orientation: int | None = None, seed: int = 0) -> Path:
    """A real image file; `seed` draws a distinct mark so files are not byte-identical."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new(mode, size, color)
    ImageDraw.Draw(im).point((seed % size[0], (seed // size[0]) % size[1]), fill="black" if mode != "L" else 0)
    kwargs = {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    im.save(path, format=fmt, **kwargs)
    return path


def lineart_rgba(path: Path, size=(64, 64)) -> Path:
    """Black lines on a fully transparent (0,0,0,0) background, as drawing apps export line art."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGBA", size, (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    d.line((0, 0, size[0] - 1, size[1] - 1), fill=(0, 0, 0, 255), width=2)
    d.ellipse((8, 8, size[0] - 8, size[1] - 8), outline=(0, 0, 0, 255), width=2)
    im.save(path)
    return path


def truncated(path: Path, size=(64, 64), fmt="PNG") -> Path:
    buf = io.BytesIO()
    Image.new("RGB", size, "gray").save(buf, format=fmt)
    data = buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


def caption(image_path: Path, text: str | bytes, ext: str = ".txt") -> Path:
    path = image_path.with_suffix(ext)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def lineart_folder(folder: Path, n: int = 8, size=(64, 64), ext: str = ".txt", text="lineart, 1girl") -> list[Path]:
    """The corpus' baseline dataset shape: n distinct PNGs with a caption each."""
    out = []
    for i in range(n):
        p = image(folder / f"img{i:02d}.png", size, seed=i + 1)
        caption(p, text, ext)
        out.append(p)
    return out
