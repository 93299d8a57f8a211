rule data:
    output:
        train=f"{WORK}/data/{{task}}/train.jsonl",
        rl=f"{WORK}/data/{{task}}/rl.jsonl",
        test=f"{WORK}/data/{{task}}/test.jsonl",
    log:
        f"{LOGS}/data/{{task}}.log",
    params:
        key=lambda wc: rule_key(CFG, "data", task=wc.task),
    shell:
        "agrpo data --config {RESOLVED} --task {wildcards.task} --quiet > {log} 2>&1"
