//! How the process's allocator keeps freed memory (glibc on Linux).
//!
//! glibc returns a freed block over its mmap threshold (128 KiB, adapted up to 32 MiB) to
//! the OS at once, and trims the heap's top past 128 KiB. A training step allocates and
//! frees hundreds of MB in blocks of a few MB (activations, gradients, the convolution
//! kernels' grids), so every step faulted the same pages back in: `perf stat` counted 367 K
//! page faults over the 6 steps of `bench train --width 8 --frames 16 --size 32 --batch 80
//! --iters 5` (the kernel's fault, zeroing and TLB work ~15 % of the profile), 62 K with
//! the settings below, and the median step fell 8 % (0.622 → 0.571 s, 4 alternating runs
//! each; issue 13's note). The cost: memory freed after the peak stays with the process,
//! as with PyTorch's caching allocator.

/// Blocks up to this size come from the heap, not from their own mapping (glibc's
/// largest adaptive threshold).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 32 << 20;

/// Free memory at the heap's top kept before trimming (glibc's parameter is an `int`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: i32 = i32::MAX;

/// Extra memory asked for each time the heap grows, so that it grows rarely.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TOP_PAD: i32 = 256 << 20;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
unsafe extern "C" {
    fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
}

/// Keeps freed memory in the process (see the module doc); a no-op off glibc. Called once,
/// first thing in `main`, before any thread starts.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // glibc's `M_TRIM_THRESHOLD`, `M_TOP_PAD`, `M_MMAP_THRESHOLD` (malloc.h).
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_TOP_PAD: i32 = -2;
        const M_MMAP_THRESHOLD: i32 = -3;
        for (param, value) in [
            (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            (M_TOP_PAD, TOP_PAD),
        ] {
            // SAFETY: mallopt only sets allocator parameters; it returns 0 for a value it
            // rejects, which leaves glibc's default (slower, still correct).
            unsafe { mallopt(param, value) };
        }
    }
}
