"""Beam search as vLLM does it: outside the engine, on its public interface. Each step asks the
engine for one token per live beam with the 2 * beam_width most likely next tokens' logprobs
(as Hugging Face does), extends every beam by each candidate, and keeps the beam_width best by
length-penalised cumulative logprob; a candidate that is an end-of-sequence token completes
its beam. Prefix caching makes each step's prompt (the beam so far) cost one new token.

The search is independent of how the steps run: LLM.beam_search batches every beam of every
prompt into one generate() call per step; the server runs them through AsyncLLM."""
from __future__ import annotations

from dataclasses import dataclass, field

from ember.outputs import CompletionOutput, Logprob, RequestOutput
from ember.sampling_params import BeamSearchParams

__all__ = ["BeamSearchParams", "BeamSearchSequence", "BeamSearchOutput", "BeamSearchInstance",
           "get_beam_search_score", "run_offline"]


@dataclass
class BeamSearchSequence:
    """One beam: its tokens (the prompt's, then the generated ones), the logprobs entry of
    each generated token, and the sum of their logprobs. `text` (the generated part) is
    filled in once the search ends."""
    tokens: list[int]
    logprobs: list[dict[int, Logprob]] = field(default_factory=list)
    cum_logprob: float = 0.0
    text: str | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class BeamSearchOutput:
    """The best beams of one prompt, best first (at most beam_width of them)."""
    sequences: list[BeamSearchSequence]


def get_beam_search_score(tokens: list[int], cumulative_logprob: float, eos_token_id: int | set[int] | None,
                          length_penalty: float = 1.0) -> float:
    """Cumulative logprob over length ** length_penalty (Hugging Face's and vLLM's), the length
    counting the prompt and not a final end-of-sequence token."""
    eos = eos_token_id if isinstance(eos_token_id, set) else {eos_token_id}
    length = len(tokens) - (1 if tokens and tokens[-1] in eos else 0)
    return cumulative_logprob / (max(length, 1) ** length_penalty)


class BeamSearchInstance:
    """The search over one prompt."""

    def __init__(self, prompt_token_ids: list[int], params: BeamSearchParams, eos_token_ids: set[int],
                 max_model_len: int):
        self.prompt_token_ids = list(prompt_token_ids)
        self.prompt_len = len(prompt_token_ids)
        self.params = params
        self.eos = eos_token_ids
        self.max_model_len = max_model_len
        self.beams = [BeamSearchSequence(tokens=list(prompt_token_ids))]
        self.completed: list[BeamSearchSequence] = []
        self.steps = 0

    def _score(self, beam: BeamSearchSequence) -> float:
        return get_beam_search_score(beam.tokens, beam.cum_logprob, self.eos, self.params.length_penalty)

    @property
    def done(self) -> bool:
        return not self.beams

    def advance(self, entries: list[dict[int, Logprob]]) -> None:
        """One step: `entries[i]` holds the candidates' logprobs after beam i."""
        candidates = []
        for beam, entry in zip(self.beams, entries):
            for token, lp in entry.items():
                new = BeamSearchSequence(beam.tokens + [token], beam.logprobs + [entry], beam.cum_logprob + lp.logprob)
                if token in self.eos and not self.params.ignore_eos:
                    new.finish_reason = "stop"
                    self.completed.append(new)
                else:
                    candidates.append(new)
        candidates.sort(key=self._score, reverse=True)
        self.beams = candidates[:self.params.beam_width]
        self.steps += 1
        # A beam that reached max_tokens or fills the context is complete.
        if self.steps >= self.params.max_tokens or (self.beams and len(self.beams[0].tokens) >= self.max_model_len):
            for beam in self.beams:
                beam.finish_reason = "length"
            self.completed += self.beams
            self.beams = []

    def best(self, tokenizer, count: int | None = None) -> list[BeamSearchSequence]:
        """The `count` (default beam_width) best beams, best first, their text decoded."""
        ranked = sorted(self.completed + self.beams, key=self._score, reverse=True)
        ranked = ranked[:count or self.params.beam_width]
        for beam in ranked:
            generated = beam.tokens[self.prompt_len:]
            if beam.finish_reason == "stop":
                generated = generated[:-1]
            beam.text = tokenizer.decode(generated, skip_special_tokens=True) if tokenizer is not None else None
        return ranked

    def as_request_output(self, request_id: str, prompt: str | None, tokenizer, count: int) -> RequestOutput:
        """The best `count` beams as one finished RequestOutput, a choice per beam (what the
        server's completion and chat shapes read)."""
        outputs = [CompletionOutput(index=i, text=beam.text or "", token_ids=beam.tokens[self.prompt_len:],
                                    cumulative_logprob=beam.cum_logprob, logprobs=beam.logprobs,
                                    finish_reason=beam.finish_reason, stop_reason=beam.stop_reason)
                   for i, beam in enumerate(self.best(tokenizer, count))]
        return RequestOutput(request_id, prompt, self.prompt_token_ids, None, outputs, finished=True)


def run_offline(llm, prompts: list, params: BeamSearchParams, use_tqdm: bool = False,
                concurrency_limit: int | None = None) -> list[BeamSearchOutput]:
    """LLM.beam_search: every live beam of up to `concurrency_limit` prompts (default: all)
    in one generate() call per step."""
    from tqdm.auto import tqdm

    engine = llm.llm_engine
    tokenizer = llm.get_tokenizer()
    eos = set(engine.eos_token_ids)
    instances = [BeamSearchInstance(_token_ids(p, tokenizer), params, eos, engine.config.max_model_len)
                 for p in prompts]
    step = params.step_params()
    limit = concurrency_limit or len(instances) or 1
    bar = tqdm(total=len(instances), desc="Beam search", dynamic_ncols=True, disable=not use_tqdm)
    for start in range(0, len(instances), limit):
        group = instances[start:start + limit]
        while not all(i.done for i in group):
            live = [i for i in group if not i.done]
            beams = [{"prompt_token_ids": b.tokens} for i in live for b in i.beams]
            outputs = iter(llm.generate(beams, step, use_tqdm=False))
            for instance in live:
                instance.advance([next(outputs).outputs[0].logprobs[0] for _ in instance.beams])
        bar.update(len(group))
    bar.close()
    return [BeamSearchOutput(i.best(tokenizer)) for i in instances]


def _token_ids(prompt, tokenizer) -> list[int]:
    """A prompt as vLLM's beam_search takes it: a string, token ids, or a {"prompt": ...} /
    {"prompt_token_ids": ...} dict."""
    if isinstance(prompt, dict):
        if "prompt_token_ids" in prompt:
            return list(prompt["prompt_token_ids"])
        prompt = prompt.get("prompt")
    if isinstance(prompt, str):
        if tokenizer is None:
            raise ValueError("This engine has no tokenizer: give prompt token ids.")
        return tokenizer.encode(prompt)
    if isinstance(prompt, (list, tuple)):
        return list(prompt)
    raise ValueError(f"A beam search prompt must be a string, token ids or a prompt dict, got {type(prompt).__name__}.")
