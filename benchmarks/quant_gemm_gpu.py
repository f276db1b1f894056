"""Time the quantized GEMM paths that ember/quantization/gemm_paths.py's tables can choose
against bf16 cuBLAS on the Qwen2.5-7B layer shapes, at M = 1, 4, 16, 64, 128, 256 and 4096 rows
(decode batches, prefill chunks), and print the fastest path per M, the table's pick, and the
table the timings suggest: the measurements the tables are set from.

    PYTHONPATH=. python benchmarks/quant_gemm_gpu.py [--out results.json] [--rows 1,16]

--sweep-w8a16 also times the FP8 W8A16 kernel's tile alternatives (W8A16_SWEEP), each named
w8a16:<change from the default tiles>, and the one-row FP8 GEMV's (FP8_GEMV_SWEEP,
w8a16-gemv:<change>); the table the timings suggest names them w8a16-triton and w8a16-gemv:

    PYTHONPATH=. python benchmarks/quant_gemm_gpu.py --formats bf16,fp8,fp8-block \
        --rows 1,4,16,32,64,128 --sweep-w8a16

--marlin also times int4 on the Marlin layout (marlin, marlin-dequant, and at up to 4 rows
marlin-gemv with its knobs' alternatives MARLIN_GEMV_SWEEP, each named marlin-gemv:<change>)
beside the strips (gemv, tiled, dequant); a table holds paths of one, so the summary
also prints the best table of each:

    PYTHONPATH=. python benchmarks/quant_gemm_gpu.py --formats bf16,int4 --rows 1,4 --marlin

--sweep-marlin adds the Marlin kernel's tile alternatives (MARLIN_SWEEP, each named
marlin:<change from marlin_tiles(M)>; the tables name them marlin):

    PYTHONPATH=. python benchmarks/quant_gemm_gpu.py --formats bf16,int4 \
        --rows 1,4,16,32,64,128,256 --sweep-marlin

Each timing is the median of CUDA-graph replays (the engine replays decode steps from graphs)
over enough copies of the weights to exceed the L2 cache, so the weights come from memory as
they do in a model. Every path is also checked against the dense product of its dequantized
weight (relative error printed)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import triton.testing  # noqa: E402

from ember.kernels.gemv import FP8_KNOBS, gemv  # noqa: E402
from ember.kernels.quant_fp8_act import quantize_fp8  # noqa: E402
from ember.kernels.quant_fp8_dequant import dequantize_fp8_dense  # noqa: E402
from ember.kernels.quant_fp8_gemm import dequantize_fp8  # noqa: E402
from ember.kernels.quant_fp8_scaled_mm import scaled_mm_blockwise, scaled_mm_recipes, scaled_mm_rowwise  # noqa: E402
from ember.kernels.quant_fp8_w8a16_gemm import DEFAULT_W8A16_TILES, fp8_w8a16_gemm  # noqa: E402
from ember.kernels.quant_fp8_w8a8_gemm import fp8_w8a8_gemm  # noqa: E402
from ember.kernels.quant_int_gemv import GEMV_MAX_ROWS, int_gemv  # noqa: E402
from ember.kernels.quant_int_marlin_dequant import dequantize_marlin_t  # noqa: E402
from ember.kernels.quant_int_marlin_gemm import marlin_gemm, marlin_tiles  # noqa: E402
from ember.kernels.quant_int_marlin_gemv import MARLIN_GEMV_MAX_ROWS, MARLIN_GEMV_TILES, marlin_gemv  # noqa: E402
from ember.kernels.quant_int_marlin_layout import to_marlin  # noqa: E402
from ember.kernels.quant_int_strips import dequantize_int, dequantize_int_strips, to_strips  # noqa: E402
from ember.kernels.quant_int_tiled_gemm import int_tiled_gemm  # noqa: E402
from ember.kernels.quant_packing import pack_int32, unpack_int32  # noqa: E402
from ember.quantization.gemm_paths import (FP8_BLOCK_PATHS, FP8_BLOCK_PATHS_NO_CUBLAS, FP8_PATHS,  # noqa: E402
                                          INT4_PATHS, MARLIN_LAYOUT_PATHS, STRIPS_PATHS, path_for)
from ember.quantization.int_linear import STRIP  # noqa: E402

DEV, DT = "cuda", torch.bfloat16
SHAPES = {"qkv": (3584, 4608), "o": (3584, 3584), "gate_up": (3584, 37888), "down": (18944, 3584)}
ROWS = (1, 4, 16, 64, 128, 256, 4096)
# The rows each path runs: the GEMVs take decode batches only.
PATH_ROWS = {"gemv": GEMV_MAX_ROWS, "marlin-gemv": MARLIN_GEMV_MAX_ROWS, "w8a16-gemv": 1}
GROUP = 128
L2_BYTES = 240 << 20  # several times the H200's 60 MB L2
# The W8A16 tile alternatives --sweep-w8a16 times beside the default (w8a16-triton).
W8A16_SWEEP = {f"w8a16:{name}": DEFAULT_W8A16_TILES._replace(**change) for name, change in {
    "cvt": dict(bit_widen=False), "n32": dict(block_n=32), "n128": dict(block_n=128), "k256": dict(block_k=256),
    "w8": dict(num_warps=8), "s3": dict(num_stages=3), "s6": dict(num_stages=6), "p0": dict(programs_per_sm=0),
    "p4": dict(programs_per_sm=4)}.items()}
W8A16_TILES = {"w8a16-triton": DEFAULT_W8A16_TILES}  # main() adds W8A16_SWEEP when asked
# The one-row FP8 GEMV's launches (per-row scales only): FP8_KNOBS and, with --sweep-w8a16,
# others: 2 or 8 rows a program, 4 or 16 KiB of fp8 a step, 8 warps.
FP8_GEMV_KNOBS = {"w8a16-gemv": FP8_KNOBS}
FP8_GEMV_SWEEP = {f"w8a16-gemv:{name}": FP8_KNOBS._replace(**change) for name, change in {
    "bn2-el4096": dict(block_n=2, elements=4096), "bn8": dict(block_n=8), "el16384": dict(elements=16384),
    "el4096": dict(elements=4096), "w8": dict(num_warps=8)}.items()}
W8A16_MAX_ERR = 1e-2  # bf16 output rounding is ~3e-3; a W8A16 result further off is wrong, not slow
# The Marlin kernel's tile alternatives --sweep-marlin times beside marlin_tiles(M) (marlin): each
# a change of the default tiles for the call's M (K tiles stop at the group of 128).
MARLIN_SWEEP = {f"marlin:{name}": change for name, change in {
    "bn64": lambda t: replace(t, block_n=64),
    "bk64": lambda t: replace(t, block_k=64),
    "bm-half": lambda t: replace(t, block_m=max(16, t.block_m // 2)),
    "w8": lambda t: replace(t, num_warps=8),
    "s3": lambda t: replace(t, num_stages=3),
    "s5": lambda t: replace(t, num_stages=5),
    "p0": lambda t: replace(t, programs_per_sm=0),
    "p4": lambda t: replace(t, programs_per_sm=4),
    "su": lambda t: replace(t, scale_in_unpack=True),
    "su-bk64": lambda t: replace(t, scale_in_unpack=True, block_k=64)}.items()}
MARLIN_TILES = {}  # main() adds marlin_tiles(M) itself (marlin) and MARLIN_SWEEP when asked
# The Marlin-layout GEMV's knobs --marlin times beside MARLIN_GEMV_TILES (marlin-gemv): columns
# per program, words per column and K step, warps, programs per multiprocessor for split-K, the
# unpack (PTX, or the fp32 extraction: fewer instructions, more registers), and the prefetch.
MARLIN_GEMV_SWEEP = {f"marlin-gemv:{name}": replace(MARLIN_GEMV_TILES, **change) for name, change in {
    "bn8": dict(block_n=8), "bn32": dict(block_n=32), "words32": dict(words=32), "words128": dict(words=128),
    "w2": dict(num_warps=2), "w8": dict(num_warps=8), "p0": dict(programs_per_sm=0), "p4": dict(programs_per_sm=4),
    "p16": dict(programs_per_sm=16), "prefetch": dict(prefetch=True), "fp32-unpack": dict(ptx_unpack=False),
    "fp32-unpack-bn32-words32": dict(ptx_unpack=False, block_n=32, words=32)}.items()}
MARLIN_GEMV = {}  # main() adds MARLIN_GEMV_TILES (marlin-gemv) and MARLIN_GEMV_SWEEP under --marlin


def median_ms(fn) -> float:
    try:
        return triton.testing.do_bench_cudagraph(fn, rep=20, return_mode="median")
    except TypeError:  # older triton
        return triton.testing.do_bench_cudagraph(fn, rep=20, quantiles=[0.5])[0]


def rel_err(out, ref) -> float:
    return ((out.float() - ref.float()).norm() / ref.float().norm()).item()


def int_weights(k, n, bits):
    codes = torch.randint(0, 2 ** bits, (k, n), device=DEV)
    qweight = pack_int32(codes, bits, dim=0)
    scales = (torch.rand(k // GROUP, n, device=DEV) * 0.02 / 2 ** (bits - 4)).to(DT)
    zeros = torch.randint(0, 2 ** bits, (k // GROUP, n), device=DEV).to(DT)
    return qweight, scales, zeros


def fp8_weights(k, n, block):
    # e4m3fn has no infinity: torch's CUDA cast turns magnitudes of 464 and more (4.6 sigma
    # here: dozens of weights per layer) into NaN, which made every path's error NaN.
    # Checkpoints hold finite values only.
    weight = (torch.randn(n, k, device=DEV) * 100).clamp(-448, 448).to(torch.float8_e4m3fn)
    if block is None:
        return weight, torch.rand(1, 1, device=DEV) * 1e-3, torch.zeros(n, dtype=torch.int32, device=DEV), k
    scale = torch.rand(n // 128, k // 128, device=DEV) * 1e-3
    return weight, scale, (torch.arange(n, device=DEV) // 128).int(), 128


def int_paths(k, n, bits):
    """name -> (make(copy) -> fn(x), weight bytes, reference weight [K, N]). A copy holds the
    strips, scales, zeros and, for int4, the same codes in the Marlin layout."""
    copies = [int_weights(k, n, bits) for _ in range(2)]
    dense = dequantize_int(*copies[0], bits, GROUP)

    def layouts(q, s, z):
        return (to_strips(q, STRIP), s, z) + ((to_marlin(unpack_int32(q, 4, dim=0)),) if bits == 4 else ())

    paths = {"gemv": lambda w: (lambda x: int_gemv(x, *w[:3], bits, GROUP)),
             "tiled": lambda w: (lambda x: int_tiled_gemm(x, *w[:3], bits, GROUP)),
             "dequant": lambda w: (lambda x: x @ dequantize_int_strips(*w[:3], bits, GROUP))}
    if bits == 4 and MARLIN_TILES:
        for name, change in MARLIN_TILES.items():
            paths[name] = lambda w, change=change: (
                lambda x: marlin_gemm(x, w[3], w[1], w[2], GROUP, change(marlin_tiles(x.shape[0]))))
        paths["marlin-dequant"] = lambda w: (lambda x: F.linear(x, dequantize_marlin_t(w[3], w[1], w[2], GROUP)))
        for name, tiles in MARLIN_GEMV.items():
            paths[name] = lambda w, tiles=tiles: (lambda x: marlin_gemv(x, w[3], w[1], w[2], GROUP, tiles))
    nbytes = k * n * bits // 8 + 2 * 2 * (k // GROUP) * n
    return paths, layouts(*copies[0]), lambda: layouts(int_weights(k, n, bits)[0], *copies[0][1:]), nbytes, dense


def fp8_paths(k, n, block):
    weight, scale, scale_row, block_k = fp8_weights(k, n, block)
    dense = dequantize_fp8(weight, scale, scale_row, block_k).T
    recipes = scaled_mm_recipes(DEV)
    group = None if block is None else block_k

    def w8a8_triton(w):
        return lambda x: fp8_w8a8_gemm(*quantize_fp8(x, group), w[0], w[1], w[2], block_k, x.dtype)

    paths = {"w8a8-triton": w8a8_triton}
    for name, tiles in W8A16_TILES.items():
        if not (block is not None and tiles.block_k > 128):  # block-wise tiles stop at the 128 block
            paths[name] = lambda w, tiles=tiles: (lambda x: fp8_w8a16_gemm(x, *w, block_k, tiles))
    if block is None:
        row_scale = scale[scale_row.long(), 0][None, :].contiguous()
        for name, knobs in FP8_GEMV_KNOBS.items():
            paths[name] = lambda w, knobs=knobs: (lambda x: gemv(x, w[0], knobs=knobs, row_scale=row_scale[0]))
    if block is None and "rowwise" in recipes:
        paths["w8a8-cublas"] = lambda w: (lambda x: scaled_mm_rowwise(*quantize_fp8(x), w[0], row_scale, x.dtype))
    if block is not None:
        paths["dequant"] = lambda w: (lambda x: F.linear(x, dequantize_fp8_dense(*w, block_k, x.dtype)))
    if block is not None and "blockwise" in recipes:
        paths["w8a8-cublas"] = lambda w: (
            lambda x: scaled_mm_blockwise(*quantize_fp8(x, 128, column_major_scales=True), w[0], w[1], x.dtype))
    fresh = lambda: (fp8_weights(k, n, block)[0], scale, scale_row)  # noqa: E731
    return paths, (weight, scale, scale_row), fresh, k * n, dense


def bf16_paths(k, n):
    weight = torch.randn(n, k, device=DEV, dtype=DT) * 0.02
    return {"cublas": lambda w: (lambda x: F.linear(x, w[0]))}, (weight,), \
        lambda: (torch.randn(n, k, device=DEV, dtype=DT) * 0.02,), 2 * k * n, weight.float().T


FORMATS = {
    "bf16": lambda k, n: bf16_paths(k, n),
    "int4": lambda k, n: int_paths(k, n, 4),
    "int8": lambda k, n: int_paths(k, n, 8),
    "fp8": lambda k, n: fp8_paths(k, n, None),
    "fp8-block": lambda k, n: fp8_paths(k, n, (128, 128)),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=None)
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated, in order of measurement")
    parser.add_argument("--rows", default=",".join(map(str, ROWS)), help="comma-separated M values")
    parser.add_argument("--sweep-w8a16", action="store_true", help="also time W8A16_SWEEP's FP8 W8A16 tiles")
    parser.add_argument("--marlin", action="store_true", help="also time int4 on the Marlin layout")
    parser.add_argument("--sweep-marlin", action="store_true", help="--marlin, and MARLIN_SWEEP's tiles")
    parser.add_argument("--warm", default=None, metavar="N:I",
                        help="time nothing: run every N-th (format, shape, M, path) from the I-th once, so that N "
                             "processes compile the sweep's kernels into Triton's cache in parallel before a run")
    args = parser.parse_args()
    if args.sweep_w8a16:
        W8A16_TILES.update(W8A16_SWEEP)
        FP8_GEMV_KNOBS.update(FP8_GEMV_SWEEP)
    if args.marlin or args.sweep_marlin:
        MARLIN_TILES["marlin"] = lambda t: t
        MARLIN_GEMV.update({"marlin-gemv": MARLIN_GEMV_TILES, **MARLIN_GEMV_SWEEP})
    if args.sweep_marlin:
        MARLIN_TILES.update(MARLIN_SWEEP)
    rows = [int(m) for m in args.rows.split(",")]
    torch.manual_seed(0)
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, triton {triton.__version__}, "
          f"cuBLAS scaled-GEMM recipes: {sorted(scaled_mm_recipes(DEV))}", flush=True)
    results = []  # (format, shape, m, path, us, GB/s, rel err)
    shards, shard = map(int, args.warm.split(":")) if args.warm else (1, 0)
    case = -1
    for fmt in args.formats.split(","):
        for shape, (k, n) in SHAPES.items():
            paths, first, fresh, nbytes, dense = FORMATS[fmt](k, n)
            weights = [first] + ([] if args.warm else [fresh() for _ in range(max(1, -(-L2_BYTES // nbytes)) - 1)])
            for m in rows:
                x = torch.randn(m, k, device=DEV, dtype=DT)
                ref = x.float() @ dense.float()
                for path, make in paths.items():
                    if m > PATH_ROWS.get(table_path(path), m):
                        continue
                    case += 1
                    if args.warm:
                        try:
                            if case % shards == shard:
                                make(first)(x)
                        except Exception as e:  # the timed run reports it
                            print(f"{fmt:9} {shape:8} M={m:<5} {path:13} warm-up FAILED: {type(e).__name__}"[:300])
                        continue
                    fns = [make(w) for w in weights]
                    try:
                        err = rel_err(fns[0](x), ref)
                        if path.startswith(("w8a16", "marlin")) and not err < W8A16_MAX_ERR:
                            raise ValueError(f"relative error {err:.1e} against the reference")
                        ms = median_ms(lambda: [fn(x) for fn in fns]) / len(fns)
                    except Exception as e:  # a path that cannot run this shape is reported, not fatal
                        print(f"{fmt:9} {shape:8} M={m:<5} {path:13} FAILED: {type(e).__name__}: {e}"[:300], flush=True)
                        continue
                    row = dict(format=fmt, shape=shape, m=m, path=path, us=ms * 1e3, gbps=nbytes / ms / 1e6, err=err)
                    results.append(row)
                    print(f"{fmt:9} {shape:8} M={m:<5} {path:13} {ms * 1e3:9.1f} us {row['gbps']:7.0f} GB/s "
                          f"err {err:.1e}", flush=True)
            del weights
            torch.cuda.empty_cache()
            if args.out:  # after each shape too: a run cut short keeps what it timed
                with open(args.out, "w") as f:
                    json.dump(results, f, indent=1)
        # After each format, so a run cut short by its time limit still leaves its findings.
        summarize(results, rows)
        if args.out:
            with open(args.out, "w") as f:
                json.dump(results, f, indent=1)


def summarize(results, rows) -> None:
    """Per format and M: each path's time summed over the four shapes (one decoder layer's
    GEMMs), the fastest, the table's current choice, and the ratio to bf16; then the table
    of fastest paths by M, in gemm_paths.py's form."""
    layer = {}
    for r in results:
        key = (r["format"], r["m"], r["path"])
        layer[key] = layer.get(key, 0.0) + r["us"]
    bf16 = {m: t for (fmt, m, _), t in layer.items() if fmt == "bf16"}
    tables = {"int4": INT4_PATHS, "int8": STRIPS_PATHS, "fp8": FP8_PATHS,
              "fp8-block": FP8_BLOCK_PATHS if "blockwise" in scaled_mm_recipes(DEV) else FP8_BLOCK_PATHS_NO_CUBLAS}
    print("\nPer decoder layer (qkv + o + gate_up + down), us; fastest path per M:")
    for fmt in dict.fromkeys(r["format"] for r in results):
        fastest = []  # (M, path)
        for m in rows:
            times = {p: t for (f, mm, p), t in layer.items() if f == fmt and mm == m}
            if not times:
                continue
            best = min(times, key=times.get)
            fastest.append((m, table_path(best)))
            chosen = path_for(tables[fmt], m) if fmt in tables else "cublas"
            if chosen == "w8a8-cublas" and chosen not in times:  # no cuBLAS recipe for these scales
                chosen = "w8a8-triton"
            chosen_time = times.get(chosen)
            ratio = f"{times[best] / bf16[m]:.2f}x bf16" if m in bf16 else ""
            print(f"{fmt:9} M={m:<5} fastest {best:13} {times[best]:9.1f} us {ratio:12} | table picks {chosen}"
                  + (f" ({chosen_time:.1f} us)" if chosen_time else "") + " | "
                  + " ".join(f"{p}={t:.0f}" for p, t in sorted(times.items(), key=lambda i: i[1])))
        if fmt in tables and fastest:
            print(f"{fmt:9} table from these timings: {suggested_table(fastest)!r}")
        if fmt == "int4":
            per_layout(fmt, {(m, p): t for (f, m, p), t in layer.items() if f == fmt}, rows)


