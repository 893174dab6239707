"""``graflow checkpoints list [DIR|URL] [--json]``."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any) -> None:
    cmd = sub.add_parser("checkpoints", help="inspect checkpoints")
    inner = cmd.add_subparsers(dest="checkpoints_command", metavar="ACTION")
    ls = inner.add_parser("list", help="list checkpoints in a directory or URL, oldest first")
    ls.add_argument("location", nargs="?", default=None, help="directory or URL (default: $GRAFLOW_CHECKPOINT_DIR or checkpoints)")
    ls.add_argument("--json", action="store_true", help="print one JSON array")
    ls.set_defaults(handler=run_list)
    cmd.set_defaults(handler=lambda args: (cmd.print_help(), 2)[1])


def run_list(args: argparse.Namespace) -> int:
    from graflow.core.checkpoint import CheckpointManager

    found = CheckpointManager.list_checkpoints(args.location)
    if args.json:
        print(json.dumps([{"location": loc, **meta.to_dict()} for loc, meta in found], indent=2))
        return 0
    for loc, meta in found:
        user = json.dumps(meta.user_metadata, sort_keys=True, default=repr)
        print(f"{loc}  id={meta.checkpoint_id}  session={meta.session_id}  steps={meta.steps}  created_at={meta.created_at}  metadata={user}")
    return 0
