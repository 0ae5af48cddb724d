"""Where an RL step's time goes, and what the hardware could do at best (used by bench_training.py).

- `StepProfile` wraps the phases of trl's GRPOTrainer at class level while it is active, so our `run_rl` and a
  bare GRPOTrainer are timed by the same clock: generation (`_generate_single_turn`), reward scoring
  (`_calculate_rewards`), log-probs without gradients (the reference model's, `_get_per_token_logps_and_entropies`
  under no_grad), the policy's forward (the same method with gradients) and backward (`accelerator.backward`),
  and the optimiser step (callback events around `optimizer.step`).
- `matmul_gflops` measures the machine's matmul rate in a dtype, on the shapes of the model's own layers.
- `step_flops` counts the FLOPs a GRPO step with a LoRA policy must do: generation (prefill + one token at a
  time with the KV cache), the reference forward, and the policy's forward + backward to the activations
  (frozen weights need no weight gradients). floor = FLOPs / measured rate.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict

PHASES = ("generation", "reward", "reference_logprobs", "policy_forward", "policy_backward", "optimizer")


class StepProfile:
    """Seconds per phase per optimiser step of every GRPOTrainer that trains while the profile is active."""

    def __init__(self):
        self.steps: list[dict] = []
        self._current = defaultdict(float)
        self._patched = []

    def _add(self, phase: str, seconds: float) -> None:
        self._current[phase] += seconds

    def _wrap(self, cls, name: str, phase_of):
        original = getattr(cls, name)
        profile = self

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                phase = phase_of(*args, **kwargs)
                if phase:
                    profile._add(phase, time.perf_counter() - start)

        setattr(cls, name, timed)
        self._patched.append((cls, name, original))

    @contextlib.contextmanager
    def active(self):
        """Patch the trainer classes for the duration of the block."""
        import torch
        from accelerate import Accelerator
        from trl import GRPOTrainer
        self._wrap(GRPOTrainer, "_generate_single_turn", lambda *a, **k: "generation")
        self._wrap(GRPOTrainer, "_calculate_rewards", lambda *a, **k: "reward")
        self._wrap(GRPOTrainer, "_get_per_token_logps_and_entropies",
                   lambda *a, **k: "policy_forward" if torch.is_grad_enabled() else "reference_logprobs")
        self._wrap(Accelerator, "backward", lambda *a, **k: "policy_backward")
        init, profile = GRPOTrainer.__init__, self

        def init_with_callback(trainer, *args, **kwargs):  # every trainer made while active reports its steps
            init(trainer, *args, **kwargs)
            trainer.add_callback(profile.callback())

        GRPOTrainer.__init__ = init_with_callback
        self._patched.append((GRPOTrainer, "__init__", init))
        try:
            yield self
        finally:
            for cls, name, original in reversed(self._patched):
                setattr(cls, name, original)
            self._patched.clear()

    def callback(self):
        """A TrainerCallback that closes each step's record and times the optimiser."""
        from transformers import TrainerCallback
        profile = self

        class PhaseCallback(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                profile._current = defaultdict(float)
                profile._step_start = time.perf_counter()

            def on_pre_optimizer_step(self, args, state, control, **kwargs):
                profile._opt_start = time.perf_counter()

            def on_optimizer_step(self, args, state, control, **kwargs):
                profile._add("optimizer", time.perf_counter() - profile._opt_start)

            def on_step_end(self, args, state, control, **kwargs):
                record = dict(profile._current)
                record["total"] = time.perf_counter() - profile._step_start
                record["other"] = record["total"] - sum(record.get(p, 0.0) for p in PHASES)
                profile.steps.append(record)

        return PhaseCallback()



def matmul_gflops(dtype_name: str, m: int, k: int, n: int, seconds: float = 2.0) -> float:
    """GFLOPS of an (m×k)·(k×n) matmul in `dtype_name` ('fp32'/'bf16'), repeated for about `seconds`."""
    import torch
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    for _ in range(3):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2.0 * m * k * n * count / (time.perf_counter() - start) / 1e9


def model_shapes(config) -> list[tuple[int, int]]:
    """(in, out) of every matmul a token passes through in a Llama-shaped causal LM, the LM head included."""
    hidden, inter = config.hidden_size, config.intermediate_size
    heads, kv_heads = config.num_attention_heads, getattr(config, "num_key_value_heads", config.num_attention_heads)
    head_dim = hidden // heads
    per_layer = [(hidden, hidden), (hidden, kv_heads * head_dim), (hidden, kv_heads * head_dim), (hidden, hidden),
                 (hidden, inter), (hidden, inter), (inter, hidden)]
    return per_layer * config.num_hidden_layers + [(hidden, config.vocab_size)]


def forward_flops_per_token(config) -> float:
    """2 · (weights a token is multiplied by): the forward FLOPs of one token (attention scores are small for
    headline-length sequences and left out, which lowers the floor)."""
    return 2.0 * sum(i * o for i, o in model_shapes(config))


def step_flops(config, sequences: int, prompt_tokens: float, completion_tokens: float) -> dict:
    """FLOPs of one GRPO step with a LoRA policy and a reference model (β > 0), by phase."""
    f = forward_flops_per_token(config)
    total_tokens = sequences * (prompt_tokens + completion_tokens)
    return {"generation": f * sequences * (prompt_tokens + completion_tokens),  # prefill + cached decode
            "reference_logprobs": f * total_tokens,
            "policy_forward": f * total_tokens,
            "policy_backward": f * total_tokens}  # activation gradients only: the base weights are frozen


def weighted_gflops(config, dtype_name: str, tokens: int = 1024) -> float:
    """The matmul rate on the model's own layer shapes (each shape weighted by its FLOPs)."""
    shapes = sorted(set(model_shapes(config)))
    rates = {s: matmul_gflops(dtype_name, tokens, s[0], s[1], seconds=0.5) for s in shapes}
    flops = {s: sum(i * o for i, o in model_shapes(config) if (i, o) == s) for s in shapes}
    # time = Σ flops/rate; rate = Σ flops / time
    return sum(flops.values()) / sum(flops[s] / rates[s] for s in shapes)
