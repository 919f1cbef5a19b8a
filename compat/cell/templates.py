"""Chat templates that behave like real model templates, written here.

The legacy KTO formatter's failures depend on the chat template: some
templates raise on shapes they do not support, others render them and
silently drop content. Downloading real tokenizers would make cells depend on
the hub, so each template below reproduces the *behaviour* of a model family's
template (its markup, its ``raise_exception`` calls, its silent drops) in
Jinja written for this project. They are plain strings: host code may import
this module.

``tokenizer.apply_chat_template`` renders them with ``messages``,
``add_generation_prompt``, the special tokens (``bos_token``, ``eos_token``)
and ``raise_exception`` (which raises ``jinja2.TemplateError``) in scope.
"""

from __future__ import annotations

__all__ = ["CHATML", "GEMMA", "LLAMA2", "TEMPLATES", "ZEPHYR"]

# Qwen1.5 (the kto-mix-14k SFT model's family): ChatML turns, a default system
# turn injected when the conversation does not start with one, any role name
# accepted verbatim. Permissive: it never raises on roles or order.
CHATML = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Llama-2 / Mistral-instruct: an optional leading system message folded into
# the first [INST], then strict user/assistant alternation starting with the
# user, enforced with raise_exception. Any other role raises. A system message
# with no user turn after it renders nothing (the real template's silent drop).
LLAMA2 = (
    "{% if messages[0]['role'] == 'system' %}"
    "{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}"
    "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{{ bos_token }}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if message['role'] == 'user' %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{{ '[INST] <<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] + ' [/INST]' }}"
    "{% else %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ ' ' + message['content'] + ' ' + eos_token }}"
    "{% else %}"
    "{{ raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}"
    "{% endif %}"
    "{% endfor %}"
)

# Gemma: no system role at all (raise_exception), user/assistant alternation
# enforced, the assistant is called "model", and content is trimmed.
GEMMA = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)

# Zephyr: permissive on order, but it only knows user/system/assistant and
# renders nothing for any other role - a `tool` message vanishes without an
# error, the silent-loss failure mode.
ZEPHYR = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + eos_token + '\n' }}"
    "{% elif message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + eos_token + '\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endif %}"
    "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
    "{% endfor %}"
)

TEMPLATES: dict[str, str] = {
    "chatml": CHATML,
    "llama2": LLAMA2,
    "gemma": GEMMA,
    "zephyr": ZEPHYR,
}
