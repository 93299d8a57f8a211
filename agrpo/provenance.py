"""What every result row records: config hash, git commit, device, package versions; and seeding."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import random
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

import agrpo


def config_hash(config: dict) -> str:
    """sha256 (first 12 hex) of the canonical JSON of a resolved config."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


# what can change a result; edits elsewhere (docs, committed results) do not make a run "dirty"
CODE_PATHS = ["agrpo", "baselines", "workflow", "benchmarks/*.py", "Snakefile", "pyproject.toml"]


@lru_cache(maxsize=1)
def git_sha() -> str:
    """The commit of the source tree (suffix ``-dirty`` with uncommitted changes to code or configs, CODE_PATHS);
    ``unknown`` outside git.

    ``AGRPO_GIT_SHA`` overrides it where the checkout's ``.git`` is not the tree's (copies sent to a cluster)."""
    if os.environ.get("AGRPO_GIT_SHA"):
        return os.environ["AGRPO_GIT_SHA"]
    root = Path(agrpo.__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@lru_cache(maxsize=1)
def device_name(device: str = "cpu") -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return "cuda: " + torch.cuda.get_device_name(torch.device(device))
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {name}"


def versions() -> dict[str, str]:
    return {"python": platform.python_version(), "torch": torch.__version__, "agrpo": agrpo.__version__,
            "numpy": np.__version__}


def seed_everything(seed: int, threads: int | None = None) -> torch.Generator:
    """Seed python, numpy and torch; fix the CPU thread count (reductions depend on it); return a torch Generator."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    return torch.Generator().manual_seed(seed)
