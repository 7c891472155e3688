#!/usr/bin/env python3
"""PyTorch reference for `npm run bench` (tools/bench/src/suites/model.ts): the same Llama, the same measurements.

  * train: one step of LoRA (r 8, alpha 16, on q_proj and v_proj; base frozen), AdamW (lr 1e-4), float32,
    next-token cross-entropy over every position; tokens/s = batch * seq / step time;
  * forward: logits for every position (no grad); tokens/s = batch * seq / time;
  * decode: batch 1, a 16-token prompt, then 64 new tokens one at a time with a KV cache (greedy); tokens/s = 64 / time;
  * peakRssMB: the process's peak RSS (each configuration runs in its own process, as each bench backend does).
The model is Hugging Face's LlamaForCausalLM written out (RMSNorm, rotate_half RoPE, causal attention, SwiGLU,
untied head); medians over runs after one warm-up, as the TypeScript suite.

Usage (Debian's python3-torch; the pyenv python on these machines lacks it):
  /usr/bin/python3 tools/reference/bench_reference.py [--config tiny,small[,default]] [--model DIR] [--json FILE]
HYPERLLAMA_REF_PROFILE=train|forward also prints PyTorch's per-op CPU times of one step (for the gap analysis).
By default each configuration runs with Debian's OpenBLAS (pthread build) on all cores and one torch thread, the
fastest 2-core setting measured: LD_LIBRARY_PATH=/usr/lib/<arch>/openblas-pthread, OPENBLAS_NUM_THREADS
= cores, torch.set_num_threads(1). --blas-threads and --torch-threads override it. Compare with
  npm run bench -- --config tiny --json t.json --reference FILE
"""
import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

CONFIGS = {
    "tiny": dict(vocab=32000, hidden=256, layers=4, heads=8, kv_heads=8, intermediate=688, seq=256, batch=4),
    "small": dict(vocab=32000, hidden=512, layers=8, heads=8, kv_heads=8, intermediate=1376, seq=256, batch=4),
}
PROMPT_TOKENS = 16
NEW_TOKENS = 64
LORA_R, LORA_ALPHA = 8, 16


def default_config(model_dir):
    """The architecture of an HF Llama directory (weights are not needed for timing)."""
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    heads = c["num_attention_heads"]
    return dict(
        vocab=c["vocab_size"], hidden=c["hidden_size"], layers=c["num_hidden_layers"], heads=heads,
        kv_heads=c.get("num_key_value_heads", heads), intermediate=c["intermediate_size"],
        head_dim=c.get("head_dim"), tied=c.get("tie_word_embeddings", False), theta=c.get("rope_theta", 10000.0),
        eps=c.get("rms_norm_eps", 1e-6), seq=min(256, c.get("max_position_embeddings", 2048)), batch=4,
    )


