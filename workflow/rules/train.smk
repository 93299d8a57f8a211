rule pretrain:  # the base model: pretrained from scratch (tiny) or linked (llada: model.name_or_path)
    input:
        expand(f"{WORK}/data/{{task}}/train.jsonl", task=TASKS),
    output:
        f"{BASE}/config.json",
    log:
        f"{LOGS}/pretrain.log",
    threads: CFG.pretrain.threads
    params:
        key=rule_key(CFG, "base"),  # the config this output depends on: an edit of it reruns the rule
    shell:
        "agrpo base --config {RESOLVED} --out {BASE} > {log} 2>&1"


rule sft:
    input:
        f"{BASE}/config.json",
    output:
        f"{WORK}/models/sft-{{method}}/config.json",
    log:
        f"{LOGS}/sft/{{method}}.log",
    threads: CFG.threads
    resources:
        gpu=min(CFG.launch.gpus, 1),
    params:
        key=lambda wc: rule_key(CFG, "sft", method=wc.method),
    shell:
        "agrpo sft --config {RESOLVED} --method {wildcards.method} --base {BASE} "
        "--out {WORK}/models/sft-{wildcards.method} > {log} 2>&1"


rule train:
    input:
        model=lambda wc: f"{start_model(run_method(wc.run))}/config.json",
        prompts=expand(f"{WORK}/data/{{task}}/rl.jsonl", task=TASKS),  # the RL prompts (data.rl_size)
    output:
        # written last, when every checkpoint exists. Only this file is declared: a rerun after a crash must not
        # delete the checkpoints and resume state the trainer continues from (agrpo/rl/resume.py).
        log=f"{WORK}/runs/{{run}}/train_log.jsonl",
    log:
        f"{LOGS}/train/{{run}}.log",
    threads: CFG.threads
    resources:
        gpu=CFG.launch.gpus,
    params:
        key=lambda wc: rule_key(CFG, "train", method=run_method(wc.run)),
        launch=TRAIN_LAUNCH,
        method=lambda wc: run_method(wc.run),
        seed=lambda wc: run_seed(wc.run),
        start=lambda wc: start_model(run_method(wc.run)),
        task=lambda wc: f"--task {run_task(wc.run)}" if run_task(wc.run) else "",
    shell:
        "{params.launch} train --config {RESOLVED} --method {params.method} --seed {params.seed} {params.task} "
        "--base {params.start} --out {WORK}/runs/{wildcards.run} > {log} 2>&1"
