"""How long one step's message between the engine core and the server takes to encode and decode
(msgpack through msgspec, the transport's serializer, against pickle): 256 running sequences
each with a new token, with and without top-5 logprobs. Run: python benchmarks/core_messages.py"""
import pickle
import time

import msgspec

from ember.engine.messages import CoreStats, FromCore, SampleUpdate, StepResult


def step_result(num_seqs: int, logprobs: bool) -> StepResult:
    updates = [SampleUpdate(f"cmpl-{i:032x}-0", 0, [1000 + i],
                            logprobs=[(-0.5, [(1000 + i, -0.5, 1)] + [(j, -1.0 - j, j + 2) for j in range(5)])]
                            if logprobs else None)
               for i in range(num_seqs)]
    return StepResult(updates, CoreStats(num_running=num_seqs), num_added=num_seqs, step_sizes=[num_seqs])


def per_call_us(fn, repeat: int = 2000) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1e6


if __name__ == "__main__":
    encoder, decoder = msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder(FromCore)
    for logprobs in (False, True):
        message = step_result(256, logprobs)
        wire = encoder.encode(message)
        pickled = pickle.dumps(message)
        print(f"256 updates, logprobs={logprobs}: msgpack {len(wire):,} B, encode {per_call_us(lambda: encoder.encode(message)):.0f} us, "
              f"decode {per_call_us(lambda: decoder.decode(wire)):.0f} us; pickle {len(pickled):,} B, "
              f"dumps {per_call_us(lambda: pickle.dumps(message)):.0f} us, loads {per_call_us(lambda: pickle.loads(pickled)):.0f} us")
