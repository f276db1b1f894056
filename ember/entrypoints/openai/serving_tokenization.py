"""POST /tokenize and /detokenize, in vLLM's shapes."""
from __future__ import annotations

from ember.entrypoints.openai.errors import OpenAIError
from ember.entrypoints.openai.protocol import (DetokenizeRequest, DetokenizeResponse, TokenizeRequest,
                                               TokenizeResponse)
from ember.entrypoints.openai.serving import ServingContext
from ember.entrypoints.openai.serving_chat import render_messages


def tokenize(ctx: ServingContext, request: TokenizeRequest) -> TokenizeResponse:
    ctx.check_model(request.model)
    if request.messages is not None:
        # A rendered chat already holds its special tokens.
        text, add_special = render_messages(ctx, request, ctx.chat_template), False
    else:
        text, add_special = request.prompt, True
    if request.add_special_tokens is not None:
        add_special = request.add_special_tokens
    ids = ctx.tokenizer.encode(text, add_special_tokens=add_special)
    strs = ctx.tokenizer.convert_ids_to_tokens(ids) if request.return_token_strs else None
    return TokenizeResponse(count=len(ids), max_model_len=ctx.max_model_len, tokens=ids, token_strs=strs)


def detokenize(ctx: ServingContext, request: DetokenizeRequest) -> DetokenizeResponse:
    ctx.check_model(request.model)
    vocab = len(ctx.tokenizer)
    if any(not 0 <= t < vocab for t in request.tokens):
        raise OpenAIError(f"Token ids must be in [0, {vocab}).", param="tokens")
    return DetokenizeResponse(prompt=ctx.tokenizer.decode(request.tokens))
