"""Offline tiny model, tokenizer and data for in-cell KTO runs.

Cell code: runs inside every TRL/transformers pair of the matrix. Nothing here
touches the network - the tokenizer is assembled from the ``tokenizers``
library, the model from a ``LlamaConfig`` with seeded random weights, and the
rows are written out in code - so a cell measures the pair, not the hub.
"""

from __future__ import annotations

from typing import Any

from compat.cell.templates import CHATML

__all__ = ["SPECIAL_TOKENS", "config_values", "make_config", "make_model", "make_tokenizer", "supported_fields"]

BOS, EOS, PAD = "<bos>", "<eos>", "<pad>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, IM_START, IM_END)

def _byte_level_backend() -> Any:
    """A ``tokenizers.Tokenizer`` with one token per byte plus the specials.

    No merges: every byte maps to its own id, so any text round-trips and the
    vocabulary is tiny and fixed (261 ids) on every ``tokenizers`` release.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for char in sorted(alphabet):
        vocab[char] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    return backend


def make_tokenizer(chat_template: str | None = None) -> Any:
    """A transformers fast tokenizer over :func:`_byte_level_backend`.

    ``PreTrainedTokenizerFast`` is the fast wrapper on 4.x and an alias of
    ``TokenizersBackend`` on 5.x; both accept ``tokenizer_object``. The default
    template is Qwen1.5's ChatML (the kto-mix-14k SFT model's); pass
    ``chat_template`` to test another one.
    """
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=_byte_level_backend(),
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=[IM_START, IM_END],
        model_max_length=512,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = CHATML if chat_template is None else chat_template
    return tok


def make_model(
    seed: int = 0,
    hidden_size: int = 64,
    layers: int = 2,
    vocab_size: int | None = None,
    tokenizer: Any = None,
) -> Any:
    """A seeded random tiny ``LlamaForCausalLM`` (~0.1M params with defaults).

    Llama because every transformers release in the matrix ships it and KTO's
    example model is a Llama-family decoder. Special token ids come from the
    tokenizer so generation/padding code paths see consistent ids.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tokenizer if tokenizer is not None else make_tokenizer()
    config = LlamaConfig(
        vocab_size=vocab_size if vocab_size is not None else len(tok),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.eval()
    return model


def config_values(output_dir: str, *, cpu: bool, batch: int, steps: int, learning_rate: float,
                  checkpointing: bool = False, **recipe: Any) -> dict[str, Any]:
    """What an in-cell run wants from a trainer config, under every spelling a release may use;
    :func:`supported_fields` keeps the ones the installed config class has."""
    return {
        "output_dir": output_dir, "per_device_train_batch_size": batch, "gradient_accumulation_steps": 1,
        "max_steps": steps, "learning_rate": learning_rate, "bf16": True,
        "use_cpu": cpu, "no_cuda": cpu,  # older spelling; only used where use_cpu is absent
        "report_to": "none", "save_strategy": "no", "eval_strategy": "no", "evaluation_strategy": "no",
        "logging_strategy": "steps", "logging_steps": 1,
        "logging_nan_inf_filter": False,  # else a NaN loss is logged as the running mean
        "disable_tqdm": True, "remove_unused_columns": False,
        "activation_checkpointing": checkpointing,
        "gradient_checkpointing": checkpointing,  # older spelling; only used where the new one is absent
        "dataset_num_proc": None, "dataloader_num_workers": 0, "seed": 0, "data_seed": 0,
        **recipe,
    }


def supported_fields(config_cls: type, values: dict[str, Any], aliases: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """Keep the fields this config's constructor takes; of two spellings (current, older) keep only the current."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(config_cls) if f.init}
    kept = {k: v for k, v in values.items() if k in names}
    for new, old in aliases:
        if new in kept:
            kept.pop(old, None)
    return kept


def make_config(config_cls: type, values: dict[str, Any], aliases: tuple[tuple[str, str], ...]) -> Any:
    return config_cls(**supported_fields(config_cls, values, aliases))
