"""``edgeir export METHOD --target T``: build, rewrite, export, run and check one bundle."""

from __future__ import annotations

import argparse

MAX_SIDE = 4096  # an exported program's side; larger programs need tens of GB to export (tile photos instead)


def program_size(text: str) -> tuple[int, int]:
    """``--size`` of a program: ``H`` (square) or ``HxW``, each side at most :data:`MAX_SIDE`."""
    try:
        parts = [int(p) for p in text.lower().replace("x", ",").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size; use H or HxW, e.g. 256 or 256x384") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) <= 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size; use H or HxW, e.g. 256 or 256x384")
    if max(parts) > MAX_SIDE:
        raise argparse.ArgumentTypeError(f"'{text}' is too large: a program side is at most {MAX_SIDE} pixels "
                                         "('edgeir run' tiles photos of any size through a smaller program)")
    return parts[0], parts[1]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export a method to an artifact bundle",
        description="Build the method's model, apply its export rewrites, export to the target, run the artifact "
                    "once against the eager model, and write a bundle directory "
                    "<method>-<variant>-<task>-<target>-<quant> under --output.")
    parser.add_argument("method", help="method name (see 'edgeir list')")
    parser.add_argument("--target", required=True, help="onnx, executorch or coreml (see 'edgeir list')")
    parser.add_argument("--variant", default=None, help="model variant (default: the method's, usually 'paper')")
    parser.add_argument("--task", default=None, help="restoration task (default: the method's)")
    parser.add_argument("--weights", default=None,
                        help="checkpoint to load (.pth/.ckpt/.safetensors), or 'random' for the seeded random "
                             "initialisation; without it edgeir's shipped weights for this method/variant/task are "
                             "used when it has some (see 'edgeir finetune'), else a random initialisation, and the "
                             "bundle says which")
    parser.add_argument("-o", "--output", default="artifacts", help="directory for bundles (default: artifacts)")
    parser.add_argument("--quant", "--precision", dest="quant", default=None,
                        help="precision / quantization scheme: fp32, fp16, int8, int8-weights, w4 (default: the "
                             "target's; Core ML: fp16); 'edgeir list' shows which target offers which")
    parser.add_argument("--qat-steps", type=int, default=0, metavar="N",
                        help="int8: quantization-aware fine-tuning steps on the training photos (default 0 = "
                             "post-training quantization, calibrated on them)")
    parser.add_argument("--calibration", default=None, metavar="DIR",
                        help="folder of clean images for int8 calibration and QAT (default: the built-in photos' "
                             "training split)")
    parser.add_argument("--backend", default=None, help="target backend, e.g. xnnpack or portable for executorch")
    parser.add_argument("--size", type=program_size, default=None, metavar="HxW",
                        help="input size of the exported program (default: the method's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random initialisation without --weights")
    parser.add_argument("--tlc", action="store_true",
                        help="export the Test-time Local Converter form: global pooling/statistics/attention become "
                             "local windows of 1.5x the training crop (methods with global operations only)")
    parser.add_argument("--tlc-train-size", type=program_size, default=None, metavar="HxW",
                        help="training crop the TLC windows derive from (default 256; implies --tlc)")
    parser.add_argument("--tlc-base-size", type=program_size, default=None, metavar="HxW",
                        help="TLC window at image level (default 1.5x the training crop; implies --tlc)")
    parser.add_argument("--exits", default=None, metavar="all|1,3,6",
                        help="early exits to export, for methods that have them (flexir): 'all' or a comma list; "
                             "adds one program per exit plus the staged programs adaptive inference runs")
    parser.add_argument("--sign-key", default=None, metavar="PEM",
                        help="ed25519 private key (PEM, 'openssl genpkey -algorithm ed25519') to sign the manifest "
                             "with; check it with --trust-key on the other commands")
    parser.add_argument("--record-weights-path", action="store_true",
                        help="record the checkpoint's absolute path in the manifest (default: its file name and "
                             "sha256 only, so a shipped bundle carries no path of this machine)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from edgeir.pipeline.export import export
    from edgeir.recipe import TLCOptions

    tlc = None
    if args.tlc or args.tlc_train_size or args.tlc_base_size:
        tlc = TLCOptions(train_size=args.tlc_train_size or (256, 256), base_size=args.tlc_base_size)
    bundle = export(args.method, args.target, variant=args.variant, task=args.task, weights=args.weights,
                    output=args.output, quant=args.quant, backend=args.backend, input_size=args.size,
                    seed=args.seed, tlc=tlc, qat_steps=args.qat_steps, calibration=args.calibration,
                    exits=args.exits, sign_key=args.sign_key, record_weights_path=args.record_weights_path)
    manifest = bundle.manifest
    if not args.quiet:
        print(f"wrote {bundle.path}")
        print(f"  {manifest['method']} {manifest['variant']} / {manifest['task']} -> {manifest['target']} "
              f"({manifest['backend']}, {manifest['quant']}), {manifest['params'] / 1e6:.3f}M params")
        if manifest["recipe"].get("tlc"):
            tlc_record = manifest["recipe"]["tlc"]
            print(f"  TLC: windows of {tlc_record['base_size']} at image level (train size "
                  f"{tlc_record['train_size']}), {len(tlc_record['layers'])} layers made local")
        for name, stats in bundle.delegation.items():
            print(f"  {name}: {stats['delegated_nodes']} nodes delegated in {stats['delegate_subgraphs']} "
                  f"subgraph(s), {stats['non_delegated_nodes']} outside ({stats['coverage']:.1%} coverage)")
        check = manifest["export_check"]
        quantization = manifest.get("quantization")
        if quantization:
            print(f"  {quantization['scheme']} by {quantization['engine']} ({quantization['mode']}"
                  + (f", {quantization['qat_steps']} QAT steps" if quantization["qat_steps"] else "")
                  + (f"; calibration: {quantization['calibration']['description']}" if "calibration" in quantization
                     else "") + ")")
        if check["status"] == "passed":
            worst = min(p["psnr_db"] for p in check["programs"].values())
            print(f"  artifact runs in {check['runtime']}: {worst:.1f} dB vs eager on its example input")
            fake = [p["artifact_vs_fakequant_psnr_db"] for p in check["programs"].values()
                    if "artifact_vs_fakequant_psnr_db" in p]
            if fake:
                print(f"  artifact vs its fake-quant model: {min(fake):.1f} dB")
        else:
            print(f"  artifact not run: {check['reason']}")
        if manifest["weights"]["source"] == "edgeir-default":
            evaluation = manifest["weights"].get("provenance", {}).get("eval", {})
            print(f"  weights: edgeir's shipped {manifest['variant']} weights for {manifest['task']} "
                  f"(eval PSNR {evaluation.get('psnr_db', '?')} dB vs {evaluation.get('input_psnr_db', '?')} dB input)")
        if manifest["weights"]["source"] == "random-init":
            print("  WARNING: random weights (no --weights): the artifact does not restore images")
    return 0
