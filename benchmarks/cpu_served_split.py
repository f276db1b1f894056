"""Where the CPU goes while `ember serve` answers 16 streamed chats of the embedded default
model (issue 21's served-vs-offline gap): CPU seconds of the client (the openai client, this
process), the API process and the engine-core process over one run, against the same 16
requests offline (`LLM.generate` in this process).

    .venv/bin/python benchmarks/cpu_served_split.py
"""
import asyncio
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpu_default  # noqa: E402
from ember.entrypoints.engine_args import default_model_path  # noqa: E402

STREAMS = 16


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1] == str(pid):
                found.append(int(entry))
        except OSError:
            pass
    return found


def served(model: str) -> None:
    server, url = cpu_default.start_server(model)
    try:
        asyncio.run(cpu_default._stream_chats(url, STREAMS))  # warm-up
        processes = {"api": server.pid, **{f"child {pid}": pid for pid in children_of(server.pid)}}
        before = {name: cpu_seconds(pid) for name, pid in processes.items()}
        client_before, start = own_cpu_seconds(), time.perf_counter()
        tokens = asyncio.run(cpu_default._stream_chats(url, STREAMS))
        wall, client = time.perf_counter() - start, own_cpu_seconds() - client_before
        print(f"served: {tokens} tokens in {wall:.2f} s = {tokens / wall:.1f} tok/s; CPU seconds:")
        print(f"  client (openai, {STREAMS} streams): {client:.2f}")
        for name, pid in processes.items():
            command = " ".join(open(f"/proc/{pid}/cmdline").read().split("\0")[1:3])
            print(f"  {name} ({command}): {cpu_seconds(pid) - before[name]:.2f}")
    finally:
        server.terminate()
        server.wait(30)


def offline(model: str) -> None:
    from ember import LLM, SamplingParams

    llm = LLM(model)
    prompt = cpu_default.chat_prompt(llm.get_tokenizer())
    params = SamplingParams(temperature=0, max_tokens=cpu_default.NEW_TOKENS, ignore_eos=True)
    llm.generate([prompt] * STREAMS, params, use_tqdm=False)  # warm-up
    before, start = own_cpu_seconds(), time.perf_counter()
    outputs = llm.generate([prompt] * STREAMS, params, use_tqdm=False)
    wall, used = time.perf_counter() - start, own_cpu_seconds() - before
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    print(f"offline: {tokens} tokens in {wall:.2f} s = {tokens / wall:.1f} tok/s; CPU seconds: {used:.2f}")


if __name__ == "__main__":
    served(default_model_path())
    offline(default_model_path())
