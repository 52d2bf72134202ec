"""What an export is asked to do, as one frozen value checked when it is made."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeir.errors import UsageError
from edgeir.recipe import TLCOptions

MAX_SIDE = 4096  # largest side of an exported program (photos of any size are tiled through it)


@dataclass(frozen=True)
class ExportRequest:
    """One export: which method to which target, and every option that overrides a default.

    Attributes:
        method: Registered method name.
        target: Registered target name.
        variant: Model variant (method default when None).
        task: Restoration task (method default when None).
        weights: Checkpoint to load; None loads the weights the plugin ships for this variant and task
            (``MethodSpec.weights``) and, where it ships none, a seeded random initialisation (and says so);
            ``"random"`` asks for the random initialisation explicitly.
        output: Directory the bundle directory is created in.
        quant: Quantization / precision scheme (target default when None).
        backend: Target backend (target default when None).
        input_size: (H, W) of the exported programs (method default when None).
        seed: Seed of the random initialisation when no weights are given.
        tlc: Export the Test-time Local Converter form (True for the default windows, or the
            options); only for methods whose I/O contract declares global operations. The bundle
            is named ``<method>-tlc-...`` (``<method>-local`` is the registered twin's name) and its
            manifest records the windows under ``recipe.tlc``.
        qat_steps: Quantization-aware fine-tuning steps for integer schemes (0 = post-training quantization).
        calibration: Folder of clean images for calibration and QAT (None: the built-in photos' training split).
        exits: Early exits to export ("all" or "1,3,6") for methods with exit programs (``exit_<k>``).
        qat_lr: Peak learning rate of quantization-aware training (default: the quantize stage's, 2e-5).
        sign_key: ed25519 private key (PEM) to sign the manifest with (:mod:`edgeir.integrity`).
        record_weights_path: Record the checkpoint's absolute path in the manifest (by default only its
            file name and sha256: a bundle that ships in an app must not carry the build machine's paths).

    Raises:
        UsageError: at construction, for an input size outside 1..MAX_SIDE pixels.
    """

    method: str
    target: str
    variant: str | None = None
    task: str | None = None
    weights: str | Path | None = None
    output: str | Path = "artifacts"
    quant: str | None = None
    backend: str | None = None
    input_size: tuple[int, int] | None = None
    seed: int = 0
    tlc: TLCOptions | bool | None = None
    qat_steps: int = 0
    calibration: str | Path | None = None
    exits: str | None = None
    qat_lr: float | None = None
    sign_key: str | Path | None = None
    record_weights_path: bool = False

    def __post_init__(self) -> None:
        if self.input_size is not None and not all(0 < int(side) <= MAX_SIDE for side in self.input_size):
            raise UsageError(f"input size {self.input_size[0]}x{self.input_size[1]}: each side must be 1 to "
                             f"{MAX_SIDE} pixels")
