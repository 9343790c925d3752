"""Frame-index rules shared by the Python benches (`bench_data.py`, `twin_supervised.py`),
the same as src/data/sampling.rs: mirror padding past the ends of a video, and the largest
stride up to the requested one at which a clip still fits."""


def mirror(i, n):
    if n <= 1:
        return 0
    period = 2 * (n - 1)
    p = i % period
    return p if p < n else period - p


def fitting_stride(n, frames, stride):
    return max(1, min(stride, (n - 1) // (frames - 1))) if frames > 1 else stride
