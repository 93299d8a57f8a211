"""Output files get the mode the umask allows (collaborators on a shared filesystem can read results)."""

import os

import pytest

from agrpo.io import atomic_write_json, atomic_write_text, write_jsonl
from agrpo.model.tiny import init_tiny
from agrpo.model.tokenizer import CharTokenizer


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "report.md", "x")
        atomic_write_json(tmp_path / "metrics.json", {"a": 1})
        write_jsonl(tmp_path / "generations.jsonl", [{"a": 1}])
        init_tiny(CharTokenizer(), d_model=16, n_layers=1, n_heads=2, d_ff=32).save_pretrained(tmp_path / "model")
    finally:
        os.umask(old)
    files = [tmp_path / n for n in ("report.md", "metrics.json", "generations.jsonl")]
    files += list((tmp_path / "model").iterdir())
    assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == {f.name: oct(mode) for f in files}
    assert not list(tmp_path.glob(".*.tmp"))  # still atomic: no temporaries left behind
