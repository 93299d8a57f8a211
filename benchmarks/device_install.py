"""Install the carried wheels of a folder whose distributions the running Python lacks (no dependencies
resolved, no network), into a target directory to put on PYTHONPATH. For the lent GPU machines, where pip
cannot reach an index:   python3 benchmarks/device_install.py .whl /tmp/site && export PYTHONPATH=/tmp/site"""

import importlib.metadata
import subprocess
import sys
from pathlib import Path


def missing_wheels(folder: str) -> list[Path]:
    out = []
    for wheel in sorted(Path(folder).glob("*.whl")):
        dist = wheel.name.split("-")[0].replace("_", "-")
        try:
            importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out.append(wheel)
    return out


if __name__ == "__main__":
    folder, target = sys.argv[1], sys.argv[2]
    need = missing_wheels(folder)
    if need:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--no-cache-dir", "--upgrade", "--target", target, *map(str, need)], check=True)
    print("installed:", " ".join(w.name.split("-")[0] for w in need) or "nothing")
