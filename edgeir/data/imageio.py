"""Reading and writing image files: PNG, JPEG, TIFF, WebP; 8- and 16-bit; grey, RGB, RGBA.

:func:`load_image` keeps what a restored file must carry over: the bit depth, the alpha channel
(passed through untouched), the ICC profile, and whether the photo is grey; it applies the EXIF
orientation so pixels are upright. Pixels stay in their file's integer type (uint8 or uint16) so a
12-megapixel photo costs 36 MB, not 144 MB, until the tiler converts it one tile at a time.
:func:`save_image` writes atomically (temporary file, then rename): an error never leaves a
partial output.

Pillow reads and writes everything except 16-bit colour: 16-bit colour TIFFs go through
tifffile, and 16-bit colour PNGs are written by a small encoder here (Pillow has no 16-bit RGB
mode). Pillow reads 16-bit colour PNGs as 8-bit; such files are restored at 8-bit precision.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeir.errors import ImageError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")
_ALPHA_FORMATS = ("PNG", "TIFF", "WEBP")
_SIXTEEN_BIT_FORMATS = ("PNG", "TIFF")
# The most pixels a photo may declare, on every decoder path (Pillow, tifffile), checked from the
# header before any pixel is allocated: Pillow's own decompression-bomb error limit (2 x its
# MAX_IMAGE_PIXELS default), about 179 megapixels, or 1 GiB of 16-bit RGB.
MAX_PIXELS = 2 * 89_478_485
_ORIENTATION_TAG = 0x0112
_ICC_TAG = 34675


@dataclass(frozen=True)
class Picture:
    """An image as read from a file.

    Args:
        rgb: HxWx3 pixels, upright, in the file's integer type (uint8 or uint16); grey photos are
            repeated to three channels.
        alpha: HxW alpha in the same type, or None.
        icc_profile: The embedded ICC profile (colour space of ``rgb``), or None for sRGB.
        grey: Whether the file was single-channel (written back as grey).
        path: Where it came from.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    icc_profile: bytes | None
    grey: bool
    path: Path

    @property
    def bits(self) -> int:
        """Bits per sample: 8 or 16."""
        return 16 if self.rgb.dtype == np.uint16 else 8

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)."""
        return self.rgb.shape[0], self.rgb.shape[1]

    def as_float(self) -> np.ndarray:
        """The RGB pixels as an HxWx3 float32 array in [0, 1]."""
        return self.rgb.astype(np.float32) / np.float32(np.iinfo(self.rgb.dtype).max)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as an HxWx3 float32 RGB array in [0, 1] (upright, alpha dropped).

    Raises:
        ImageError: naming the file, if it is missing, empty or not a readable image.
    """
    return load_image(path).as_float()


