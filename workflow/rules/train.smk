rule pretrain:
    input:
        expand(f"{WORK}/data/{{task}}/train.jsonl", task=TASKS),
    output:
        f"{BASE}/model.safetensors",
    log:
        f"{LOGS}/pretrain.log",
    threads: CFG.pretrain.threads
    params:
        cfg=RESOLVED,
    shell:
        "agrpo pretrain --config {params.cfg} --out {BASE} > {log} 2>&1"


rule sft:
    input:
        f"{BASE}/model.safetensors",
    output:
        f"{WORK}/models/sft-{{method}}/model.safetensors",
    log:
        f"{LOGS}/sft/{{method}}.log",
    threads: CFG.threads
    params:
        cfg=RESOLVED,
    shell:
        "agrpo sft --config {params.cfg} --method {wildcards.method} --base {BASE} "
        "--out {WORK}/models/sft-{wildcards.method} > {log} 2>&1"


rule train:
    input:
        lambda wc: f"{start_model(run_method(wc.run))}/model.safetensors",
    output:
        [f"{WORK}/runs/{{run}}/step{s}/model.safetensors" for s in STEPS],
        log=f"{WORK}/runs/{{run}}/train_log.jsonl",
    log:
        f"{LOGS}/train/{{run}}.log",
    threads: CFG.threads
    params:
        cfg=RESOLVED,
        method=lambda wc: run_method(wc.run),
        seed=lambda wc: run_seed(wc.run),
        start=lambda wc: start_model(run_method(wc.run)),
    shell:
        "agrpo train --config {params.cfg} --method {params.method} --seed {params.seed} "
        "--base {params.start} --out {WORK}/runs/{wildcards.run} > {log} 2>&1"
