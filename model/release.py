"""Copy the nets trained in model/ into model/released/, the default model that `predict`
and the webapp load: per net its deploy.prototxt and weights.caffemodel, plus MANIFEST.json
(iterations and final losses from the training logs, file checksums).

    python -m model.release [--from model/] [--to model/released/] [--log-dir log/]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

from common import caffelog
from common.console import log_to_console
from common.netfiles import TRAINED_HERE_HELP, deploy_files, levels_available, resolve_model
from common.nets import LEVELS, NETS
from common.paths import LOG_DIR, RELEASED_MODEL, rel


def release(src: Path, dst: Path, log_dir: Path) -> dict:
    if levels_available(src) < LEVELS[-1]:
        raise FileNotFoundError(f"{rel(src)} does not hold all {len(NETS)} trained nets "
                                f"(levels complete: {levels_available(src)}); train them first")
    manifest = {"released": time.strftime("%Y-%m-%d"), "nets": {}}
    for spec in NETS:
        files = deploy_files(spec, src)
        for source, copy in zip(files, deploy_files(spec, dst)):
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, copy)
        weights = files[1]
        entry = {"sha256": hashlib.sha256(weights.read_bytes()).hexdigest(), "bytes": weights.stat().st_size}
        log = caffelog.log_path(spec, log_dir)
        if log.is_file():
            s = caffelog.summarise(log.read_text(errors="replace"))
            entry.update(iterations=s.iterations, final_train_loss=s.train_loss, final_test_loss=s.test_loss,
                         wall_minutes=round(s.wall_seconds / 60, 1))
        manifest["nets"][spec.key] = entry
    (Path(dst) / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="src", type=Path, help=TRAINED_HERE_HELP)
    p.add_argument("--to", dest="dst", type=Path, default=RELEASED_MODEL)
    p.add_argument("--log-dir", type=Path, default=LOG_DIR)
    args = p.parse_args(argv)
    log_to_console()
    try:
        manifest = release(resolve_model(args.src, trained_here=True), args.dst, args.log_dir)
    except FileNotFoundError as exc:
        sys.exit(f"error: {exc}")
    size = sum(n["bytes"] for n in manifest["nets"].values())
    print(f"released {len(manifest['nets'])} nets ({size / 1e6:.1f} MB) to {rel(args.dst)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
