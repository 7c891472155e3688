#!/usr/bin/env python3
"""Independent NumPy reference for RoPE scaling (`rope_scaling` in a Hugging Face config.json) in @hyperllama/llama-model.

The inverse frequencies of each scaling type, written in float64 from the formulas Hugging Face transformers applies
(`modeling_rope_utils`: default, linear, dynamic NTK, llama3, yarn), and logits of tiny random Llamas that use them
(llama_reference.hf_forward with these frequencies; cos and sin times yarn's attention factor).

  default  inv_freq[i] = 1 / theta^(2i/d), i < d/2
  linear   inv_freq / factor
  dynamic  with L = max(seq_len, max_position_embeddings), seq_len = max position id + 1 of the forward call:
           the default frequencies of base theta * (factor * L / max_position_embeddings - (factor - 1))^(d/(d-2))
  llama3   wavelength w = 2 pi / f of each default frequency f, with O = original_max_position_embeddings:
           w < O / high_freq_factor: f;  w > O / low_freq_factor: f / factor;
           otherwise (1 - s) f / factor + s f with s = (O / w - low_freq_factor) / (high_freq_factor - low_freq_factor)
  yarn     O = original_max_position_embeddings (default max_position_embeddings);
           the dimension where O makes r turns: dim(r) = d ln(O / (2 pi r)) / (2 ln theta);
           low = dim(beta_fast = 32), high = dim(beta_slow = 1), floored / ceiled when truncate (default), clipped to
           [0, d - 1]; ramp[i] = clip((i - low) / (high - low), 0, 1) over i < d/2 (high += 0.001 when equal);
           inv_freq = (f / factor) * ramp + f * (1 - ramp);
           attention factor = attention_factor, else m(factor, mscale) / m(factor, mscale_all_dim) when both are given,
           else m(factor, 1), with m(s, k) = 1 if s <= 1 else 0.1 k ln(s) + 1

Usage (from the repository root; needs only numpy):
  python3 tools/reference/rope_reference.py [--out packages/llama-model/test/fixtures/rope]
Writes, under --out:
  inv-freq.json           configs of real shapes (Llama 3.1 8B, Llama 3.2 1B, ...) with their inverse frequencies and
                          attention factor, dynamic at several sequence lengths
  tiny-<type>/            config.json (Llama 3 style: rope_theta 500000, GQA, tied head) + model.safetensors (random)
                          + reference.safetensors (input_ids, attention_mask, position_ids, logits), for
                          llama3, linear, yarn and dynamic; dynamic also reference-short.safetensors (a batch shorter
                          than max_position_embeddings, where it must equal plain RoPE)
"""
import argparse
import json
import math
import os

import numpy as np

from llama_reference import hf_forward, left_padded, random_hf_model, write_safetensors


