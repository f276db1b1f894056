"""What the server tells its operator: request logs only when asked (`--enable-log-requests`),
and Prometheus series, Ember's own and, with `--vllm-metric-names`, vLLM's names and types."""
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.server.conftest import TINY_NAME
from tests.server.launcher import ServerProcess, serve_command

VLLM_TYPES = {
    "vllm:num_requests_running": "gauge", "vllm:num_requests_waiting": "gauge",
    "vllm:kv_cache_usage_perc": "gauge", "vllm:gpu_cache_usage_perc": "gauge",
    "vllm:prompt_tokens": "counter", "vllm:generation_tokens": "counter",
    "vllm:prefix_cache_queries": "counter", "vllm:prefix_cache_hits": "counter",
    "vllm:num_preemptions": "counter", "vllm:request_success": "counter",
    "vllm:time_to_first_token_seconds": "histogram", "vllm:time_per_output_token_seconds": "histogram",
    "vllm:inter_token_latency_seconds": "histogram", "vllm:e2e_request_latency_seconds": "histogram",
    "vllm:request_queue_time_seconds": "histogram",
}


@pytest.fixture(scope="module")
def observed_server(tiny_checkpoint, tmp_path_factory):
    log = tmp_path_factory.mktemp("observed") / "server.log"
    server = ServerProcess(serve_command(tiny_checkpoint, "--served-model-name", TINY_NAME,
                                         "--enable-log-requests", "--vllm-metric-names"), str(log))
    yield server.wait_ready()
    server.stop()


def complete(url: str, prompt: str, max_tokens: int = 5, stream: bool = False) -> None:
    body = {"model": TINY_NAME, "prompt": prompt, "max_tokens": max_tokens, "ignore_eos": True, "stream": stream}
    response = httpx.post(url + "/v1/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text


def scrape(url: str) -> dict:
    """family name -> (type, {(sample name, labels as a sorted tuple): value})."""
    text = httpx.get(url + "/metrics").text
    return {f.name: (f.type, {(s.name, tuple(sorted(s.labels.items()))): s.value for s in f.samples})
            for f in text_string_to_metric_families(text)}


def value(families: dict, sample: str, **labels) -> float:
    """One sample summed over the labels not given."""
    return sum(v for family in families.values() for (name, sample_labels), v in family[1].items()
               if name == sample and all(dict(sample_labels).get(k) == w for k, w in labels.items()))


# ----- request logging -----

def test_requests_are_not_logged_by_default(tiny_server, keyed_server):
    complete(tiny_server.url, "a prompt nobody should log")
    assert "Received request" not in tiny_server.log()
    assert "a prompt nobody should log" not in tiny_server.log()
    # vLLM's older switch is still accepted: the keyed server runs with --disable-log-requests.
    assert "Received request" not in keyed_server.log()


def test_enable_log_requests_logs_prompt_and_params(observed_server):
    complete(observed_server.url, "please log this prompt")
    log = observed_server.log()
    assert "Received request cmpl-" in log and "please log this prompt" in log and "prompt_token_ids" in log


# ----- metrics -----

def test_vllm_names_are_off_by_default(tiny_server):
    assert not [name for name in scrape(tiny_server.url) if name.startswith("vllm:")]


def test_vllm_series_have_vllms_types_and_labels(observed_server):
    families = scrape(observed_server.url)
    for name, kind in VLLM_TYPES.items():
        assert families[name][0] == kind, name
        for _, labels in families[name][1]:
            assert ("model_name", TINY_NAME) in labels and ("engine", "0") in labels, name
    # Counters end in _total, as vLLM's do.
    assert ("vllm:prompt_tokens_total", (("engine", "0"), ("model_name", TINY_NAME))) in families["vllm:prompt_tokens"][1]
    reasons = {dict(labels).get("finished_reason") for _, labels in families["vllm:request_success"][1]}
    assert {"stop", "length", "abort"} <= reasons
    # Ember's own names stay.
    for name in ("ember:num_requests_running", "ember:time_to_first_token_seconds", "ember:request_success"):
        assert name in families, name


@pytest.mark.parametrize("stream", [False, True])
def test_one_request_moves_every_series(observed_server, stream):
    before = scrape(observed_server.url)
    complete(observed_server.url, "count me", max_tokens=5, stream=stream)
    after = scrape(observed_server.url)

    def delta(sample: str, **labels) -> float:
        return value(after, sample, **labels) - value(before, sample, **labels)

    for prefix in ("vllm", "ember"):
        assert delta(f"{prefix}:time_to_first_token_seconds_count") == 1
        assert delta(f"{prefix}:e2e_request_latency_seconds_count") == 1
        assert delta(f"{prefix}:request_success_total", finished_reason="length") == 1
        assert delta(f"{prefix}:generation_tokens_total") == 5
        assert delta(f"{prefix}:prompt_tokens_total") >= 1
    # vLLM counts time per output token once per gap: 4 after the first of 5 tokens; their sum is
    # the time from the first token to the end.
    assert delta("vllm:time_per_output_token_seconds_count") == 4
    assert delta("vllm:inter_token_latency_seconds_count") == 4
    decode = delta("vllm:e2e_request_latency_seconds_sum") - delta("vllm:time_to_first_token_seconds_sum")
    assert delta("vllm:time_per_output_token_seconds_sum") == pytest.approx(decode, rel=1e-6, abs=1e-9)
    assert delta("ember:time_per_output_token_seconds_count") == 1
    assert value(after, "vllm:num_requests_running") == value(after, "ember:num_requests_running") == 0


def test_queue_time_is_observed(observed_server):
    before = scrape(observed_server.url)
    complete(observed_server.url, "queue me")
    after = scrape(observed_server.url)
    for prefix in ("vllm", "ember"):
        name = f"{prefix}:request_queue_time_seconds_count"
        assert value(after, name) - value(before, name) == 1


def test_iteration_tokens_histogram(observed_server):
    complete(observed_server.url, "step by step")
    families = scrape(observed_server.url)
    assert families["vllm:iteration_tokens_total"][0] == "histogram"
    assert value(families, "vllm:iteration_tokens_total_count") >= 5