def measure(name, cfg, torch_threads):
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(torch_threads)
    torch.manual_seed(0)
    V, D, L, H, KV, FF = cfg["vocab"], cfg["hidden"], cfg["layers"], cfg["heads"], cfg["kv_heads"], cfg["intermediate"]
    hd = cfg.get("head_dim") or D // H
    theta, eps = cfg.get("theta", 10000.0), cfg.get("eps", 1e-6)
    B, T = cfg["batch"], cfg["seq"]

    class RMSNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(D))

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * self.weight

    class LoraLinear(nn.Module):
        """PEFT's LoRA: y = x Wᵀ + scaling · x Aᵀ Bᵀ, A Kaiming-uniform, B = 0."""

        def __init__(self, base):
            super().__init__()
            self.base = base
            self.lora_A = nn.Parameter(torch.empty(LORA_R, base.in_features).uniform_(-1 / math.sqrt(base.in_features), 1 / math.sqrt(base.in_features)))
            self.lora_B = nn.Parameter(torch.zeros(base.out_features, LORA_R))
            self.scaling = LORA_ALPHA / LORA_R

        def forward(self, x):
            return self.base(x) + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scaling

    def rotate_half(x):
        x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
        return torch.cat((-x2, x1), dim=-1)

    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))

    def cos_sin(positions):  # [T] → [1, 1, T, hd]
        freqs = torch.outer(positions.float(), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos()[None, None], emb.sin()[None, None]

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_layernorm, self.post_attention_layernorm = RMSNorm(), RMSNorm()
            self.q_proj, self.k_proj = nn.Linear(D, H * hd, bias=False), nn.Linear(D, KV * hd, bias=False)
            self.v_proj, self.o_proj = nn.Linear(D, KV * hd, bias=False), nn.Linear(H * hd, D, bias=False)
            self.gate_proj, self.up_proj = nn.Linear(D, FF, bias=False), nn.Linear(D, FF, bias=False)
            self.down_proj = nn.Linear(FF, D, bias=False)

        def forward(self, x, cos, sin, mask, past):
            b, t, _ = x.shape
            h = self.input_layernorm(x)
            q = self.q_proj(h).view(b, t, H, hd).transpose(1, 2)
            k = self.k_proj(h).view(b, t, KV, hd).transpose(1, 2)
            v = self.v_proj(h).view(b, t, KV, hd).transpose(1, 2)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
            if past is not None:
                k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
            present = (k, v)
            if KV != H:
                k, v = k.repeat_interleave(H // KV, 1), v.repeat_interleave(H // KV, 1)
            scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
            if mask is not None:
                scores = scores + mask
            attn = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, H * hd)
            x = x + self.o_proj(attn)
            h = self.post_attention_layernorm(x)
            return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h)), present

    class Llama(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(V, D)
            self.layers = nn.ModuleList(Layer() for _ in range(L))
            self.norm = RMSNorm()
            self.lm_head = nn.Linear(D, V, bias=False)
            for p in self.parameters():
                if p.dim() == 2:
                    nn.init.normal_(p, std=0.02)
            if cfg.get("tied"):
                self.lm_head.weight = self.embed_tokens.weight

        def forward(self, ids, past=None):
            b, t = ids.shape
            start = 0 if past is None else past[0][0].shape[2]
            cos, sin = cos_sin(torch.arange(start, start + t))
            mask = torch.full((t, start + t), float("-inf")).triu(start + 1)[None, None] if t > 1 else None
            x = self.embed_tokens(ids)
            presents = []
            for i, layer in enumerate(self.layers):
                x, present = layer(x, cos, sin, mask, None if past is None else past[i])
                presents.append(present)
            return self.lm_head(self.norm(x)), presents

    model = Llama()
    for p in model.parameters():
        p.requires_grad_(False)
    for layer in model.layers:
        layer.q_proj, layer.v_proj = LoraLinear(layer.q_proj), LoraLinear(layer.v_proj)
    params = [p for n, p in model.named_parameters() if "lora_" in n]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    ids = torch.randint(0, V, (B, T))
    runs = 3 if D >= 512 else 5

    def timed(fn, n):
        fn()
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
        return out

    def train_step():
        logits, _ = model(ids)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        assert math.isfinite(loss.item())

    def forward():
        with torch.no_grad():
            model(ids)

    def decode():
        with torch.no_grad():
            prompt = torch.randint(0, V, (1, PROMPT_TOKENS))
            logits, past = model(prompt)
            token = logits[:, -1].argmax(-1, keepdim=True)
            t0 = time.perf_counter()
            for _ in range(NEW_TOKENS):
                logits, past = model(token, past)
                token = logits[:, -1].argmax(-1, keepdim=True)
            return NEW_TOKENS / (time.perf_counter() - t0)

    profiled = os.environ.get("HYPERLLAMA_REF_PROFILE")  # train | forward: per-op CPU times of one step to stderr
    if profiled:
        from torch.profiler import ProfilerActivity, profile

        fn = train_step if profiled == "train" else forward
        fn()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            fn()
            total = time.perf_counter() - t0
        print(f"[reference] {name} {profiled}: {total * 1000:.0f} ms; self CPU time by op:", file=sys.stderr)
        for e in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:20]:
            print(f"  {e.key:42} {e.self_cpu_time_total / 1000:9.1f} ms  x{e.count}", file=sys.stderr)

    records = []

    def add(metric, unit, values):
        records.append(dict(suite="model", name=name, backend=BACKEND, metric=metric, value=statistics.median(values), unit=unit, runs=values))

    add("trainTokensPerSec", "tokens/s", [B * T / s for s in timed(train_step, runs)])
    add("forwardTokensPerSec", "tokens/s", [B * T / s for s in timed(forward, runs)])
    decode()
    add("decodeTokensPerSec", "tokens/s", [decode() for _ in range(3)])
    add("peakRssMB", "MB", [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024])
    return records


BACKEND = "pytorch"


def blas_in_use():
    with open("/proc/self/maps") as f:
        libs = {line.split()[-1] for line in f if "blas" in line}
    return sorted(libs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="tiny,small", help="comma-separated: tiny, small, default")
    ap.add_argument("--model", default=os.environ.get("HYPERLLAMA_BENCH_MODEL"), help="HF Llama directory for --config default")
    ap.add_argument("--json", help="write {meta, records} here (the bench CLI's --reference reads it)")
    ap.add_argument("--blas-threads", type=int, default=os.cpu_count())
    ap.add_argument("--torch-threads", type=int, default=1)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        cfg = json.loads(args.child)
        import torch  # noqa: F401 (loads the BLAS, so the check below sees it)

        records = measure(cfg.pop("name"), cfg, args.torch_threads)
        print(json.dumps(dict(records=records, blas=blas_in_use())))
        return

    arch = platform.machine()
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.blas_threads))
    pthread = f"/usr/lib/{arch}-linux-gnu/openblas-pthread"
    if os.path.isdir(pthread):
        env["LD_LIBRARY_PATH"] = ":".join(filter(None, [pthread, os.environ.get("LD_LIBRARY_PATH")]))
    records, blas = [], []
    for name in args.config.split(","):
        if name == "default":
            if not args.model or not os.path.exists(os.path.join(args.model, "config.json")):
                print("[reference] default: no model directory with config.json (--model or HYPERLLAMA_BENCH_MODEL); skipped", file=sys.stderr)
                continue
            cfg = default_config(args.model)
        elif name in CONFIGS:
            cfg = dict(CONFIGS[name])
        else:
            sys.exit(f"unknown config {name!r} (tiny, small, default)")
        print(f"[reference] {name}...", file=sys.stderr)
        child = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(dict(cfg, name=name)), "--torch-threads", str(args.torch_threads)]
        out = subprocess.run(child, env=env, stdout=subprocess.PIPE, check=True, text=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        records += result["records"]
        blas = result["blas"]
    import torch

    meta = dict(
        date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), torch=torch.__version__, python=platform.python_version(),
        cpus=os.cpu_count(), cpuModel=cpu_model(), blas=blas, blasThreads=args.blas_threads, torchThreads=args.torch_threads,
        load=os.getloadavg(),
    )
    for r in records:
        print(f"{r['name']:8} {r['metric']:22} {r['value']:10.1f} {r['unit']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(meta=meta, records=records), f, indent=2)
        print(f"wrote {args.json}")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


if __name__ == "__main__":
    main()