def rope_inv_freq(cfg, seq_len=None):
    """(inv_freq [d/2] float64, attention factor) of a config dict (HF field names), at seq_len for dynamic."""
    d = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    theta = float(cfg.get("rope_theta", 10000.0))
    max_pos = cfg.get("max_position_embeddings", 2048)
    i = np.arange(0, d, 2, dtype=np.float64)

    def plain(base):
        return 1.0 / base ** (i / d)

    rs = cfg.get("rope_scaling")
    kind = None if rs is None else rs.get("rope_type", rs.get("type"))
    if kind in (None, "default"):
        return plain(theta), 1.0
    factor = float(rs["factor"])
    if kind == "linear":
        return plain(theta) / factor, 1.0
    if kind == "dynamic":
        length = seq_len if seq_len is not None and seq_len > max_pos else max_pos
        return plain(theta * (factor * length / max_pos - (factor - 1)) ** (d / (d - 2))), 1.0
    if kind == "llama3":
        f = plain(theta)
        orig, lo, hi = rs["original_max_position_embeddings"], rs["low_freq_factor"], rs["high_freq_factor"]
        w = 2 * math.pi / f
        s = (orig / w - lo) / (hi - lo)
        mid = (1 - s) * f / factor + s * f
        return np.where(w < orig / hi, f, np.where(w > orig / lo, f / factor, mid)), 1.0
    if kind == "yarn":
        orig = rs.get("original_max_position_embeddings") or max_pos

        def m(s, k=1.0):
            return 1.0 if s <= 1 else 0.1 * k * math.log(s) + 1.0

        att = rs.get("attention_factor")
        if att is None:
            ms, msa = rs.get("mscale"), rs.get("mscale_all_dim")
            att = m(factor, ms) / m(factor, msa) if ms and msa else m(factor)

        def dim_at(r):
            return d * math.log(orig / (r * 2 * math.pi)) / (2 * math.log(theta))

        low, high = dim_at(rs.get("beta_fast") or 32), dim_at(rs.get("beta_slow") or 1)
        if rs.get("truncate", True):
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, d - 1)
        if low == high:
            high += 0.001
        ramp = np.clip((np.arange(d // 2, dtype=np.float64) - low) / (high - low), 0, 1)
        f = plain(theta)
        return (f / factor) * ramp + f * (1 - ramp), float(att)
    raise ValueError(f"unknown rope type {kind}")


def shape_config(head_dim, heads, theta, max_pos, rope_scaling):
    return dict(vocab_size=32, hidden_size=head_dim * heads, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=heads, num_key_value_heads=heads, head_dim=head_dim, rope_theta=theta,
                max_position_embeddings=max_pos, rope_scaling=rope_scaling)


INV_FREQ_CASES = [
    ("llama3.1-8b", shape_config(128, 32, 500000.0, 131072, dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
     high_freq_factor=4.0, original_max_position_embeddings=8192)), None),
    ("llama3.2-1b", shape_config(64, 32, 500000.0, 131072, dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0,
     high_freq_factor=4.0, original_max_position_embeddings=8192)), None),
    ("linear-legacy-type-key", shape_config(128, 32, 10000.0, 16384, dict(type="linear", factor=4.0)), None),
    ("default-explicit", shape_config(64, 8, 10000.0, 2048, dict(rope_type="default")), None),
    ("dynamic-below-max", shape_config(128, 32, 10000.0, 4096, dict(rope_type="dynamic", factor=2.0)), 2048),
    ("dynamic-at-max", shape_config(128, 32, 10000.0, 4096, dict(rope_type="dynamic", factor=2.0)), 4096),
    ("dynamic-6000", shape_config(128, 32, 10000.0, 4096, dict(rope_type="dynamic", factor=2.0)), 6000),
    ("dynamic-16384", shape_config(128, 32, 10000.0, 4096, dict(rope_type="dynamic", factor=2.0)), 16384),
    ("yarn-default-attention", shape_config(128, 32, 10000.0, 16384, dict(rope_type="yarn", factor=4.0,
     original_max_position_embeddings=4096)), None),
    ("yarn-mscale-untruncated", shape_config(64, 16, 1000000.0, 16384, dict(rope_type="yarn", factor=8.0,
     original_max_position_embeddings=2048, mscale=1.0, mscale_all_dim=0.5, beta_fast=16.0, beta_slow=2.0,
     truncate=False)), None),
    ("yarn-attention-factor-no-original", shape_config(64, 16, 10000.0, 8192, dict(rope_type="yarn", factor=2.0,
     attention_factor=1.5)), None),
]


def write_inv_freq(out_dir):
    cases = []
    for name, cfg, seq_len in INV_FREQ_CASES:
        inv, att = rope_inv_freq(cfg, seq_len)
        cases.append(dict(name=name, config=cfg, seq_len=seq_len, inv_freq=[float(x) for x in inv],
                          attention_scaling=att))
    path = os.path.join(out_dir, "inv-freq.json")
    with open(path, "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")
    print(f"{path}: {len(cases)} cases")


TINY = dict(vocab_size=67, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, head_dim=16, rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=True,
            bos_token_id=1, eos_token_id=2, hidden_act="silu")


def write_reference(path, cfg, w, rows, rng):
    ids, mask, positions = left_padded([[int(t) for t in rng.integers(0, cfg["vocab_size"], n)] for n in rows])
    inv, att = rope_inv_freq(cfg, seq_len=int(positions.max()) + 1)
    logits = hf_forward(cfg, w, ids, mask, positions, inv_freq=inv, attention_scaling=att)
    write_safetensors(path, {"input_ids": ids, "attention_mask": mask, "position_ids": positions, "logits": logits})
    print(f"{path}: batch {ids.shape}, attention factor {att:.4f}, |logits| max {np.abs(logits).max():.3f}")


def write_model_case(out_dir, name, max_pos, rope_scaling, seed, rows, short_rows=None):
    cfg = dict(TINY, max_position_embeddings=max_pos, rope_scaling=rope_scaling)
    rng = np.random.default_rng(seed)
    w = random_hf_model(rng, cfg)
    case_dir = os.path.join(out_dir, name)
    os.makedirs(case_dir, exist_ok=True)
    with open(os.path.join(case_dir, "config.json"), "w") as f:
        json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", **cfg}, f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(case_dir, "model.safetensors"), w)
    write_reference(os.path.join(case_dir, "reference.safetensors"), cfg, w, rows, rng)
    if short_rows:
        write_reference(os.path.join(case_dir, "reference-short.safetensors"), cfg, w, short_rows, rng)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(root, "packages", "llama-model", "test", "fixtures", "rope"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    write_inv_freq(args.out)
    # head_dim 16, theta 500000: wavelengths 6.3, 32.5, 169, ... so with original 64 the llama3 case has a kept, a
    # smoothed and divided frequencies; rows reach position 39.
    write_model_case(args.out, "tiny-llama3", 256, dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0,
                     high_freq_factor=4.0, original_max_position_embeddings=64), seed=11, rows=[40, 23])
    write_model_case(args.out, "tiny-linear", 256, dict(rope_type="linear", factor=4.0), seed=12, rows=[40, 23])
    write_model_case(args.out, "tiny-yarn", 256, dict(rope_type="yarn", factor=4.0, original_max_position_embeddings=64),
                     seed=13, rows=[40, 23])
    # max_position_embeddings 16: a 30-token batch is scaled (seq_len 30), a 12-token one is not.
    write_model_case(args.out, "tiny-dynamic", 16, dict(rope_type="dynamic", factor=2.0), seed=14, rows=[30, 9],
                     short_rows=[12, 5])


if __name__ == "__main__":
    main()
