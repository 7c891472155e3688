"""Write a random Llama as a sharded bf16 Hugging Face directory, fast (NumPy), for benchmarks of big shapes.

The TypeScript writer (`writeRandomLlamaDir` in @hyperllama/llama-model) reproduces `createLlama`'s seeded weights but
draws them in JavaScript at about 7 MB/s on this machine; this one draws N(0, 0.02²) with NumPy (norms 1), so an
8B-shaped directory (16 GB) takes minutes. Same layout: config.json, model-0000i-of-0000n.safetensors (tensors never
split, at most --shard-gb each) and model.safetensors.index.json.

    python3 tools/reference/random_llama_dir.py --shape 8b --out runs/big-llama-8b
"""

import argparse
import json
import os
import struct

import numpy as np

SHAPES = {
    "1b": dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
               num_attention_heads=32, num_key_value_heads=4, head_dim=64, rope_theta=10000.0),
    "8b": dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
               num_attention_heads=32, num_key_value_heads=8, head_dim=128, rope_theta=500000.0),
}


def tensors(c):
    d, q, kv, f = c["hidden_size"], c["num_attention_heads"] * c["head_dim"], c["num_key_value_heads"] * c["head_dim"], c["intermediate_size"]
    yield "model.embed_tokens.weight", [c["vocab_size"], d]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}"
        yield f"{p}.input_layernorm.weight", [d]
        yield f"{p}.self_attn.q_proj.weight", [q, d]
        yield f"{p}.self_attn.k_proj.weight", [kv, d]
        yield f"{p}.self_attn.v_proj.weight", [kv, d]
        yield f"{p}.self_attn.o_proj.weight", [d, q]
        yield f"{p}.post_attention_layernorm.weight", [d]
        yield f"{p}.mlp.gate_proj.weight", [f, d]
        yield f"{p}.mlp.up_proj.weight", [f, d]
        yield f"{p}.mlp.down_proj.weight", [d, f]
    yield "model.norm.weight", [d]
    yield "lm_head.weight", [c["vocab_size"], d]


def bf16(x):
    """float32 → bfloat16 bits, round to nearest even (no NaNs here)."""
    u = x.astype(np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=sorted(SHAPES), default="8b")
    ap.add_argument("--out", required=True)
    ap.add_argument("--shard-gb", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    c = SHAPES[a.shape]
    rng = np.random.default_rng(a.seed)
    items = [(n, s, int(np.prod(s)) * 2) for n, s in tensors(c)]
    shards, used = [[]], 0
    for it in items:
        if used and used + it[2] > a.shard_gb * 1e9:
            shards.append([])
            used = 0
        shards[-1].append(it)
        used += it[2]
    os.makedirs(a.out, exist_ok=True)
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5, "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
        "hidden_act": "silu", "torch_dtype": "bfloat16", **c,
    }
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    n = len(shards)
    weight_map, total = {}, 0
    for s, shard in enumerate(shards):
        name = f"model-{s + 1:05d}-of-{n:05d}.safetensors"
        header, off = {"__metadata__": {"format": "pt"}}, 0
        for t, shape, b in shard:
            header[t] = {"dtype": "BF16", "shape": shape, "data_offsets": [off, off + b]}
            off += b
            weight_map[t] = name
        h = json.dumps(header).encode()
        h += b" " * ((8 - len(h) % 8) % 8)
        with open(os.path.join(a.out, name), "wb") as f:
            f.write(struct.pack("<Q", len(h)) + h)
            for t, shape, b in shard:
                count = b // 2
                for start in range(0, count, 1 << 26):  # 64M values at a time
                    m = min(1 << 26, count - start)
                    v = np.ones(m, np.float32) if len(shape) == 1 else rng.standard_normal(m, np.float32) * np.float32(0.02)
                    f.write(bf16(v).tobytes())
                total += b
        print(f"wrote {name}", flush=True)
    with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


if __name__ == "__main__":
    main()
