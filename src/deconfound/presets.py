"""The size presets, in one table: everything a preset sets, with the reason beside each value.

A preset names a generator, the reward backbone, the SFT / RL / DPO settings (fields of
`train.SFTSettings`, `RLSettings`, `DPOSettings`; unset fields keep the dataclass default), the evaluation
size, and the seconds per unit used for progress weights and the first ETA. `runs.preset_config` builds a
run's `TrainConfig` from it; `SFTSettings.for_preset` and its siblings read their block. Plain values only:
this module imports nothing, so every layer can read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

POLICY_MODEL = "@policy"  # a reward model_path meaning "the run's starting policy" (SFT model, else the base)
# The smoke preset's system prompt: the paper's editor prompt is ~110 tokens with the tiny model's
# tokenizer (a 96-token limit cut every completion away, and it made each SFT/RL step 3x longer).
SMOKE_SYSTEM_PROMPT = "Write a headline for this news story."


@dataclass(frozen=True)
class Preset:
    """One size preset (see the module docstring)."""

    name: str
    label: str
    model: str
    expected: str
    reward_backbone: str
    sft: dict
    rl: dict
    dpo: dict
    cost: dict  # seconds per SFT/RL/DPO step and per generated text on the preset's reference hardware
    reward_model_path: str | None = None
    n_eval_prompts: int = 300
    gen_seeds: tuple[int, ...] = (0,)
    gen_max_new_tokens: int = 24
    gen_batch_size: int = 32  # prompts per generation batch (evaluation and DPO pairs)
    dpo_prompts: int = 200
    auto_threads: bool = True  # False: leave torch's threads alone (a GPU machine)
    precision: str = "auto"  # bf16 where the hardware computes it natively (models.resolve_precision)
    notes: tuple[str, ...] = field(default=())


PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        name="smoke", label="Smoke test", model="tiny",
        expected="a tiny model built from scratch; the whole pipeline in a few minutes on 2 CPU cores "
                 "(checks that everything works; its headlines are not meant to be good)",
        reward_backbone="tfidf",  # seconds per reward model; enough to rank headlines of the simulation
        sft=dict(
            use_lora=False,          # a random-initialised model: train every weight
            learning_rate=2e-3,      # from scratch a high rate is needed to become fluent in 220 steps
            batch_size=32,
            max_steps=220,           # about one pass over the 20k demo rows' SFT split; keeps the reproduction < 15 min
            max_length=128,          # the short system prompt + 16 context words + the headline fit
            max_context_words=16,    # short prompts: each token costs the tiny model as much as the headline
            system_prompt=SMOKE_SYSTEM_PROMPT,
            warmup_ratio=0.1,
            save_steps=100,
        ),
        rl=dict(
            use_lora=False,
            # The highest rate of bench/results/rl_rate_sweep.md at which every RL model kept SFT's length
            # and repetition while the oracle-reward model clearly beat SFT (3e-4 began repeating "Win",
            # 5e-4 collapsed; 1e-4 barely moved the models).
            learning_rate=2e-4,
            max_steps=40,            # fits all seven methods in the 15-minute reproduction on 2 cores
            prompts_per_step=4,
            num_generations=4,
            max_completion_length=16,  # headlines are short
            save_steps=20,
        ),
        dpo=dict(use_lora=False, learning_rate=5e-5, max_steps=40, batch_size=8, max_length=128),
        cost={"sft": 0.35, "rl": 0.7, "dpo": 0.4, "gen": 1 / 300},
        dpo_prompts=100,  # sampled pairs for a tiny model: 100 prompts x 4 texts is enough signal
        precision="fp32",  # the tiny model's 256-wide matmuls gain nothing from bf16; its settings were tuned in fp32
    ),
    "cpu": Preset(
        name="cpu", label="Laptop demo", model="smollm2-135m",
        # Measured by `bench/reproduce_paper.py --size cpu` (bench/results/paper_cpu.md, 2026-12-02, 2 cores).
        expected="SmolLM2-135M-Instruct with LoRA; measured 36 minutes for all seven reward methods on 2 CPU cores "
                 "(SFT 2.5 min, about 3 min of RL per method, 10 min of generations); about 15 minutes for two "
                 "methods",
        reward_backbone="minilm",  # the paper's Upworthy set-up: sentence embeddings + an L2 head
        sft=dict(
            use_lora=True,           # an instruct model: a short LoRA SFT adapts the style
            learning_rate=2e-4,      # paper (App. D) with LoRA
            batch_size=8,            # paper
            max_steps=40,            # the instruct model writes headlines already: 320 rows adapt the house style
            max_length=128,          # the short instruction + 30 context words + the headline
            max_context_words=30,    # the prompt's tokens are most of a step's cost (bench/results/training.md)
            system_prompt=SMOKE_SYSTEM_PROMPT,  # 71-token prompts instead of the editor prompt's 123
            save_steps=20,
        ),
        rl=dict(
            use_lora=True,
            # At 1e-4 24 steps did not move the model (paper_cpu.md: oracle 0.534 vs SFT 0.527, p = 0.65); at 5e-4 the
            # oracle- and deconfounded-reward models rose to 0.582 and 0.596 with SFT's fluency (rl_rate_sweep_cpu.md,
            # the smoke sweep's rule). Higher rates are untested.
            learning_rate=5e-4,
            max_steps=24,
            prompts_per_step=4,
            num_generations=4,
            max_completion_length=20,  # headlines are ~14 tokens (max 23 in the demo)
            save_steps=8,
            # Sample-and-rank gained as much quality from the same SFT model as GRPO with the oracle reward in
            # 54% of GRPO's time (7.3 vs 13.7 s per step; bench/results/rl_algorithms.md); 'grpo' stays a setting.
            algorithm="sample_rank",
            rounds=3,                # sample_rank: 3 rounds of 8 DPO steps
        ),
        dpo=dict(use_lora=True, learning_rate=5e-5, max_steps=30, batch_size=4, max_length=160, save_steps=10),
        # Measured on 2 AMD EPYC cores in bf16 (bench/results/rl_algorithms.md and paper_cpu.md, 2026-12-02): seconds
        # per SFT step (5.0 and 3.7 in two runs), per GRPO/RLOO step ("rl") and per sample_rank step (its sampling
        # included), per generated headline (model loading included), and to prepare the base model. DPO's is an
        # estimate (not measured with SmolLM2). The first ETA of the paper_cpu run was 7% above its real duration.
        cost={"sft": 4.3, "rl": 13.5, "sample_rank": 7.3, "dpo": 4.0, "gen": 0.22, "base": 20.0},
    ),
    "gpu": Preset(
        name="gpu", label="Paper scale", model="smollm2-135m",
        expected="the paper's settings (one SFT epoch, 10k RL prompts, 3,000 test prompts); hours on a GPU",
        reward_backbone="finetune",  # the paper's MIND set-up: a regression head fine-tuned on the LM
        reward_model_path=POLICY_MODEL,
        # Sized for ONE large GPU (80-141 GB: H100/H200), SmolLM2-135M or -360M in bf16 (pick_device). The paper's
        # batches (8) came from a smaller card; at 8 short rows a step of a model this small is bound by kernel
        # launches, not arithmetic, so the batches below are 2-4x the paper's and everything else is the paper's.
        # The memory figures are estimates (activations and KV cache of SmolLM2-360M, no gradient checkpointing),
        # not measurements: bench/gpu_check.sh reports the measured peaks per stage (bench/results/gpu.md).
        # Paper (App. D): one epoch, lr 2e-4, LoRA r16 α32 dropout 0.1, 512 tokens; batch 32 instead of 8 runs the
        # epoch in a quarter of the steps, about 20 GB of activations at 32 rows of ≤ 512 tokens.
        sft=dict(use_lora=True, learning_rate=2e-4, batch_size=32, max_steps=-1, epochs=1.0, max_length=512,
                 max_context_words=None, save_steps=200),
        # Paper scale: 10k RL prompts, one pass, LoRA on the policy. 16 prompts x 8 completions = 128 sequences of
        # ≤ 32 new tokens per step (the paper-scale setting before: 64): GRPO's cost is sampling, which a large GPU
        # runs at nearly the same time per step for twice the rows; 625 steps for the 10k prompts.
        rl=dict(use_lora=True, learning_rate=1e-5, max_steps=-1, epochs=1.0, prompts_per_step=16,
                num_generations=8, max_completion_length=32, max_prompts=10_000, save_steps=100),
        # Paper (App. B): β 0.1, LoRA rank 8, up to 4 epochs; 16 pairs per step (paper 8: chosen + rejected +
        # the reference model's pass fit easily at 768 tokens).
        dpo=dict(use_lora=True, learning_rate=5e-5, max_steps=-1, epochs=2.0, batch_size=16, max_length=768,
                 save_steps=200),
        cost={"sft": 0.3, "rl": 1.5, "dpo": 0.3, "gen": 1 / 150},  # first-ETA guesses; the ETA corrects itself
        n_eval_prompts=3000,        # the paper's 3,000 held-out prompts
        gen_seeds=(0, 1, 2),        # across-seed tests (App. B)
        gen_max_new_tokens=32,
        # 256 prompts per batch: 3,000 prompts x 3 seeds per model in 36 batches instead of 282; the KV cache of
        # 256 rows x ~300 tokens is about 3 GB for SmolLM2-360M in bf16 (estimate). Several processes split them.
        gen_batch_size=256,
        auto_threads=False,
    ),
}
PRESET_NAMES = tuple(PRESETS)
# Seconds to train one reward model per backbone (2 CPU cores): progress weights and the first ETA only.
# The first reward model of a run featurises the texts (MiniLM: 15 s measured for 20k rows); with a frozen backbone
# the methods after it reuse those features (REUSED_EMBEDDINGS_SHARE of its cost).
REWARD_COST = {"tfidf": 2.0, "minilm": 15.0, "generator": 60.0, "finetune": 120.0}
REUSED_EMBEDDINGS_SHARE = 0.1
