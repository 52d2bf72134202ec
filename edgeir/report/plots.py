"""Figures of ``edgeir report``: accuracy vs latency with the Pareto front, side-by-side crops, and the
compute-quality curves of bundles with adaptive (early-exit) inference.

matplotlib is imported inside the functions, with the Agg backend (no display needed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Point:
    """One artifact (or one program of it, e.g. an early exit) on one device."""

    label: str
    latency_ms: float
    accuracy_db: float
    group: str


def pareto_front(points: list[Point]) -> list[Point]:
    """Points no other point beats on both latency (lower) and accuracy (higher), fastest first."""
    front: list[Point] = []
    for point in sorted(points, key=lambda p: (p.latency_ms, -p.accuracy_db)):
        if not front or point.accuracy_db > front[-1].accuracy_db:
            front.append(point)
    return front


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def scatter(points: list[Point], title: str, accuracy_label: str, notes: list[str], path: Path) -> Path:
    """Accuracy vs p50 latency, one colour per group (target/quant), Pareto front as a step line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5.0), dpi=120)
    groups = sorted({p.group for p in points})
    colours = plt.get_cmap("tab10")
    for index, group in enumerate(groups):
        members = [p for p in points if p.group == group]
        ax.scatter([p.latency_ms for p in members], [p.accuracy_db for p in members], s=60,
                   color=colours(index % 10), label=group, zorder=3, edgecolor="black", linewidth=0.5)
        for p in members:
            ax.annotate(p.label, (p.latency_ms, p.accuracy_db), textcoords="offset points", xytext=(6, 4),
                        fontsize=7)
    front = pareto_front(points)
    if len(front) > 1:
        ax.step([p.latency_ms for p in front], [p.accuracy_db for p in front], where="post", color="grey",
                linestyle="--", linewidth=1, label="Pareto front", zorder=2)
    elif front:
        ax.scatter([front[0].latency_ms], [front[0].accuracy_db], s=180, facecolor="none", edgecolor="grey",
                   linestyle="--", label="Pareto front", zorder=2)
    if not points:
        ax.text(0.5, 0.5, "no latency measured on this device", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("p50 latency (ms, lower is better)")
    ax.set_ylabel(accuracy_label)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    if points:
        ax.legend(fontsize=7, loc="best")
        low = min(p.accuracy_db for p in points)
        high = max(p.accuracy_db for p in points)
        ax.set_ylim(low - max(1.0, 0.1 * (high - low)), high + max(1.0, 0.15 * (high - low)))
        ax.set_xlim(0, max(p.latency_ms for p in points) * 1.35)
    if notes:
        fig.text(0.01, 0.01, "\n".join(notes), fontsize=7, va="bottom", ha="left", color="dimgray", wrap=True)
        fig.subplots_adjust(bottom=0.12 + 0.035 * len(notes))
    fig.savefig(path)
    plt.close(fig)
    return path


@dataclass(frozen=True)
class CropRow:
    """One artifact's crops: ``artifact`` is None when it cannot run here (``reason`` says why)."""

    label: str
    degraded: np.ndarray
    reference: np.ndarray
    artifact: np.ndarray | None
    reason: str = ""


def crops(rows: list[CropRow], title: str, path: Path) -> Path:
    """Degraded / reference / artifact / |artifact - reference| heat map, one row per artifact."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), 4, figsize=(11, 2.9 * len(rows) + 0.4), dpi=110, squeeze=False)
    for r, row in enumerate(rows):
        panels = axes[r]
        for ax in panels:
            ax.set_xticks([])
            ax.set_yticks([])
        panels[0].imshow(np.clip(row.degraded, 0, 1), interpolation="nearest")
        panels[0].set_title("degraded input", fontsize=8)
        panels[0].set_ylabel(row.label, fontsize=8)
        panels[1].imshow(np.clip(row.reference, 0, 1), interpolation="nearest")
        panels[1].set_title("eager fp32 reference", fontsize=8)
        if row.artifact is None:
            for ax in panels[2:]:
                ax.set_facecolor("#eeeeee")
                ax.text(0.5, 0.5, "not run on this host:\n" + _wrap(row.reason), ha="center", va="center",
                        fontsize=7, transform=ax.transAxes)
            panels[2].set_title("artifact", fontsize=8)
            panels[3].set_title("|artifact - reference|", fontsize=8)
            continue
        panels[2].imshow(np.clip(row.artifact, 0, 1), interpolation="nearest")
        panels[2].set_title("artifact", fontsize=8)
        diff = np.abs(row.artifact.astype(np.float64) - row.reference).mean(axis=2)
        peak = float(diff.max())
        image = panels[3].imshow(diff, cmap="inferno", vmin=0, vmax=peak if peak > 0 else 1.0,
                                 interpolation="nearest")
        panels[3].set_title(f"|artifact - reference| (max {peak:.1e})", fontsize=8)
        bar = fig.colorbar(image, ax=panels[3], fraction=0.046, pad=0.04, format="%.1e")
        bar.ax.tick_params(labelsize=6)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _wrap(text: str, width: int = 38) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return "\n".join(lines[:6]) + (" ..." if len(lines) > 6 else "")


@dataclass(frozen=True)
class Curve:
    """One bundle's adaptive-inference sweep: per threshold, compute spent and quality.

    Args:
        label: The bundle.
        thresholds: The thresholds swept, ascending.
        compute: MACs spent over the full model's at each threshold.
        accuracy_db: PSNR against the clean photos at each threshold.
        full_db: The full model's PSNR on the same photos (None if the bundle names no full program).
    """

    label: str
    thresholds: tuple[float, ...]
    compute: tuple[float, ...]
    accuracy_db: tuple[float, ...]
    full_db: float | None = None


def tradeoff(curves: list[Curve], title: str, path: Path) -> Path:
    """PSNR vs compute (fraction of the full model's MACs) per threshold, one line per bundle."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5.0), dpi=120)
    colours = plt.get_cmap("tab10")
    for index, curve in enumerate(curves):
        colour = colours(index % 10)
        ax.plot(curve.compute, curve.accuracy_db, marker="o", color=colour, label=curve.label, zorder=3)
        for t, x, y in zip(curve.thresholds, curve.compute, curve.accuracy_db, strict=True):
            ax.annotate(f"{t:g}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7, color=colour)
        if curve.full_db is not None:
            ax.scatter([1.0], [curve.full_db], marker="*", s=160, color=colour, edgecolor="black", linewidth=0.5,
                       zorder=4, label=f"{curve.label}: full model")
    if not curves:
        ax.text(0.5, 0.5, "no bundle with adaptive inference", ha="center", va="center", transform=ax.transAxes)
    ax.axvline(1.0, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("MACs spent / full model's MACs (labels: threshold)")
    ax.set_ylabel("PSNR vs clean photos (dB)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    if curves:
        ax.legend(fontsize=7, loc="lower right")
    fig.savefig(path)
    plt.close(fig)
    return path
