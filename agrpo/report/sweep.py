"""The learning-rate sweep in the report: a sweep's summary directory (``sweep.md`` and ``sweep.png``, as ``agrpo
sweep-report`` or ``benchmarks/small_headroom.py --summarise`` write them; ``sweep_test.md`` too when the sweep's
checkpoints were scored on the test set) becomes the report's "Learning-rate sweep" section, so the rates the
final runs use are shown beside the runs, with the curves they were chosen from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class SweepSummary:
    where: str          # the directory as the config or command line gave it
    table: str          # sweep.md without its title
    test: str | None    # sweep_test.md without its title, if present
    png: bytes          # sweep.png


def _body(text: str) -> str:
    """A summary file's text without its '# ' title line, its '## ' headings one level down."""
    lines = text.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join("#" + line if line.startswith("## ") else line for line in lines).strip()


def load_sweep_summary(directory: str | Path, key: str = "sweep.report_dir") -> SweepSummary:
    """Read a sweep's summary directory; a missing directory or file is an error naming `key` and the path."""
    d = Path(directory)
    missing = [f for f in ("sweep.md", "sweep.png") if not (d / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{key}: {directory!s} has no {' or '.join(missing)} (write it with `agrpo "
                                "sweep-report` or `benchmarks/small_headroom.py --summarise`)")
    test = d / "sweep_test.md"
    return SweepSummary(str(directory), _body((d / "sweep.md").read_text()),
                        _body(test.read_text()) if test.is_file() else None, (d / "sweep.png").read_bytes())


def sweep_section(sweep: SweepSummary | None) -> list[str]:
    if sweep is None:
        return []
    out = ["## Learning-rate sweep", "",
           f"From `{sweep.where}`: every swept method at each rate for the same rollout batches, from the same "
           "start model. The rates of the runs above are the profile's `methods.<m>.learning_rate`: `chosen` "
           "marks the sweep's choice per method, and the last column whether the profile used that rate when the "
           "summary was written.", "", sweep.table, "",
           "![reward per rollout batch in the sweep, by method and rate](plots/sweep.png)", ""]
    if sweep.test:
        out += ["### The sweep's checkpoints on the test set", "", sweep.test, ""]
    return out
