rule report:
    input:
        ALL_CELLS,
        TRAIN_LOGS,
        HEADROOM,
        SWEEP_SUMMARY,
        [f"{WORK}/data/{t}/test.jsonl" for t in TASKS],  # the failure categories read the test examples
    output:
        REPORT_FILES,
    log:
        f"{LOGS}/report.log",
    params:
        key=rule_key(CFG, "report"),
    shell:
        "agrpo report --config {RESOLVED} --cells {WORK}/eval --runs {WORK}/runs --out {RESULTS} "
        + (f"--headroom {HEADROOM[0]} " if HEADROOM else "") + "> {log} 2>&1"
