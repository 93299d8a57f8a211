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


# The learning-rate sweep (agrpo/sweep.py): `snakemake sweep`; sweep.learning_rates says what runs.
SWEEP_RUNS = sweep_runs(CFG)


rule sweep_run:
    input:
        model=lambda wc: f"{start_model(parse_run(wc.run)[0])}/config.json",
        prompts=expand(f"{WORK}/data/{{task}}/rl.jsonl", task=TASKS),
    output:
        log=f"{WORK}/sweep/{{run}}/train_log.jsonl",
    log:
        f"{LOGS}/sweep/{{run}}.log",
    wildcard_constraints:
        run="|".join(SWEEP_RUNS) or "NO_SWEEP",
    threads: CFG.threads
    resources:
        gpu=CFG.launch.gpus,
    params:
        # the method's training config and the sweep's budget (not the other methods' rates)
        key=lambda wc: f"{rule_key(CFG, 'train', method=parse_run(wc.run)[0])}-{sweep_iterations(CFG)}",
        method=lambda wc: parse_run(wc.run)[0],
        lr=lambda wc: parse_run(wc.run)[1],
        seed=lambda wc: parse_run(wc.run)[2],
        start=lambda wc: start_model(parse_run(wc.run)[0]),
    shell:
        "agrpo sweep-run --config {RESOLVED} --method {params.method} --lr {params.lr} --seed {params.seed} "
        "--base {params.start} --out {WORK}/sweep/{wildcards.run} --quiet > {log} 2>&1"


rule sweep:
    input:
        [f"{WORK}/sweep/{r}/train_log.jsonl" for r in SWEEP_RUNS],
    output:
        [f"{RESULTS}/sweep/{f}" for f in ("sweep.md", "sweep.csv", "sweep_curves.csv", "sweep.png")],
    log:
        f"{LOGS}/sweep.log",
    params:
        key=rule_key(CFG, "sweep"),
    shell:
        "agrpo sweep-report --config {RESOLVED} --runs {WORK}/sweep --out {RESULTS}/sweep > {log} 2>&1"
