"""The trainer's per-iteration log, readable while a run is going.

Each rollout batch's row is appended to ``train_log.live.jsonl`` as soon as the batch ends (``tail -f`` it, or
plot it), and mirrored to TensorBoard under ``tensorboard/`` when ``logging.tensorboard`` is on. When the run
completes the whole log is written atomically to ``train_log.jsonl`` (the file Snakemake waits for and the
report reads) and the live file is removed. Resume-safe: a rerun rewrites the live file with the rows its
resume state holds, and TensorBoard drops the events logged after that point (``purge_step``).
"""

from __future__ import annotations

import json
from pathlib import Path

from agrpo.io import atomic_write_text, write_jsonl

LIVE, FINAL = "train_log.live.jsonl", "train_log.jsonl"


class TrainLog:
    def __init__(self, out_dir: str | Path, rows: list[dict], tensorboard: bool = False, enabled: bool = True):
        """``rows``: the rows already logged (a resumed run's); ``enabled`` is false on data-parallel ranks > 0."""
        self.out_dir, self.rows, self.enabled = Path(out_dir), rows, enabled
        self.writer = None
        if not enabled:
            return
        atomic_write_text(self.out_dir / LIVE, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=len(rows) + 1)

    def append(self, row: dict) -> None:
        self.rows.append(row)
        if not self.enabled:
            return
        with (self.out_dir / LIVE).open("a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
        if self.writer is not None:
            for key, value in row.items():
                if key != "iteration" and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"train/{key}", value, row["iteration"])
            self.writer.flush()

    def finish(self) -> None:
        if not self.enabled:
            return
        write_jsonl(self.out_dir / FINAL, self.rows)
        (self.out_dir / LIVE).unlink(missing_ok=True)
        if self.writer is not None:
            self.writer.close()
