"""Tokenizers (Hugging Face, including those inside GGUF files, and Qwen v1's tiktoken one) and
chat templates."""
from __future__ import annotations

import os

from ember.gguf_tokenizer import load_gguf_tokenizer
from ember.models.hf_config import split_gguf
from ember.qwen_v1_tokenizer import VOCAB_FILE as QWEN_V1_VOCAB_FILE, QWenTokenizer


def load_tokenizer(path: str, trust_remote_code: bool = False, revision: str | None = None):
    from transformers import AutoTokenizer

    directory, gguf_file = split_gguf(path)
    if (gguf_file is None and os.path.isfile(os.path.join(directory, QWEN_V1_VOCAB_FILE))
            and not os.path.isfile(os.path.join(directory, "tokenizer.json"))):
        # Qwen v1: its tokenizer class is checkpoint code, which Ember never runs.
        return QWenTokenizer.from_directory(directory)
    if gguf_file is not None:
        return load_gguf_tokenizer(os.path.join(directory, gguf_file))
    return AutoTokenizer.from_pretrained(directory, trust_remote_code=False)


def read_chat_template(template: str | None) -> str | None:
    """--chat-template takes a file path or the template text itself."""
    if template is None:
        return None
    if os.path.isfile(template):
        with open(template, encoding="utf-8") as f:
            return f.read()
    if "{" not in template and (template.endswith(".jinja") or os.sep in template):
        raise ValueError(f"chat template file {template!r} does not exist")
    return template


def use_template_sandbox(tokenizer, sandbox) -> None:
    """From now on render this tokenizer's chat templates in `sandbox` (a
    ember.chat_template_sandbox.TemplateSandbox: a child process with time, memory and output
    limits), as the server does."""
    tokenizer.ember_template_sandbox = sandbox


def render_chat(tokenizer, messages: list[dict], chat_template: str | None = None,
                add_generation_prompt: bool = True, continue_final_message: bool = False,
                tools: list[dict] | None = None, chat_template_kwargs: dict | None = None) -> str:
    """Render a conversation to the prompt text, through the tokenizer's (or the given) Jinja
    template, which transformers evaluates in an immutable sandbox: in this process, or in the
    tokenizer's TemplateSandbox process when it has one (use_template_sandbox)."""
    template = chat_template or getattr(tokenizer, "chat_template", None)
    if template is None:
        raise ValueError("The model has no chat template; pass one with --chat-template "
                         "(or chat_template=...).")
    sandbox = getattr(tokenizer, "ember_template_sandbox", None)
    if sandbox is not None:
        return sandbox.render(tokenizer, messages, template, add_generation_prompt and not continue_final_message,
                              continue_final_message, tools, chat_template_kwargs)
    return tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, tools=tools,
        add_generation_prompt=add_generation_prompt and not continue_final_message,
        continue_final_message=continue_final_message, **(chat_template_kwargs or {}))
