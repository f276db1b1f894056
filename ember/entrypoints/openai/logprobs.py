"""The engine's logprobs (per token: {token id -> Logprob}, holding the chosen token and the
top-k) in the two OpenAI shapes: the legacy completions one (parallel lists) and chat's.
`as_ids` (vLLM's return_tokens_as_token_ids): each token written "token_id:N", which stays
unambiguous where a token is not valid UTF-8 on its own."""
from __future__ import annotations

from ember.entrypoints.openai.protocol import (ChatTokenLogprob, ChatTokenLogprobs, CompletionLogprobs)
from ember.outputs import Logprob

# JSON has no -inf; vLLM clamps the same way.
_FLOOR = -9999.0


def _value(lp: Logprob) -> float:
    return max(lp.logprob, _FLOOR)


def _token_text(token_id: int, entry: dict[int, Logprob] | None, tokenizer, as_ids: bool = False) -> str:
    if as_ids:
        return f"token_id:{token_id}"
    if entry is not None and token_id in entry and entry[token_id].decoded_token is not None:
        return entry[token_id].decoded_token
    return tokenizer.decode([token_id])


def completion_logprobs(token_ids: list[int], entries: list[dict[int, Logprob] | None], tokenizer,
                        text_offset: int = 0, into: CompletionLogprobs | None = None,
                        as_ids: bool = False) -> CompletionLogprobs:
    """Append `token_ids` (with their entries; None where nothing precedes a prompt's first
    token) to `into`; offsets count characters from `text_offset`."""
    out = into if into is not None else CompletionLogprobs()
    offset = out.text_offset[-1] + len(out.tokens[-1]) if out.tokens else text_offset
    for token_id, entry in zip(token_ids, entries):
        token = _token_text(token_id, entry, tokenizer, as_ids)
        out.tokens.append(token)
        out.text_offset.append(offset)
        offset += len(token)
        if entry is None:
            out.token_logprobs.append(None)
            out.top_logprobs.append(None)
        else:
            out.token_logprobs.append(_value(entry[token_id]))
            out.top_logprobs.append({_token_text(t, entry, tokenizer, as_ids): _value(lp) for t, lp in entry.items()})
    return out


def chat_logprobs(token_ids: list[int], entries: list[dict[int, Logprob]], num_top: int,
                  tokenizer, as_ids: bool = False) -> list[ChatTokenLogprobs]:
    content = []
    for token_id, entry in zip(token_ids, entries):
        top = sorted((t for t, lp in entry.items() if lp.rank is not None and lp.rank <= num_top),
                     key=lambda t: entry[t].rank)
        content.append(ChatTokenLogprobs(
            **_chat_token(token_id, entry, tokenizer, as_ids),
            top_logprobs=[ChatTokenLogprob(**_chat_token(t, entry, tokenizer, as_ids)) for t in top]))
    return content


def _chat_token(token_id: int, entry: dict[int, Logprob], tokenizer, as_ids: bool = False) -> dict:
    text = _token_text(token_id, entry, tokenizer, as_ids)
    return {"token": text, "logprob": _value(entry[token_id]), "bytes": list(text.encode())}


def prompt_logprobs_json(entries: list[dict[int, Logprob] | None] | None) -> list | None:
    """vLLM's `prompt_logprobs` field: per prompt token, None or {token id: Logprob fields}."""
    if entries is None:
        return None
    return [None if e is None else {t: {"logprob": _value(lp), "rank": lp.rank, "decoded_token": lp.decoded_token}
                                    for t, lp in e.items()} for e in entries]
