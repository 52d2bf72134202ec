"""Time and peak memory of ``edgeir run`` on a 12-megapixel photo (4000x3000), tiled.

Builds the photo by up-scaling scikit-image's astronaut (bicubic, saved as JPEG quality 95),
exports AnyIR to ExecuTorch unless ``--bundle`` is given (mobile: a few minutes here), and runs
``edgeir run`` in a child process under ``/usr/bin/time -v`` (Debian package ``time``), which
reports the wall time and the peak resident set size of the whole run, Python start-up included.

    python bench/tiled_memory.py --variant mobile --workdir /tmp/tiled
    python bench/tiled_memory.py --bundle artifacts/anyir-mobile-allinone3-executorch-fp32
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path


def make_photo(path: Path, width: int, height: int) -> Path:
    """The built-in astronaut up-scaled to ``width`` x ``height`` (bicubic), as a JPEG."""
    from PIL import Image

    from edgeir.data.photos import photo_dir

    with Image.open(photo_dir() / "astronaut.png") as image:
        image.convert("RGB").resize((width, height), Image.Resampling.BICUBIC).save(path, quality=95)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default=None, help="existing bundle (default: export AnyIR to ExecuTorch)")
    parser.add_argument("--variant", default="mobile")
    parser.add_argument("--size", default="4000x3000", help="WxH of the photo")
    parser.add_argument("--workdir", default="bench-tiled")
    args = parser.parse_args(argv)

    time_bin = shutil.which("time") or "/usr/bin/time"
    if not Path(time_bin).exists():
        print("needs GNU time: apt-get install time", file=sys.stderr)
        return 2
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    width, height = (int(v) for v in args.size.lower().split("x"))
    photo = make_photo(work / f"photo_{width}x{height}.jpg", width, height)
    bundle = args.bundle
    if bundle is None:
        import edgeir

        bundle = str(edgeir.export("anyir", "executorch", variant=args.variant, output=work / "bundles").path)
    edgeir_bin = Path(sys.executable).with_name("edgeir")
    command = [time_bin, "-v", str(edgeir_bin), "run", bundle, str(photo), "-o", str(work / "restored.png")]
    print("$ " + " ".join(command))
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        print(done.stdout + done.stderr, file=sys.stderr)
        return done.returncode
    wall = re.search(r"Elapsed \(wall clock\) time.*: (.+)", done.stderr).group(1)
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    print(f"photo {width}x{height} ({width * height / 1e6:.1f} MP), bundle {Path(bundle).name}")
    print(f"wall time {wall}, peak RSS {rss_kb / 1024:.0f} MiB ({rss_kb / 1024 / 1024:.2f} GiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
