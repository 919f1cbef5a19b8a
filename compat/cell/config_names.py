"""The KTOConfig field names the adapter translates or drops, and the config_fields probe watches.

Its own module so trainer specs can name the renames without importing the whole adapter.
"""

from __future__ import annotations

# (current, older) spellings of the same config field: transformers' TrainingArguments
# renamed these. Names only, and only names published cells measured on some KTOConfig
# (their config_fields probe; tests/unit/test_adapter_tables.py holds this table to it),
# so a typo is never "translated": it raises TypeError as KTOConfig does.
CONFIG_RENAMES: tuple[tuple[str, str], ...] = (
    ("eval_strategy", "evaluation_strategy"),
    ("use_cpu", "no_cuda"),
    ("activation_checkpointing", "gradient_checkpointing"),
)
# Fields some KTOConfig releases have and others dropped (measured the same way): on a pair
# without one it is dropped with a warning.
CONFIG_REMOVABLE: tuple[str, ...] = (
    "max_prompt_length", "max_completion_length", "generate_during_eval", "is_encoder_decoder",
    "label_pad_token_id", "padding_value", "truncation_mode", "ref_model_init_kwargs", "overwrite_output_dir",
    "logging_dir", "push_to_hub_token", "per_gpu_train_batch_size", "use_mps_device",
)
# Fields the config_fields probe watches but no published cell has measured absent: until one
# does, a pair without them raises TypeError like KTOConfig instead of silently dropping them.
CONFIG_WATCH_ONLY: tuple[str, ...] = (
    "model_adapter_name", "ref_adapter_name", "precompute_ref_log_probs", "max_length",
)
CONFIG_WATCH: tuple[str, ...] = tuple(sorted({n for pair in CONFIG_RENAMES for n in pair} | set(CONFIG_REMOVABLE)
                                             | set(CONFIG_WATCH_ONLY)))
