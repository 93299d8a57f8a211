# One eval job per checkpoint, over every task it is evaluated on (the model loaded once): the base model and mixed
# runs on all data.tasks (rule eval), a per-task run (method-task-seedN) on its task (rule eval_per_task_run: the
# same rule with that run's inputs, outputs and --task).
rule eval:
    input:
        model_ready,
        expand(f"{WORK}/data/{{task}}/test.jsonl", task=TASKS),
    output:
        [f"{WORK}/eval/{{run}}/step{{step}}/{t}/{c}/metrics.json" for t in TASKS for c in CELLS],
    log:
        f"{LOGS}/eval/{{run}}/step{{step}}.log",
    wildcard_constraints:
        run=r"base|[A-Za-z0-9_]+-seed\d+",
    threads: CFG.threads
    resources:
        gpu=CFG.launch.eval_gpus,
    params:
        key=rule_key(CFG, "eval"),
        model=model_dir,
        method=lambda wc: run_method(wc.run),
        seed=lambda wc: run_seed(wc.run),
        tasks=" ".join(f"--task {t}" for t in TASKS),
        train_task="",
    shell:
        "agrpo eval --config {RESOLVED} --model {params.model} --method {params.method} --run-seed {params.seed} "
        "--train-step {wildcards.step} {params.tasks} {params.train_task} "
        "--out {WORK}/eval/{wildcards.run}/step{wildcards.step} > {log} 2>&1"


use rule eval as eval_per_task_run with:
    input:
        model_ready,
        f"{WORK}/data/{{task}}/test.jsonl",
    output:
        [f"{WORK}/eval/{{run}}/step{{step}}/{{task}}/{c}/metrics.json" for c in CELLS],
    log:
        f"{LOGS}/eval/{{run}}/step{{step}}/{{task}}.log",
    wildcard_constraints:
        run=r"[A-Za-z0-9_]+-[A-Za-z0-9_]+-seed\d+",
    params:
        tasks=lambda wc: f"--task {wc.task}",
        train_task=lambda wc: f"--train-task {run_task(wc.run)}",


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
