# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Backends: RoIAlign in NumPy, Numba, Cython and numba.cuda, read, checked equal and timed; a GPU kernel on a CPU
#
# Every edudet op with a hot loop has one readable NumPy reference and up to three fast twins with the same
# signature: Numba (`@njit`), Cython (typed memoryviews, compiled by `setup.py`) and numba.cuda (one GPU thread
# per output value). A small dispatcher maps `backend="numpy" | "numba" | "cython" | "cuda"` to them. This lesson
# takes RoIAlign (lesson 6), reads its four implementations, checks that they agree, times them, and runs the
# CUDA kernel on a machine without a GPU.

# %%
# %matplotlib inline
import os

# numba reads this once, when it is first imported: it must be set before any numba.cuda kernel is loaded.
# With it, numba.cuda kernels run in numba's CUDA *simulator*, on the CPU, as plain Python.
# (On a machine with an NVIDIA GPU, delete this line to run the same kernels on the GPU.)
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import importlib
import inspect
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from edudet import ops

# %% [markdown]
# ## 1. Which backends can run here
#
# `import edudet` imports no numba and no compiled code: each backend is loaded the first time an op asks for it.
# `available_backends()` lists the ones usable in this process (cython only if the extensions were built,
# cuda only with a GPU or under the simulator).

# %%
backends = ops.available_backends()
print("usable backends:", backends)
print("simulated CUDA :", os.environ.get("NUMBA_ENABLE_CUDASIM") == "1")

# %% [markdown]
# ## 2. Four implementations of one op, read side by side
#
# `ops.roi_align` validates its input once, computes the **sampling plan** (where every bilinear sample is, shared
# by all backends), then hands clean arrays to the chosen kernel. First the NumPy reference: one loop over RoIs,
# everything else vectorised.

# %%
small_map = np.arange(2 * 12 * 12, dtype=np.float32).reshape(1, 2, 12, 12)
small_rois = np.array([[0, 10, 10, 120, 100], [0, 50, 40, 180, 190], [0, 0, 0, 60, 30]], dtype=np.float32)
_ = ops.roi_align(small_map, small_rois, 2, spatial_scale=1 / 16, sampling_ratio=2, aligned=True)
reference_module = inspect.getmodule(ops.roi_align)  # edudet.ops.roi_align, where the reference lives
print(inspect.getsource(reference_module.roi_align_numpy))

# %% [markdown]
# The Numba twin: the same arithmetic as explicit loops (`@njit(cache=True, parallel=True)`, `prange` over channels).
# Loops are fast in Numba, so instead of gathering all samples at once it walks them, adding in torchvision's order.

# %%
numba_kernels = importlib.import_module("edudet.kernels.roi_align_numba")
print(inspect.getsource(numba_kernels))

# %% [markdown]
# The Cython twin is a `.pyx` file compiled to C. `inspect.getsource` cannot read a compiled module, so we read the
# `.pyx` that sits next to it. Note the typed memoryviews (`real[:, :, :, ::1]`), the fused type `real` that makes one
# source serve float32 and float64, and `nogil` + `prange`: OpenMP threads.

# %%
pyx_path = Path(importlib.import_module("edudet.kernels").__file__).with_name("roi_align_cython.pyx")
print(pyx_path.read_text())

# %% [markdown]
# The numba.cuda twin: a kernel is a function run by thousands of threads at once. Each thread computes **one**
# output value `(k, c, ph, pw)`, found from its global index `cuda.grid(1)`; the wrapper copies the inputs to the
# device, launches `ceil(total / 128)` blocks of 128 threads, and copies the result back.

# %%
cuda_kernels = importlib.import_module("edudet.kernels.roi_align_cuda")
print(inspect.getsource(cuda_kernels))

# %% [markdown]
# ## 3. Checked equal
#
# All backends add the samples in the same order as torchvision's C++ kernel, so the compiled CPU ones agree with
# each other to the last bit; the NumPy reference sums with NumPy's pairwise sums and may differ by a few units in
# the last place (and so may a real GPU, whose compiler may fuse a multiply and an add). The CUDA simulator is slow (one Python thread per GPU thread), so the check uses 3 RoIs on a
# 2-channel 12 x 12 map.

# %%
results = {b: ops.roi_align(small_map, small_rois, 2, spatial_scale=1 / 16, sampling_ratio=2, aligned=True,
                            backend=b) for b in backends}
for b, value in results.items():
    same = np.array_equal(value, results["numpy"])
    close = np.allclose(value, results["numpy"], rtol=1e-6, atol=1e-5)
    print(f"{b:7s} shape {value.shape}  bit-identical to numpy: {same}  allclose: {close}")

# %% [markdown]
# ## 4. Timed
#
# A realistic box-head workload: 256 RoIs pooled to 7 x 7 from a 64-channel 50 x 68 map (stride 16), sampling
# ratio 2. Each CPU backend runs once to warm up (Numba compiles on the first call, then caches to disk), then the
# best of 3 runs is kept. Timings depend on the machine and on what else runs on it; the simulated CUDA backend is
# not timed (it measures Python, not a GPU).

# %%
rng = np.random.default_rng(0)
feature_map = rng.standard_normal((1, 64, 50, 68)).astype(np.float32)
corners = rng.uniform(0, 700, size=(256, 2))
sizes = rng.uniform(16, 300, size=(256, 2))
rois = np.concatenate([np.zeros((256, 1)), corners, corners + sizes], axis=1).astype(np.float32)

