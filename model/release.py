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
from common.cascade import DEPLOY, WEIGHTS, levels_available, net_files
from common.nets import NETS
from common.paths import LOG_DIR, MODEL_DIR, RELEASED_MODEL, rel


def release(src: Path, dst: Path, log_dir: Path) -> dict:
    if levels_available(src) < 3:
        raise FileNotFoundError(f"{rel(src)} does not hold all 23 trained nets "
                                f"(levels complete: {levels_available(src)}); train them first")
    manifest = {"released": time.strftime("%Y-%m-%d"), "nets": {}}
    for spec in NETS:
        deploy, weights = net_files(src, spec)
        out = Path(dst) / spec.key
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(deploy, out / DEPLOY)
        shutil.copyfile(weights, out / WEIGHTS)
        entry = {"sha256": hashlib.sha256(weights.read_bytes()).hexdigest(), "bytes": weights.stat().st_size}
        log = Path(log_dir) / f"{spec.key}.log"
        if log.is_file():
            rows = caffelog.parse_file(log)
            train = [r.train_loss for r in rows if r.train_loss is not None]
            test = [r.test_loss for r in rows if r.test_loss is not None]
            entry.update(iterations=max(r.iteration for r in rows) if rows else 0,
                         final_train_loss=train[-1] if train else None,
                         final_test_loss=test[-1] if test else None,
                         wall_minutes=round(caffelog.wall_seconds(log.read_text(errors="replace")) / 60, 1))
        manifest["nets"][spec.key] = entry
    (Path(dst) / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="src", type=Path, default=MODEL_DIR)
    p.add_argument("--to", dest="dst", type=Path, default=RELEASED_MODEL)
    p.add_argument("--log-dir", type=Path, default=LOG_DIR)
    args = p.parse_args(argv)
    try:
        manifest = release(args.src, args.dst, args.log_dir)
    except FileNotFoundError as exc:
        sys.exit(f"error: {exc}")
    size = sum(n["bytes"] for n in manifest["nets"].values())
    print(f"released {len(manifest['nets'])} nets ({size / 1e6:.1f} MB) to {rel(args.dst)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
