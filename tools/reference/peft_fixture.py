"""Writes packages/lora/test/fixtures/peft-tiny: a LoRA adapter in PEFT's on-disk layout plus reference outputs.

Independent of the TypeScript code: numpy computes each adapted linear the way PEFT's LoRA Linear does for a
torch nn.Linear (weights stored [out, in]):  y = x @ W.T + (lora_alpha / r) * (x @ A.T) @ B.T,
with A = lora_A.weight [r, in] and B = lora_B.weight [out, r]. The safetensors file is written by hand (8-byte
little-endian header length, JSON header, raw little-endian data) as the safetensors library does.
Run: python3 tools/reference/peft_fixture.py
"""
import json
import os
import struct

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), '..', '..', 'packages', 'lora', 'test', 'fixtures', 'peft-tiny')
R, ALPHA = 4, 8
MODULES = {  # HF module name -> (in, out)
    'model.layers.0.self_attn.q_proj': (8, 8),
    'model.layers.0.mlp.up_proj': (8, 12),
}

rng = np.random.default_rng(1234)
tensors, base, expected = {}, {}, {}
x = rng.standard_normal((3, 8)).astype(np.float32)
for name, (fin, fout) in MODULES.items():
    w = rng.standard_normal((fout, fin)).astype(np.float32) / np.sqrt(fin)
    a = rng.uniform(-1 / np.sqrt(fin), 1 / np.sqrt(fin), (R, fin)).astype(np.float32)
    b = (rng.standard_normal((fout, R)) * 0.5).astype(np.float32)
    tensors[f'base_model.model.{name}.lora_A.weight'] = a
    tensors[f'base_model.model.{name}.lora_B.weight'] = b
    base[name] = w.tolist()
    y = x.astype(np.float64) @ w.T.astype(np.float64) + (ALPHA / R) * (x.astype(np.float64) @ a.T) @ b.T
    expected[name] = y.tolist()

os.makedirs(OUT, exist_ok=True)
header, offset, blobs = {'__metadata__': {'format': 'pt'}}, 0, []
for key in sorted(tensors):
    data = tensors[key].astype('<f4').tobytes()
    header[key] = {'dtype': 'F32', 'shape': list(tensors[key].shape), 'data_offsets': [offset, offset + len(data)]}
    offset += len(data)
    blobs.append(data)
h = json.dumps(header, separators=(',', ':')).encode()
h += b' ' * ((8 - len(h) % 8) % 8)
with open(os.path.join(OUT, 'adapter_model.safetensors'), 'wb') as f:
    f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))

config = {  # as PEFT 0.13 writes it for LoraConfig(r=4, lora_alpha=8, target_modules=[...], task_type='CAUSAL_LM')
    'alpha_pattern': {}, 'auto_mapping': None, 'base_model_name_or_path': 'tiny-test-llama', 'bias': 'none',
    'fan_in_fan_out': False, 'inference_mode': True, 'init_lora_weights': True, 'layer_replication': None,
    'layers_pattern': None, 'layers_to_transform': None, 'loftq_config': {}, 'lora_alpha': ALPHA, 'lora_dropout': 0.05,
    'megatron_config': None, 'megatron_core': 'megatron.core', 'modules_to_save': None, 'peft_type': 'LORA', 'r': R,
    'rank_pattern': {}, 'revision': None, 'target_modules': ['up_proj', 'q_proj'], 'task_type': 'CAUSAL_LM',
    'use_dora': False, 'use_rslora': False,
}
with open(os.path.join(OUT, 'adapter_config.json'), 'w') as f:
    json.dump(config, f, indent=2, sort_keys=True)
with open(os.path.join(OUT, 'reference.json'), 'w') as f:
    json.dump({'x': x.tolist(), 'base_weight_out_in': base, 'expected': expected}, f)
