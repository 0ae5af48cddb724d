"""The generator: where a model folder comes from, how it is loaded and prompted, and how it writes text.

Owns: the shipped SmolLM2 (GGUF converted once and cached), tiny models built from a config, local folders
and cached Hugging Face ids (`sources`); loading models and LoRA adapters on the right device (`loading`);
the chat prompt with the paper's editor instruction (`prompts`); seeded batch generation (`generation`);
which process of several this is, their barrier and gather (`distributed`).
May import: `errors`, `paths`. torch/transformers are imported inside the functions that need them, so
importing this package is cheap. Below `rewards` (the generator and fine-tuned reward backbones load
models here) and `train`.
"""

from .distributed import (all_gather_objects, barrier, init_distributed, is_main_process, joined, local_world_size,
                          world)
from .generation import GenerationResult, first_line, generate, generate_with_stats, row_seed
from .loading import (ADAPTER_BASE_FILE, PRECISIONS, adapter_base_path, cpu_has_bf16, is_adapter_folder, load_generator,
                      load_tokenizer, lora_config, pick_device, record_adapter_base, resolve_precision, save_merged,
                      set_torch_threads)
from .perplexity import perplexity
from .prompts import (CHATML_TEMPLATE, EDITOR_SYSTEM_PROMPT, EDITOR_USER_TEMPLATE, PLAIN_TEMPLATE, PROMPT_FILE,
                      SHORT_EDITOR_PROMPT, WHOLE_MESSAGE_TEMPLATE, PromptStyle, build_messages, ensure_chat_template, format_prompt,
                      truncate_words)
from .sources import (DEFAULT_MODEL, GGUF_FILE, SMOLLM2_CACHE_NAME, ModelSpec, build_tiny_model, build_tiny_tokenizer,
                      convert_gguf_generator, gguf_folder, resolve_model_path, tiny_config)
