"""lm-evaluation-harness adapter: our dLLMs as lm-eval model ``agrpo``, and task YAMLs for our protocols.

    agrpo lm-eval --model agrpo --model_args pretrained=work/tiny/runs/agrpo-seed0/step60,gen_length=40,block_length=8,steps=40 \\
            --tasks agrpo_tiny_arith --metadata '{"data_dir": "work/tiny/data"}' [--batch_size 16] [--device cpu]

``agrpo lm-eval`` is lm-eval's own CLI with this module imported (lm-eval has no plugin discovery for models:
``lm_eval --model agrpo`` alone cannot find it), our task directory added to ``--include_path``, and ``--device``
defaulting to cpu when there is no GPU (lm-eval's own default is cuda:0). Every lm-eval flag passes through.

``generate_until`` runs our blockwise sampler (``agrpo.sampling.generate``) with the sampler settings given as
``model_args`` (gen_length, block_length, steps, remasking, temperature, eos_early_exit, seed, batch_size); the
canvas length is ``gen_length`` (lm-eval's ``max_gen_toks`` is not used: a masked diffusion model decodes a fixed
canvas), and the text is cut at the first ``until`` string. ``loglikelihood`` is LLaDA's Monte Carlo estimate
(``get_log_likelihood.py``): for l ~ U{1..L} (stratified over ``mc_num`` samples) mask l of the L continuation
tokens and average −(L/l) Σ_masked log p_θ; it is a lower bound (ELBO) on log p(continuation | context), and
``is_greedy`` is reported as False. ``loglikelihood_rolling`` is not implemented (as in LLaDA).
"""

from __future__ import annotations

from pathlib import Path

import torch
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from tqdm import tqdm

from agrpo.model import load_model
from agrpo.sampling import SamplerConfig, generate, left_pad

TASK_DIR = str(Path(__file__).resolve().parent / "lmeval_tasks")


@register_model("agrpo")
class AgrpoLM(LM):
    def __init__(self, pretrained: str, gen_length: int = 256, block_length: int = 32, steps: int = 128,
                 remasking: str = "low_confidence", temperature: float = 0.0, eos_early_exit: bool = False,
                 batch_size: int = 8, mc_num: int = 128, seed: int = 0, device: str = "cpu", **kwargs):
        super().__init__()
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: CUDA is not available here; pass --device cpu (lm-eval's CLI "
                             "defaults to cuda:0; `agrpo lm-eval` picks cpu when there is no GPU)")
        self.model = load_model(pretrained).to(device).eval()
        self.tok = self.model.tokenizer
        self.sampler = SamplerConfig(int(gen_length), int(block_length), int(steps), remasking, float(temperature),
                                     eos_early_exit=bool(eos_early_exit))
        self.sampler.validate()
        self.batch_size = 8 if str(batch_size).startswith("auto") else int(batch_size)  # no auto-tuning here
        self.mc_num, self.device_ = int(mc_num), device
        self.generator = torch.Generator(device=device).manual_seed(int(seed))

    @classmethod
    def create_from_arg_obj(cls, arg_dict: dict, additional_config: dict | None = None):
        """lm-eval's constructor: ``--model_args`` plus the CLI's ``--batch_size`` / ``--device``. A key given in
        both is taken from ``--model_args`` (lm-eval's own merge would pass it twice and fail)."""
        extra = {k: v for k, v in (additional_config or {}).items() if v is not None and k in ("batch_size", "device")}
        return cls(**{**extra, **arg_dict})

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None):
        from lm_eval import utils

        return cls.create_from_arg_obj(utils.simple_parse_args_string(arg_string), additional_config)

    @torch.no_grad()
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        out = []
        for lo in tqdm(range(0, len(requests), self.batch_size), disable=disable_tqdm, desc="agrpo generate"):
            chunk = requests[lo:lo + self.batch_size]
            ids, mask = left_pad([self.tok.encode(r.args[0]) for r in chunk], self.tok.pad_id)
            sample = generate(self.model, ids.to(self.device_), mask.to(self.device_), self.sampler, self.generator,
                              record=False)
            for r, c in zip(chunk, sample.completion_ids):
                text = self.tok.decode(c.tolist())
                until = r.args[1].get("until", []) if len(r.args) > 1 else []
                for stop in [until] if isinstance(until, str) else until:
                    if stop and stop in text:
                        text = text[:text.index(stop)]
                out.append(text)
        return out

    @torch.no_grad()
    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        return [(self._mc_loglikelihood(*r.args), False) for r in tqdm(requests, disable=disable_tqdm, desc="agrpo ll")]

    def _mc_loglikelihood(self, context: str, continuation: str) -> float:
        prompt = torch.tensor(self.tok.encode(context), dtype=torch.long)
        target = torch.tensor(self.tok.encode(continuation), dtype=torch.long)
        L, n = len(target), self.mc_num
        if L == 0:
            return 0.0
        g = torch.Generator().manual_seed(0)
        k = int(torch.randint(1, L + 1, (1,), generator=g))
        counts = [((round(k + i * L / n) - 1) % L) + 1 for i in range(n)]  # LLaDA's stratified mask counts
        total = 0.0
        for lo in range(0, n, self.batch_size):
            rows = counts[lo:lo + self.batch_size]
            noisy = target.repeat(len(rows), 1)
            for j, l in enumerate(rows):
                noisy[j, torch.randperm(L, generator=g)[:l]] = self.tok.mask_id
            ids = torch.cat([prompt.repeat(len(rows), 1), noisy], 1).to(self.device_)
            logits = self.model(ids, torch.ones_like(ids))[:, len(prompt):].float().cpu()
            logp = logits.log_softmax(-1).gather(-1, target.repeat(len(rows), 1)[..., None]).squeeze(-1)
            masked = noisy == self.tok.mask_id
            for j, l in enumerate(rows):
                total += (logp[j][masked[j]].sum() * L / l).item()
        return total / n

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError("loglikelihood_rolling is not defined for masked diffusion models here (as LLaDA)")


def lm_eval_cli(argv: list[str]) -> int:
    """``agrpo lm-eval …``: run lm-eval's CLI with model ``agrpo`` registered and our task YAMLs on the path."""
    import sys

    from lm_eval.__main__ import cli_evaluate

    args = list(argv)
    if args and args[0] not in ("run", "ls", "validate", "-h", "--help"):
        args = ["run", *args]  # lm-eval's default subcommand
    if args and args[0] in ("run", "ls", "validate"):
        if "--include_path" in args:
            i = args.index("--include_path") + 1
            args[i] = f"{args[i]}:{TASK_DIR}"
        else:
            args += ["--include_path", TASK_DIR]
        if args[0] == "run" and "--device" not in args:
            args += ["--device", "cuda:0" if torch.cuda.is_available() else "cpu"]
    old, sys.argv = sys.argv, ["lm-eval", *args]
    try:
        cli_evaluate()
    except SystemExit as e:
        return int(e.code or 0)
    finally:
        sys.argv = old
    return 0