timed = [b for b in backends if b != "cuda" or os.environ.get("NUMBA_ENABLE_CUDASIM") != "1"]
seconds, outputs = {}, {}
for b in timed:
    outputs[b] = ops.roi_align(feature_map, rois, 7, 1 / 16, 2, aligned=True, backend=b)  # warm-up
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        ops.roi_align(feature_map, rois, 7, 1 / 16, 2, aligned=True, backend=b)
        runs.append(time.perf_counter() - start)
    seconds[b] = min(runs)
    print(f"{b:7s} {1000 * seconds[b]:8.1f} ms   ({seconds['numpy'] / seconds[b]:.1f}x numpy)")

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.5))
bars = ax.bar(list(seconds), [1000 * s for s in seconds.values()], color=["0.5", "tab:blue", "tab:orange", "tab:green"][:len(seconds)])
ax.bar_label(bars, labels=[f"{1000 * s:.0f} ms" for s in seconds.values()])
ax.margins(y=0.15)  # room for the labels
ax.set_title("ops.roi_align: 256 RoIs, 64 x 50 x 68 map, 7 x 7 output")
ax.set_xlabel("backend")
ax.set_ylabel("time (ms, best of 3)")
plt.show()

# %% [markdown]
# ## 5. Stepping through a GPU kernel on a CPU
#
# Under `NUMBA_ENABLE_CUDASIM=1`, `@cuda.jit` does not compile anything: the kernel stays a Python function, and a
# launch runs it once per simulated GPU thread, in ordinary Python threads, with `cuda.grid(1)` and friends faked.
# Everything that works on Python works on the kernel: `print`, `pdb.set_trace()` inside it, a debugger's
# breakpoints, and tracing. Below, Python's own tracing hook records the source lines that simulated thread 5 runs
# on the small example: the kernel, stepped through line by line.
#
# By hand: the output is 3 RoIs x 2 channels x 2 x 2 = 24 values, so the launch is `ceil(24 / 128) = 1` block of
# 128 threads; threads 24..127 return at once. Thread 5 computes `pw = 5 % 2 = 1`, `ph = (5 // 2) % 2 = 0`,
# `c = (5 // 4) % 2 = 1`, `k = 5 // 8 = 0`: RoI 0, channel 1, bin (0, 1).

# %%
kernel_function = "_roi_align_kernel"
calls = []       # one entry per simulated thread that entered the kernel
thread5_lines = []


def trace_kernel(frame, event, arg):
    if frame.f_code.co_name != kernel_function:
        return None
    calls.append(1)

    def trace_lines(frame, event, arg):
        if event == "line" and frame.f_locals.get("index") == 5:
            thread5_lines.append(frame.f_lineno)
        return trace_lines
    return trace_lines


if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    import threading

    threading.settrace(trace_kernel)  # the simulator's threads pick this hook up when they start
    try:
        traced = ops.roi_align(small_map, small_rois, 2, 1 / 16, 2, aligned=True, backend="cuda")
    finally:
        threading.settrace(None)
    source_lines, first_line = inspect.getsourcelines(cuda_kernels)
    print(f"the kernel ran {len(calls)} times (one per simulated thread); thread 5 executed:")
    for number in dict.fromkeys(thread5_lines):  # each line once, in first-visit order
        print(f"  line {number:3d}: {source_lines[number - 1].rstrip()}")
    print("thread 5's output value:", traced[0, 1, 0, 1], "=", results["numpy"][0, 1, 0, 1])

# %% [markdown]
# How many times each line of thread 5's kernel ran: the sample loops (2 x 2 samples per bin) run 4 times, the
# index arithmetic once.

# %%
if thread5_lines:
    numbers, counts = np.unique(thread5_lines, return_counts=True)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar(numbers, counts, color="tab:green")
    ax.set_title("Simulated thread 5: executions of each kernel line")
    ax.set_xlabel("line number in roi_align_cuda.py")
    ax.set_ylabel("times executed")
    plt.show()

# %% [markdown]
# ## Your turn
#
# Predict, compute or write, then run the cell: `check` answers at once and says what is off.
# Stuck? `hint("name")` gives one hint more each time. An exercise left at `...` is simply skipped.

# %% [markdown]
# **1.** How many bilinear samples does `roi_align` compute for 1000 RoIs on a 256-channel map, 7 x 7 output,
# `sampling_ratio=2`?

# %%
from edudet.lessons.check import check, hint

my_sample_count = ...  # your answer: a whole number
check("roi_align_reads", my_sample_count)

# %% [markdown]
# **2.** With `sampling_ratio=-1` (adaptive), how many samples does each bin average for a 40 x 12 pixel RoI at
# `spatial_scale=1/4`, pooled to 7 x 7?

# %%
my_samples_per_bin = ...  # your answer: a whole number
check("adaptive_samples", my_samples_per_bin)

# %% [markdown]
# ## Check yourself

# %%
assert set(backends) >= {"numpy", "numba"}
for b, value in results.items():
    assert value.shape == (3, 2, 2, 2) and value.dtype == np.float32
    assert np.allclose(value, results["numpy"], rtol=1e-6, atol=1e-5)          # every backend agrees
compiled = [b for b in results if b in ("numba", "cython")]
assert all(np.array_equal(results[b], results[compiled[0]]) for b in compiled)  # the compiled CPU ones bit for bit
for b in timed:
    assert np.allclose(outputs[b], outputs["numpy"], rtol=1e-5, atol=1e-5)
if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    assert len(calls) == 128                                                    # one block of 128 threads
    assert np.array_equal(traced, results["cuda"])
    assert (5 % 2, (5 // 2) % 2, (5 // 4) % 2, 5 // 8) == (1, 0, 1, 0)         # thread 5 -> (pw, ph, c, k)
print("all checks passed")
