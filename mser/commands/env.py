"""`mser env`: what this machine computes on (versions, devices, determinism and oneDNN settings, extras);
`mser env --check-device` trains a tiny model on the CPU and on each GPU and compares them."""
from __future__ import annotations

import json

from ._common import fail


def register(subparsers) -> None:
    env = subparsers.add_parser(
        "env", help="versions, the devices TensorFlow sees, determinism settings, extras",
        description="What this machine computes on. MSER_DEVICE=cpu|gpu|gpu:N chooses the device runs train on "
                    "(unset: the GPU where TensorFlow sees one); every seed records it (provenance.device).")
    env.add_argument("--json", action="store_true", help="print JSON instead of aligned lines")
    env.add_argument("--check-device", action="store_true",
                     help="train a tiny fixed model (text-context on synthetic-small, 3 epochs) twice on the CPU "
                          "and twice on each GPU TensorFlow sees; print the largest differences of the losses and "
                          "posteriors from the CPU's, the speed ratio, whether the same seed repeats exactly, and "
                          "the device mser run trains on (under a minute on a CPU core). Exit code 1 if training "
                          "fails on a GPU")
    env.set_defaults(func=_env)


def _env(args) -> int:
    if args.check_device:
        from model_utils.machine.device_check import check_devices, format_check

        try:
            report = check_devices()
        except (ValueError, RuntimeError) as e:
            return fail(str(e))
        print(json.dumps(report, indent=2) if args.json else format_check(report))
        return 1 if any("error" in row for row in report["accelerators"]) else 0
    from model_utils.machine.environment import environment_report, format_report

    try:
        report = environment_report()
    except ValueError as e:  # an MSER_DEVICE that cannot hold here
        return fail(str(e))
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
