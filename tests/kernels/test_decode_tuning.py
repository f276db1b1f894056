import dataclasses

import torch

import ember.kernels.paged_attention as pa


def test_environment_overrides_the_named_knobs_only(monkeypatch):
    monkeypatch.setenv("EMBER_DECODE_ATTENTION", "tile_n=128, num_stages=3,programs_per_sm=16")
    tuning = pa.DecodeTuning.from_env()
    assert (tuning.tile_n, tuning.num_stages, tuning.programs_per_sm) == (128, 3, 16)
    assert tuning.num_warps == pa.DecodeTuning().num_warps
    monkeypatch.delenv("EMBER_DECODE_ATTENTION")
    assert pa.DecodeTuning.from_env() == pa.DecodeTuning()


def test_split_knobs_steer_the_heuristic(monkeypatch):
    """More programs per SM and shorter pieces split a large decode batch that the defaults
    leave whole (256 sequences x 8 KV heads on 132 SMs, a 32k graph bound)."""
    assert pa.pick_num_splits(256, 8, 1, 32768, 8, 132) == 1
    monkeypatch.setattr(pa, "DECODE", dataclasses.replace(pa.DECODE, programs_per_sm=32, min_split_tokens=256))
    assert pa.pick_num_splits(256, 8, 1, 32768, 8, 132) == 3
    assert pa.pick_num_splits(256, 8, 1, 512, 8, 132) == 2  # a 512 bound: pieces of >= 256 keys


def test_batches_of_fewer_programs_than_sms_split_finer():
    """One sequence of 320 tokens (4 KV heads, a 512 bound) splits into 64-key pieces; a batch
    of 128 sequences x 4 heads, more programs than the 132 SMs, keeps the bandwidth knobs."""
    assert pa.pick_num_splits(1, 4, 1, 512, 8, 132) == 512 // pa.DECODE.few_min_split_tokens
    assert pa.pick_num_splits(128, 4, 1, 32768, 8, 132) == 1


def test_program_order_does_not_change_the_result(device, monkeypatch):
    """Decode programs ordered KV head fastest or sequence fastest compute the same attention."""
    from tests.kernels.test_paged_attention import build_case

    case, _, _ = build_case([1] * 5, [1, 17, 33, 64, 100], 8, 2, 64, torch.float32, device)
    outs = []
    for head_major in (1, 0):
        monkeypatch.setattr(pa, "DECODE", dataclasses.replace(pa.DECODE, head_major=head_major))
        outs.append(pa.paged_attention(**case))
    assert torch.equal(outs[0], outs[1])
    torch.testing.assert_close(outs[0], pa.paged_attention_ref(**case), atol=2e-3, rtol=2e-3)