def load_image(path: str | Path) -> Picture:
    """Read an image file with its alpha, ICC profile and bit depth, applying EXIF orientation.

    Raises:
        ImageError: naming the file, if it is missing, empty, truncated, or not an image.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image {path} does not exist")
    if path.stat().st_size == 0:
        raise ImageError(f"image {path} is empty (0 bytes)")
    try:
        with Image.open(path) as image:
            check_pixel_count(path, *image.size)
            if image.format == "TIFF" and _is_deep_colour_tiff(image):
                return _load_tiff(path, _orientation(image))
            image.load()
            return _from_pillow(image, path)
    except UnidentifiedImageError as exc:
        if path.suffix.lower() in (".tif", ".tiff"):
            return _load_tiff_fallback(path, exc)
        raise ImageError(f"{path} is not an image file edgeir can read (PNG, JPEG, TIFF, WebP)") from exc
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
        raise ImageError(f"image {path} is damaged or truncated ({exc})") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image {path} is too large to decode safely: more than {MAX_PIXELS:,} pixels "
                         f"({exc})") from exc


def check_pixel_count(path: str | Path, width: int, height: int) -> None:
    """Refuse a photo whose header declares more than :data:`MAX_PIXELS` pixels (before decoding it).

    Raises:
        ImageError: naming the file, its declared size and the limit.
    """
    if width * height > MAX_PIXELS:
        raise ImageError(f"image {path} declares {width}x{height} = {width * height:,} pixels, above the limit of "
                         f"{MAX_PIXELS:,}; it is not decoded (a corrupt header or a decompression bomb)")


def _is_deep_colour_tiff(image) -> bool:
    bits = image.tag_v2.get(258, (8,))
    bits = bits if isinstance(bits, tuple) else (bits,)
    return max(bits) > 8 and len(bits) >= 3


def _orientation(image) -> int:
    try:
        return int(image.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block must not make the photo unreadable
        return 1


def orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an HxW[xC] array, as ``PIL.ImageOps.exif_transpose`` does."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(array)) if op else array


def _from_pillow(image, path: Path) -> Picture:
    icc = image.info.get("icc_profile") or None
    orientation = _orientation(image)
    mode = image.mode
    alpha = None
    grey = mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F", "La")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode == "CMYK":
        image, icc = _cmyk_to_rgb(image, icc), None
        mode = "RGB"
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        raw = np.asarray(image)
        deep = mode.startswith("I;16") or int(raw.max(initial=0)) > 255
        rgb = np.clip(raw, 0, 65535 if deep else 255).astype(np.uint16 if deep else np.uint8)
    elif mode == "F":
        rgb = np.round(np.clip(np.asarray(image, dtype=np.float32), 0, 1) * 255).astype(np.uint8)
    elif mode in ("LA", "La", "PA"):
        data = np.asarray(image.convert("LA"))
        rgb, alpha = data[:, :, 0], data[:, :, 1]
    elif mode in ("RGBA", "RGBa"):
        data = np.asarray(image.convert("RGBA"))
        rgb, alpha = data[:, :, :3], data[:, :, 3]
    elif mode in ("1", "L"):
        rgb = np.asarray(image.convert("L"))
    else:
        rgb = np.asarray(image.convert("RGB") if mode != "RGB" else image)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    rgb = orient(rgb, orientation)
    alpha = orient(alpha, orientation) if alpha is not None else None
    return Picture(np.ascontiguousarray(rgb), alpha, icc, grey, path)


def _cmyk_to_rgb(image, icc: bytes | None):
    """CMYK to sRGB: through the embedded profile when there is one, else Pillow's formula."""
    if icc:
        import io

        from PIL import ImageCms

        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError) as exc:
            log.info("CMYK profile of the image could not be applied (%s); using a plain conversion", exc)
    return image.convert("RGB")


def _load_tiff_fallback(path: Path, cause: Exception) -> Picture:
    """TIFF layouts Pillow does not open (16-bit grey with alpha, ...), through tifffile."""
    try:
        return _load_tiff(path, 1)
    except ImageError:
        raise
    except Exception as exc:  # noqa: BLE001 - tifffile raises many types for a damaged file
        raise ImageError(f"{path} is not an image file edgeir can read (PNG, JPEG, TIFF, WebP)") from cause or exc


def _load_tiff(path: Path, orientation: int) -> Picture:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        check_pixel_count(path, int(page.imagewidth), int(page.imagelength))
        data = page.asarray()
        tag = page.tags.get(_ICC_TAG)
        icc = bytes(tag.value) if tag is not None else None
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3 or data.shape[2] not in (1, 2, 3, 4) or data.dtype not in (np.uint8, np.uint16):
        raise ImageError(f"image {path} has an unsupported TIFF layout ({data.dtype}, shape {data.shape})")
    grey = data.shape[2] <= 2
    colour = 1 if grey else 3
    rgb = orient(data[:, :, :colour], orientation)
    if grey:
        rgb = np.repeat(rgb, 3, axis=2)
    alpha = orient(data[:, :, colour], orientation) if data.shape[2] > colour else None
    return Picture(np.ascontiguousarray(rgb), alpha, icc, grey, path)


def _quantize(image: np.ndarray, bits: int) -> np.ndarray:
    top = 65535.0 if bits == 16 else 255.0
    out = np.empty(image.shape, dtype=np.uint16 if bits == 16 else np.uint8)
    for start in range(0, image.shape[0], 256):  # row blocks keep the float temporaries small
        rows = np.asarray(image[start:start + 256], dtype=np.float32)
        out[start:start + 256] = np.round(np.clip(rows, 0.0, 1.0) * top)
    return out


def _convert_alpha(alpha: np.ndarray, bits: int) -> np.ndarray:
    if bits == 16 and alpha.dtype == np.uint8:
        return alpha.astype(np.uint16) * 257
    if bits == 8 and alpha.dtype == np.uint16:
        return np.round(alpha / 257.0).astype(np.uint8)
    return alpha


def check_output_path(path: str | Path) -> str:
    """The image format an output path's extension picks, checked before any work is done.

    Raises:
        ImageError: if the extension is not one edgeir writes.
    """
    from PIL import Image

    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ImageError(f"cannot write {path}: unknown image extension '{path.suffix}' "
                         f"(use one of {', '.join(IMAGE_EXTENSIONS)})")
    return fmt


