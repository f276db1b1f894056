"""Checkpoints that try to run code: Python files named by `auto_map` (with --trust-remote-code
given), a chat template reaching for Python internals, and weights in a pickle whose loading
would run a command. Each leaves a marker file if any of it ever runs."""
from __future__ import annotations

import json
import os
import shutil

ESCAPE_TEMPLATE = ("{{ cycler.__init__.__globals__.os.system('touch MARKER') }}"
                   "{{ ''.__class__.__mro__[1].__subclasses__() }}")


def _edit_json(path: str, **changes) -> None:
    with open(path) as f:
        data = json.load(f)
    data.update(changes)
    with open(path, "w") as f:
        json.dump(data, f)


def remote_code_checkpoint(source: str, directory: str, marker: str) -> str:
    """`source` plus checkpoint code that would create `marker`, named by auto_map in
    config.json and tokenizer_config.json, and a chat template that tries to escape Jinja."""
    shutil.copytree(source, directory)
    code = f"import pathlib\npathlib.Path({marker!r}).write_text('checkpoint code ran')\n"
    for name in ("evil_config.py", "evil_model.py", "evil_tokenizer.py"):
        with open(os.path.join(directory, name), "w") as f:
            f.write(code)
    _edit_json(os.path.join(directory, "config.json"),
               auto_map={"AutoConfig": "evil_config.EvilConfig", "AutoModelForCausalLM": "evil_model.EvilModel"})
    _edit_json(os.path.join(directory, "tokenizer_config.json"),
               auto_map={"AutoTokenizer": ["evil_tokenizer.EvilTokenizer", None]})
    template = ESCAPE_TEMPLATE.replace("MARKER", marker)
    jinja = os.path.join(directory, "chat_template.jinja")
    if os.path.exists(jinja):
        with open(jinja, "w") as f:
            f.write(template)
    else:
        _edit_json(os.path.join(directory, "tokenizer_config.json"), chat_template=template)
    return directory


class _RunsACommand:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def pickle_checkpoint(source: str, directory: str, marker: str) -> str:
    """`source` with its weights replaced by a PyTorch .bin whose unpickling runs a command."""
    import torch

    shutil.copytree(source, directory, ignore=shutil.ignore_patterns("*.safetensors"))
    torch.save({"model.embed_tokens.weight": _RunsACommand(marker)}, os.path.join(directory, "pytorch_model.bin"))
    return directory
