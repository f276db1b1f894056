"""xgrammar, loaded on first use: the tokenizer's vocabulary as xgrammar sees it, and one
compiler whose cache compiles each distinct schema, regex, choice list or grammar once."""
from __future__ import annotations

import json
import logging
import threading
from typing import Callable
import time

from ember.structured.params import GuidedDecodingParams

logger = logging.getLogger(__name__)

# The compiler's cache of compiled grammars (least recently used ones go first).
_CACHE_LIMIT_BYTES = 512 * 1024 * 1024


def _ebnf_literal(text: str) -> str:
    """`text` as an EBNF string literal."""
    return json.dumps(text, ensure_ascii=False)


def choice_grammar(choices: list[str]) -> str:
    return "root ::= " + " | ".join(_ebnf_literal(c) for c in choices)


def literal_grammar(text: str) -> str:
    return "root ::= " + _ebnf_literal(text)


def check_json_schema(schema: dict) -> None:
    """A schema that is not a valid JSON Schema is the client's error (400). `jsonschema`
    checks it against its metaschema when installed; xgrammar refuses what it cannot follow."""
    try:
        import jsonschema
    except ImportError:  # optional: xgrammar's own checks still apply
        return
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as e:
        raise ValueError(f"Invalid JSON schema: {e.message}") from None


class GrammarBackend:
    """Built lazily, from any thread (the server compiles off the event loop). `get_tokenizer()`
    is called on first use: the engine core loads its tokenizer only if a constrained request
    comes."""

    def __init__(self, get_tokenizer: Callable[[], object | None], vocab_size: int, eos_token_ids: list[int]):
        self._get_tokenizer = get_tokenizer
        self.tokenizer = None
        self.vocab_size = vocab_size
        self.eos_token_ids = list(eos_token_ids)
        self._lock = threading.Lock()
        self._compiler = None
        self.tokenizer_info = None

    def _ready(self):
        with self._lock:
            if self._compiler is None:
                self.tokenizer = self._get_tokenizer()
                if self.tokenizer is None:
                    raise ValueError("Structured output needs the tokenizer; this engine has none.")
                import xgrammar

                start = time.perf_counter()
                self.tokenizer_info = _tokenizer_info(xgrammar, self.tokenizer, self.vocab_size, self.eos_token_ids)
                self._compiler = xgrammar.GrammarCompiler(self.tokenizer_info, max_threads=2,
                                                          cache_limit_bytes=_CACHE_LIMIT_BYTES)
                logger.info("Structured output (xgrammar) ready in %.2f s", time.perf_counter() - start)
            return self._compiler

    def compile(self, spec: GuidedDecodingParams):
        """The CompiledGrammar for a request's constraint; ValueError when it is invalid."""
        compiler = self._ready()
        kind = spec.kind
        try:
            if kind == "json":
                check_json_schema(spec.json)
                return compiler.compile_json_schema(json.dumps(spec.json), any_whitespace=False)
            if kind == "json_object":  # any JSON object (OpenAI's json_object mode)
                return compiler.compile_json_schema('{"type": "object"}', any_whitespace=False, strict_mode=False)
            if kind == "regex":
                return compiler.compile_regex(spec.regex)
            if kind == "choice":
                return compiler.compile_grammar(choice_grammar(spec.choice))
            return _compile_ebnf_or_lark(compiler, spec.grammar)
        except ValueError:
            raise
        except Exception as e:  # noqa: BLE001 - xgrammar reports bad input as RuntimeError
            raise ValueError(f"Invalid {_NAMES[kind]}: {_first_line(e)}") from None

    def token_bytes(self, token_id: int) -> bytes:
        vocab = self.tokenizer_info.decoded_vocab
        return vocab[token_id] if 0 <= token_id < len(vocab) else b""


_NAMES = {"json": "JSON schema", "json_object": "JSON grammar", "regex": "regex", "choice": "choice",
          "grammar": "grammar"}


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    # xgrammar's messages start with "[time] /path/file.cc:line: ".
    if text.startswith("[") and ": " in text:
        text = text.split(": ", 1)[1]
    return text.splitlines()[0] if text else type(error).__name__


def _compile_ebnf_or_lark(compiler, grammar: str):
    try:
        return compiler.compile_grammar(grammar)
    except Exception as ebnf_error:  # noqa: BLE001
        try:
            return compiler.compile_lark(grammar)
        except Exception:  # noqa: BLE001 - report the EBNF error, the documented syntax
            raise ebnf_error from None


def _tokenizer_info(xgrammar, tokenizer, vocab_size: int, eos_token_ids: list[int]):
    size = max(vocab_size, len(tokenizer))
    stop = eos_token_ids or None
    try:
        return xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=size, stop_token_ids=stop)
    except Exception:  # noqa: BLE001 - not a Hugging Face tokenizer (Qwen v1's tiktoken one)
        # Its get_vocab() spells tokens as GPT-2 byte-level strings, as tokenizer.json does.
        encoded = [""] * size
        for token, i in tokenizer.get_vocab().items():
            if 0 <= i < size:
                encoded[i] = token
        return xgrammar.TokenizerInfo(encoded, xgrammar.VocabType.BYTE_LEVEL, vocab_size=size,
                                      stop_token_ids=stop)
