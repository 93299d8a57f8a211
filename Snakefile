# AGRPO vs diffu-GRPO harness. `snakemake --cores all` runs the tiny profile end to end; another profile with
# `--configfile workflow/config/<profile>.yaml` (read alone, not merged over tiny.yaml: workflow/rules/common.smk).
# Rules are thin: every step calls the `agrpo` CLI; the logic lives in the package.
from snakemake.utils import min_version

min_version("9.0")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/eval.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        REPORT_FILES,
