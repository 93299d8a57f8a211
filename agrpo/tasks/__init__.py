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


def cell_task(name: str, protocol: str) -> Task:
    """The task an eval cell was judged with: a real task under the cell's protocol; a synthetic one with its
    defaults (its knobs decide which problems are drawn, never how they are judged)."""
    return get_task(name, protocol=protocol) if name in REAL_TASKS else get_task(name)


__all__ = ["TASKS", "Task", "Verdict", "cell_task", "get_task"]
