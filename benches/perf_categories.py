"""Shares of a `perf record` profile per category of work (issue 13's profile table).

usage: python3 benches/perf_categories.py PERF_DATA

Sums `perf report --no-children --sort dso,symbol` percentages by the first rule whose
pattern matches the symbol (in order), e.g. for the width-8 training step:

    RAYON_NUM_THREADS=2 perf record -F 400 -g --call-graph dwarf,16384 -o step.data \
        target/release/timebalance bench train --width 8 --frames 16 --size 32 --batch 80 --iters 3
    python3 benches/perf_categories.py step.data

The profile covers the whole process: start-up, weight init and the warm-up step included.
"""
import re, subprocess, sys, collections
data = sys.argv[1]
out = subprocess.run(["perf","report","-i",data,"--no-children","--sort","dso,symbol","-g","none","--percent-limit","0"],capture_output=True,text=True).stdout
cats = collections.OrderedDict()
rules = [
 ("direct conv kernels", r"conv_direct"),
 ("winograd conv kernels", r"conv_winograd"),
 ("im2col / col2im", r"conv_kernel::(im2col|col2im|split_columns|input_grad|add_tap|copy_tap)|__memmove"),
 ("GEMM (gemm crate)", r"gemm"),
 ("memset", r"__memset"),
 ("OS: page faults, mapping, scheduling", r"\[k\]"),
 ("batch norm kernels", r"norm_kernel|batch_norm"),
 ("weight init + random input (setup)", r"distribution|TensorData::random|chacha|rand_distr|rand::"),
 ("Burn elementwise / reductions (flex)", r"burn_flex|macerator|burn_backend|burn_tensor|burn_ndarray"),
 ("autodiff bookkeeping", r"burn_autodiff|autodiff"),
 ("optimizer (Adam)", r"burn_optim|adam"),
 ("allocator (malloc/free)", r"_int_free|_int_malloc|malloc|cfree|free@|realloc"),
 ("rayon / threads", r"rayon|crossbeam|futex|sched_yield"),
 ("dynamic linker (startup)", r"ld-linux|do_lookup|_dl_"),
 ("closures (unattributed, mostly our kernels' inner loops)", r"call_mut|LocalKey|\{\{closure\}\}"),
]
for name,_ in rules: cats[name]=0.0
cats["other"]=0.0
for line in out.splitlines():
    m = re.match(r"\s+([0-9.]+)%\s+(\S+)\s+(.*)", line)
    if not m: continue
    pct=float(m.group(1)); rest=m.group(2)+" "+m.group(3)
    for name,rx in rules:
        if re.search(rx, rest):
            cats[name]+=pct; break
    else:
        cats["other"]+=pct
for k,v in cats.items():
    if v>=0.05: print(f"{v:6.1f} %  {k}")