def table_path(path: str) -> str:
    """A sweep's name (w8a16:<change>, marlin:<change>, marlin-gemv:<change>) -> the path a table names."""
    if path.startswith("w8a16:"):
        return "w8a16-triton"
    return path.split(":")[0] if path.startswith(("marlin:", "marlin-gemv:", "w8a16-gemv:")) else path


def per_layout(fmt, times, rows) -> None:
    """A layer keeps one int4 layout, so a table holds paths of one: the best table of each,
    its per-layer time by M, and the fastest Marlin tiles by M (for marlin_tiles and
    MARLIN_GEMV_TILES)."""
    for layout in ("strips", "marlin"):
        fastest, line = [], []
        for m in rows:
            mine = {p: t for (mm, p), t in times.items()
                    if mm == m and (table_path(p) in MARLIN_LAYOUT_PATHS) == (layout == "marlin")}
            if mine:
                best = min(mine, key=mine.get)
                fastest.append((m, table_path(best)))
                line.append(f"M={m}: {best} {mine[best]:.0f}")
        if fastest:
            print(f"{fmt:9} {layout} layout: table {suggested_table(fastest)!r}; us per layer " + ", ".join(line))


def suggested_table(fastest) -> tuple:
    """[(M, fastest path)] in increasing M -> ((largest M, path), ..., (None, path)): each run of
    one path ends at its last measured M; the last path takes every M above."""
    table = []
    for m, path in fastest:
        if table and table[-1][1] == path:
            table[-1] = (m, path)
        else:
            table.append((m, path))
    return tuple(table[:-1]) + ((None, table[-1][1]),)


if __name__ == "__main__":
    main()