def write_image(path: str | Path, image: np.ndarray, *, bits: int = 8, alpha: np.ndarray | None = None,
                icc_profile: bytes | None = None, grey: bool = False) -> Path:
    """Write an HxWx3 float image in [0, 1]; atomic (no partial file on error).

    Args:
        path: Output file; its extension picks the format.
        image: HxWx3 (or HxW) float pixels in [0, 1].
        bits: 8 or 16; formats without 16-bit samples (JPEG, WebP) are written at 8 bits.
        alpha: HxW alpha (uint8 or uint16) to store unchanged; dropped, with a log line, for
            formats without alpha (JPEG).
        icc_profile: ICC profile to embed.
        grey: Write a single channel (Rec. 601 luma of the RGB pixels).

    Raises:
        ImageError: if the format is unknown or the file cannot be written.
    """

    path = Path(path)
    fmt = check_output_path(path)
    if bits == 16 and fmt not in _SIXTEEN_BIT_FORMATS:
        log.info("%s holds 8-bit samples only; writing %s at 8 bits", fmt, path.name)
        bits = 8
    if alpha is not None and fmt not in _ALPHA_FORMATS:
        log.warning("%s cannot store alpha; %s is written without its alpha channel", fmt, path.name)
        alpha = None
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if grey:
        image = image[:, :, :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32) if image.shape[2] >= 3 \
            else image[:, :, 0]
    elif image.shape[2] == 1:
        image = image[:, :, 0]
    pixels = _quantize(image, bits)
    if alpha is not None:
        alpha = _convert_alpha(np.asarray(alpha), bits)
        if alpha.shape != pixels.shape[:2]:
            raise ImageError(f"cannot write {path}: alpha is {alpha.shape[1]}x{alpha.shape[0]} but the image is "
                             f"{pixels.shape[1]}x{pixels.shape[0]}")
        pixels = np.concatenate([pixels if pixels.ndim == 3 else pixels[:, :, None], alpha[:, :, None]], axis=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        _save(tmp, pixels, fmt, bits, icc_profile)
        os.replace(tmp, path)
    except ImageError:
        raise
    except (OSError, ValueError, TypeError) as exc:
        raise ImageError(f"cannot write {path}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _save(tmp: Path, pixels: np.ndarray, fmt: str, bits: int, icc: bytes | None) -> None:
    from PIL import Image

    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if bits == 16 and fmt == "TIFF":
        import tifffile

        extratags = [(_ICC_TAG, "B", len(icc), icc, True)] if icc else []
        photometric = "rgb" if channels >= 3 else "minisblack"
        extrasamples = ["unassalpha"] if channels in (2, 4) else None
        tifffile.imwrite(tmp, pixels, photometric=photometric, extrasamples=extrasamples, extratags=extratags,
                         compression="zlib")
        return
    if bits == 16 and fmt == "PNG" and channels != 1:
        _write_png16(tmp, pixels, icc)
        return
    if bits == 16:  # 16-bit grey PNG
        Image.fromarray(pixels.astype(np.uint16)).save(tmp, format=fmt, icc_profile=icc)
        return
    options: dict = {"icc_profile": icc} if icc else {}
    if fmt == "JPEG":
        options.update(quality=95, subsampling=0)
    elif fmt == "WEBP":
        options.update(lossless=True)
    Image.fromarray(np.ascontiguousarray(pixels)).save(tmp, format=fmt, **options)


def _write_png16(path: Path, pixels: np.ndarray, icc: bytes | None) -> None:
    """A 16-bit colour PNG (colour type 2 or 6), which Pillow cannot write; rows stream into zlib."""
    height, width, channels = pixels.shape
    colour_type = {2: 4, 3: 2, 4: 6}[channels]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        out.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)))
        if icc:
            out.write(chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc)))
        compressor = zlib.compressobj(6)
        data = bytearray()
        for start in range(0, height, 64):
            rows = pixels[start:start + 64].astype(">u2").reshape(-1, width * channels).view(np.uint8)
            block = np.concatenate([np.zeros((rows.shape[0], 1), np.uint8), rows], axis=1)
            data += compressor.compress(block.tobytes())
            if len(data) > 1 << 20:
                out.write(chunk(b"IDAT", bytes(data)))
                data.clear()
        data += compressor.flush()
        out.write(chunk(b"IDAT", bytes(data)))
        out.write(chunk(b"IEND", b""))
