"""CUDA graphs of the sampler's denoising step (``cuda_graphs: true``): each step's kernels launched as one
replayed graph instead of hundreds of Python-issued launches.

A step (``agrpo.denoise.denoise_step``: network pass, candidate transform, Gumbel-max, confidence ranking,
commit) reads nothing back to the host, so it can be captured. Per model and sampler, ``StepGraphs`` keeps:
- static buffers (``BlockRows``) per shape: the rows of a block are copied in at the block's start and out at
  its end. After an EOS early exit the rows still decoding are padded (with copies of one of them, whose results
  are dropped) up to a multiple of ⌈B/8⌉, so a batch needs at most 8 shapes;
- one graph per (shape, k = tokens committed by the step, first step of a block or not, and with a KV cache the
  block's offset, which fixes the cached lengths). The first use of a key runs the step eagerly (the real step,
  and the warm-up capture needs) and captures it; later uses replay it.
The random numbers are drawn outside the graph, from the sampler's generator, into the static buffers: the same
stream as eager sampling, so graphs and eager steps give identical tokens (tests/test_cuda_graphs.py, on a GPU).
The weights are read in place: optimizer steps (which update parameters in place) are seen by later replays;
under autocast the graphs cast them afresh at each replay (capture runs with autocast's cast cache off).
"""

from __future__ import annotations

import dataclasses
import weakref
from contextlib import nullcontext

import torch

from agrpo.denoise import BlockRows, denoise_step, draw_noise
from agrpo.sampling import SamplerConfig

_PER_MODEL: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def no_autocast_cache():
    """Under autocast, capture with its weight-cast cache off: a cached cast would be a tensor outside the graph,
    freed when the autocast region ends and stale after an optimizer step (torch's make_graphed_callables rule)."""
    if not torch.is_autocast_enabled("cuda"):
        return nullcontext()
    return torch.autocast("cuda", dtype=torch.get_autocast_dtype("cuda"), cache_enabled=False)


class StepGraphs:
    @classmethod
    def of(cls, model, cfg: SamplerConfig) -> "StepGraphs":
        """The graphs of this model under this sampler (the transform's constants are baked into the graphs)."""
        per_sampler = _PER_MODEL.setdefault(model, {})
        key = tuple(sorted(vars(cfg).items()))
        if key not in per_sampler:
            per_sampler[key] = cls()
        return per_sampler[key]

    def __init__(self):
        self.buffers: dict[tuple, BlockRows] = {}
        self.graphs: dict[tuple, torch.cuda.CUDAGraph] = {}
        self.caches: dict[tuple, object] = {}  # (buffer key, block offset) -> KVCache the first-step graph fills
        self.pool = None
        self.captures = 0  # graphs captured (a benchmark reports it)

    def load(self, batch: BlockRows, rows_idx: torch.Tensor | None) -> BlockRows:
        """Copy the block's rows of ``batch`` (all, or ``rows_idx``) into the static buffers of their padded shape."""
        b = batch.x.shape[0]
        n = b if rows_idx is None else rows_idx.numel()
        quantum = -(-b // 8)
        size = min(b, -(-n // quantum) * quantum)
        key = (size, batch.x.shape[1], *(getattr(batch, f) is None for f in BlockRows.GATHERED))
        rows = self.buffers.get(key)
        if rows is None:
            empty = lambda t: None if t is None else torch.empty((size, *t.shape[1:]), dtype=t.dtype, device=t.device)  # noqa: E731
            rows = dataclasses.replace(batch, **{f: empty(getattr(batch, f)) for f in BlockRows.GATHERED},
                                       pos=torch.empty_like(batch.pos), cols=torch.empty_like(batch.cols),
                                       step=torch.zeros((), dtype=torch.long, device=batch.x.device))
            rows.key = key
            self.buffers[key] = rows
        idx = torch.arange(b, device=batch.x.device) if rows_idx is None else rows_idx
        if size > n:
            idx = torch.cat([idx, idx[:1].expand(size - n)])
        for f in BlockRows.GATHERED:
            if getattr(rows, f) is not None:
                torch.index_select(getattr(batch, f), 0, idx, out=getattr(rows, f))
        rows.pos.copy_(batch.pos)
        rows.cols.copy_(batch.cols)
        rows.live = None
        return rows

    def store(self, batch: BlockRows, rows: BlockRows, rows_idx: torch.Tensor | None, n: int) -> None:
        """Write what the steps changed in the first n rows back into ``batch``."""
        for f in BlockRows.WRITTEN:
            dst, src = getattr(batch, f), getattr(rows, f)
            if dst is None:
                continue
            if rows_idx is None:
                dst.copy_(src[:n])
            else:
                dst[rows_idx] = src[:n]

    def step(self, model, rows: BlockRows, cfg: SamplerConfig, k: int, record: bool, first: bool, lo: int, p: int,
             step: int, n: int, vocab: int, generator, live: torch.Tensor | None = None, step_fn=denoise_step) -> None:
        """One denoising step of the first n rows: draw its noise, then replay its graph (capturing it first).
        ``step_fn``: ``denoise_step`` or its compiled form (``compile_step``), what the graph captures."""
        rows.step.fill_(step)
        draw_noise(rows, n, vocab, cfg, generator)
        if live is not None:
            if getattr(rows, "live_buffer", None) is None:
                rows.live_buffer = torch.zeros(rows.x.shape[0], dtype=torch.bool, device=rows.x.device)
            rows.live_buffer.zero_()
            rows.live_buffer[:n] = live
            rows.live = rows.live_buffer
        cached = cfg.cache != "none"
        gkey = (rows.key, k, first, lo if cached else None, live is not None)
        graph = self.graphs.get(gkey)
        if graph is not None:
            graph.replay()
            if cached and first:
                rows.cache = self.caches[(rows.key, lo)]
            return
        with no_autocast_cache():  # the real step, eagerly, in the capture's autocast state (a compiled step's
            step_fn(model, rows, cfg, k, record, first, lo, p)  # guards include it: no recompile inside the capture)
        eager_cache = rows.cache  # (a first step's; a later step's capture leaves rows.cache alone)
        graph = torch.cuda.CUDAGraph()
        with no_autocast_cache(), torch.cuda.graph(graph, pool=self.pool):
            step_fn(model, rows, cfg, k, record, first, lo, p)
        if cached and first:  # the graph's cache (filled by its replays) takes the eager step's values now
            for graph_kv, eager_kv in zip(rows.cache.layers, eager_cache.layers):
                for g, e in zip(graph_kv, eager_kv):
                    g.copy_(e)
            self.caches[(rows.key, lo)] = rows.cache
        self.pool = self.pool if self.pool is not None else graph.pool()
        self.graphs[gkey] = graph
        self.captures += 1


def clear(model=None) -> None:
    """Drop the graphs (and their memory) of one model, or of every model."""
    if model is None:
        _PER_MODEL.clear()
    else:
        _PER_MODEL.pop(model, None)
