"""The user-side regression check: does a fresh run reproduce a published copy of the profile's results?

A profile may name ``published_dir`` (the committed copy, e.g. ``results/published/tiny``); the report then
matches its cells with the published ``summary.csv`` on the cell keys and says how many have the same accuracy
and correct count, which differ (the largest differences first) and which exist on one side only. Numbers are
bit-identical on the CPU that made the published copy; another CPU can round differently (see
tests/regression/README.md), so differences are reported, never hidden or failed on.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from agrpo.report.cells import cell_keys


def compare_with_published(summary: pd.DataFrame, published_dir: Path) -> dict | None:
    """None when ``published_dir`` has no summary.csv; else counts and the differing cells."""
    path = Path(published_dir) / "summary.csv"
    if not path.is_file():
        return None
    pub = pd.read_csv(path)
    keys = [k for k in cell_keys(summary) if k in pub.columns]
    ours = summary[keys + ["accuracy", "n_correct"]].astype({k: str for k in keys})
    theirs = pub[keys + ["accuracy", "n_correct", "git_sha"]].astype({k: str for k in keys})
    both = ours.merge(theirs, on=keys, how="outer", suffixes=("", "_pub"), indicator=True)
    matched = both[both["_merge"] == "both"]
    same = (matched["accuracy"] - matched["accuracy_pub"]).abs().le(1e-12) & matched["n_correct"].eq(matched["n_correct_pub"])
    diff = matched[~same].assign(delta=lambda d: d["accuracy"] - d["accuracy_pub"])
    diff = diff.reindex(diff["delta"].abs().sort_values(ascending=False).index)
    return {"published": str(published_dir), "published_git_sha": sorted(set(pub["git_sha"].astype(str))),
            "matched": len(matched), "equal": int(same.sum()), "differ": diff[keys + ["accuracy", "accuracy_pub"]],
            "only_ours": int((both["_merge"] == "left_only").sum()),
            "only_published": int((both["_merge"] == "right_only").sum())}


def reproduction_lines(result: dict | None) -> list[str]:
    """The report's "Reproduction check" section (nothing when there is no published copy)."""
    if result is None:
        return []
    head = (f"## Reproduction check against `{result['published']}` (published at "
            f"{', '.join(result['published_git_sha'])})")
    n, eq = result["matched"], result["equal"]
    lines = [head, ""]
    if n and eq == n and not result["only_ours"] and not result["only_published"]:
        lines.append(f"**Reproduced:** all {n} cells have the published accuracy and correct count.")
    else:
        lines.append(f"**{eq} of {n} matched cells** have the published accuracy and correct count; "
                     f"{n - eq} differ, {result['only_ours']} are only in this run and {result['only_published']} "
                     "only in the published copy. Numbers are bit-identical on the CPU that made the published "
                     "copy; another CPU can round differently and flip greedy decisions.")
        if len(result["differ"]):
            lines += ["", "Largest differences (accuracy here vs published):", ""]
            for r in result["differ"].head(5).itertuples():
                lines.append(f"- {r.method} {r.checkpoint} {r.task} L{r.gen_length} {r.steps} steps: "
                             f"{100 * r.accuracy:.1f} vs {100 * r.accuracy_pub:.1f}")
    return lines + [""]
