rule report:
    input:
        ALL_CELLS,
    output:
        REPORT_FILES,
    log:
        f"{LOGS}/report.log",
    params:
        cfg=RESOLVED,
    shell:
        "agrpo report --config {params.cfg} --cells {WORK}/eval --out {RESULTS} > {log} 2>&1"
