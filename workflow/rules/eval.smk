rule eval:
    input:
        model_ready,
        f"{WORK}/data/{{task}}/test.jsonl",
    output:
        [f"{WORK}/eval/{{run}}/step{{step}}/{{task}}/{c}/metrics.json" for c in CELLS],
    log:
        f"{LOGS}/eval/{{run}}/step{{step}}/{{task}}.log",
    threads: CFG.threads
    resources:
        gpu=CFG.launch.eval_gpus,
    params:
        key=rule_key(CFG, "eval"),
        model=model_dir,
        method=lambda wc: run_method(wc.run),
        seed=lambda wc: run_seed(wc.run),
        train_task=lambda wc: f"--train-task {run_task(wc.run)}" if run_task(wc.run) else "",
    shell:
        "agrpo eval --config {RESOLVED} --model {params.model} --method {params.method} "
        "--run-seed {params.seed} --train-step {wildcards.step} --task {wildcards.task} {params.train_task} "
        "--out {WORK}/eval/{wildcards.run}/step{wildcards.step}/{wildcards.task} > {log} 2>&1"


rule headroom:  # what the base model leaves RL to learn (agrpo/headroom.py); in the report when eval.headroom_items > 0
    input:
        f"{BASE}/config.json",
        expand(f"{WORK}/data/{{task}}/{{split}}.jsonl", task=TASKS, split=["rl", "test"]),
    output:
        f"{WORK}/headroom/base.json",
    log:
        f"{LOGS}/headroom.log",
    threads: CFG.threads
    resources:
        gpu=CFG.launch.eval_gpus,
    params:
        key=rule_key(CFG, "headroom"),
        n=CFG.eval.headroom_items or 128,
    shell:
        "agrpo headroom --config {RESOLVED} --model {BASE} --out {output} --items {params.n} --quiet > {log} 2>&1"
