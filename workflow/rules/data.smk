rule data:
    output:
        train=f"{WORK}/data/{{task}}/train.jsonl",
        test=f"{WORK}/data/{{task}}/test.jsonl",
    log:
        f"{LOGS}/data/{{task}}.log",
    params:
        cfg=RESOLVED,
    shell:
        "agrpo data --config {params.cfg} --task {wildcards.task} --quiet > {log} 2>&1"
