"""`mser env`: what this machine computes on (versions, devices, determinism and oneDNN settings, extras)."""
from __future__ import annotations

import json


def register(subparsers) -> None:
    env = subparsers.add_parser("env", help="versions, the devices TensorFlow sees, determinism settings, extras")
    env.add_argument("--json", action="store_true", help="print JSON instead of aligned lines")
    env.set_defaults(func=_env)


def _env(args) -> int:
    from model_utils.machine.environment import environment_report, format_report

    report = environment_report()
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
