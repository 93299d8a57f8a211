import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_packaging_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = project["dependencies"] + project["optional-dependencies"]["test"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_deps = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pins = sorted(d for d in pip_deps if re.match(r"^[A-Za-z]", d))
    assert conda_pins == sorted(pinned)
    assert all("==" in d for d in pinned), "every dependency is pinned to one version"
