"""Reading checkpoints safely and loading them strictly.

Only tensors and plain containers are ever unpickled (``torch.load(weights_only=True)``) or read
from safetensors: a checkpoint is data from the internet and must not run code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeir.errors import CheckpointError

MAX_LISTED_KEYS = 8


def checkpoint_format(path: str | Path) -> str:
    """The checkpoint format from the file's bytes, whatever its name: ``zip`` (``torch.save``), ``pickle``
    (legacy ``torch.save``) or ``safetensors``.

    Raises:
        CheckpointError: one sentence saying what the file is instead (empty, text, an image, random bytes...).
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint {path} is an empty file (0 bytes)")
    with open(path, "rb") as handle:
        head = handle.read(64)
    if head.startswith(b"PK\x03\x04"):
        import zipfile

        try:
            names = zipfile.ZipFile(path).namelist()
        except zipfile.BadZipFile:
            raise CheckpointError(f"checkpoint {path} is a damaged zip archive (truncated?)") from None
        if not any(name.endswith("data.pkl") for name in names):
            raise CheckpointError(f"checkpoint {path} is a zip archive but not a PyTorch checkpoint (no data.pkl)")
        return "zip"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if len(head) >= 9:
        header_len = int.from_bytes(head[:8], "little")
        if head[8:9] == b"{" and 8 + header_len <= size:
            return "safetensors"
    raise CheckpointError(f"checkpoint {path} is not a checkpoint (PyTorch zip, pickle or safetensors): it is "
                          f"{_describe_bytes(head)}")


def _describe_bytes(head: bytes) -> str:
    magics = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"\x1f\x8b": "a gzip archive",
              b"GIF8": "a GIF image", b"%PDF": "a PDF document", b"\x7fELF": "an executable (ELF)",
              b"\x08": "an ONNX or other protobuf file"}
    for magic, what in magics.items():
        if head.startswith(magic):
            return what
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"unrecognised binary data (first bytes {head[:8].hex()})"
    if text.lstrip().startswith(("{", "[")):
        return "a JSON or other text file"
    return "a text file" if text.isprintable() or "\n" in text else f"unrecognised data (first bytes {head[:8].hex()})"


def read_checkpoint(path: str | Path) -> Mapping[str, Any]:
    """Read a checkpoint without executing code; the format comes from the bytes (:func:`checkpoint_format`).

    Raises:
        CheckpointError: if the file is missing, not a checkpoint (the sentence says what it is), or
            holds pickled objects that are not plain data (those are refused rather than executed).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if checkpoint_format(path) == "safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise CheckpointError(f"checkpoint {path} is not a valid safetensors file: {exc}") from exc
    try:
        with open(path, "rb") as handle:  # a file object: torch.load must not pick a reader from the suffix
            data = torch.load(handle, map_location="cpu", weights_only=True)
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, EOFError) or "Ran out of input" in str(exc):
            message = "it ends before the data does (a truncated download or copy?)"
        elif "weights_only" in str(exc) or "Unsupported global" in str(exc):
            message = ("it holds pickled Python objects beyond tensors, which edgeir refuses to unpickle; "
                       "re-save just the state dict or use safetensors")
        raise CheckpointError(f"cannot read checkpoint {path}: {message}") from exc
    if not isinstance(data, Mapping):
        raise CheckpointError(f"checkpoint {path} holds a {type(data).__name__}, not a state dict")
    return data


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def state_dict_sha256(model: nn.Module) -> str:
    """Hex sha256 over a model's state dict (names, dtypes, shapes and bytes, in name order).

    Identifies the weights an artifact was exported from, whatever file they came from.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise if ``state`` does not fit ``model`` exactly.

    Raises:
        CheckpointError: naming missing keys, unexpected keys and shape mismatches.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    problems = []
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                        ("shape mismatches (checkpoint != model)", mismatched)):
        if keys:
            shown = ", ".join(keys[:MAX_LISTED_KEYS])
            more = f" and {len(keys) - MAX_LISTED_KEYS} more" if len(keys) > MAX_LISTED_KEYS else ""
            problems.append(f"{len(keys)} {label}: {shown}{more}")
    if problems:
        raise CheckpointError(f"checkpoint {source} does not fit the model: " + "; ".join(problems))


def load_into(
    model: nn.Module,
    path: str | Path,
    convert: Callable[[Mapping[str, Any]], dict[str, torch.Tensor]],
) -> str:
    """Read ``path``, map its keys with ``convert`` and load strictly into ``model``.

    Returns:
        The file's sha256.

    Raises:
        CheckpointError: if reading, mapping or loading fails.
    """
    raw = read_checkpoint(path)
    try:
        state = convert(raw)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} is not in a layout this method knows: {exc}") from exc
    check_state_dict(model, state, str(path))
    model.load_state_dict(state, strict=True)
    return file_sha256(path)
