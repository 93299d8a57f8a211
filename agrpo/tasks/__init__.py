"""Task registry: the synthetic tiny tasks and the real ones (each real task takes ``protocol=`` d1 | agrpo)."""

from agrpo.tasks.base import Task, Verdict
from agrpo.tasks.real import REAL_TASKS
from agrpo.tasks.tiny_arith import TinyArith
from agrpo.tasks.tiny_countdown import TinyCountdown
from agrpo.tasks.tiny_sudoku import TinySudoku

TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (TinyArith, TinyCountdown, TinySudoku)} | REAL_TASKS


def get_task(name: str, **options) -> Task:
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r} (known: {', '.join(sorted(TASKS))})")
    return TASKS[name](**options)


__all__ = ["TASKS", "Task", "Verdict", "get_task"]
