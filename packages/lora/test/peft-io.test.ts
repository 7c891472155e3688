import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { DenseLinear } from '@hyperllama/llama-model';
import { fromFloat32, readSafetensors, toFloat32, writeSafetensors } from '@hyperllama/runtime';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  LoraError,
  LoraLinear,
  getAdapterInfo,
  injectLora,
  listAdapters,
  loadAdapter,
  namedLoraParameters,
  saveAdapter,
} from '../src/index.js';
import { MapHost, dense, TestHost, maxAbsDiff } from './helpers/host.js';

const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'peft-tiny');
const tmp = mkdtempSync(join(tmpdir(), 'lora-peft-'));
let hosts: MapHost[] = [];

beforeAll(async () => {
  await tf.setBackend('cpu');
});
afterEach(() => {
  hosts.forEach((h) => h.dispose());
  hosts = [];
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function host(seed = 1): TestHost {
  const h = new TestHost(8, 12, seed);
  hosts.push(h);
  return h;
}

/** A host holding the fixture's base weights (given as HF [out, in], stored here as [in, out]). */
function fixtureHost(): { h: MapHost; x: tf.Tensor2D; expected: Record<string, number[][]> } {
  const ref = JSON.parse(readFileSync(join(FIXTURE, 'reference.json'), 'utf8')) as {
    x: number[][];
    base_weight_out_in: Record<string, number[][]>;
    expected: Record<string, number[][]>;
  };
  const h = new MapHost();
  for (const [name, w] of Object.entries(ref.base_weight_out_in)) {
    const [outF, inF] = [w.length, w[0].length];
    const inOut = new Float32Array(inF * outF);
    for (let o = 0; o < outF; o++) for (let i = 0; i < inF; i++) inOut[i * outF + o] = w[o][i];
    h.setLinear(name.replace(/^model\./, ''), dense(inOut, inF, outF));
  }
  hosts.push(h);
  return { h, x: tf.tensor2d(ref.x), expected: ref.expected };
}

describe('PEFT adapter files', () => {
  it("loads an adapter written in PEFT's layout and reproduces the reference outputs (numpy, PEFT conventions)", () => {
    const { h, x, expected } = fixtureHost();
    loadAdapter(FIXTURE, h, 'default');
    expect(getAdapterInfo(h, 'default')).toMatchObject({
      r: 4,
      alpha: 8,
      dropout: 0.05,
      targetModules: ['up_proj', 'q_proj'],
    });
    for (const [name, y] of Object.entries(expected)) {
      const m = h.getLinear(name.replace(/^model\./, ''));
      expect(m).toBeInstanceOf(LoraLinear);
      const out = m.apply(x);
      expect(maxAbsDiff(out.dataSync(), y.flat())).toBeLessThan(1e-5);
      out.dispose();
    }
    x.dispose();
  });

  it('writes adapter_config.json and adapter_model.safetensors with PEFT key names, [r, in] and [out, r] shapes', () => {
    const h = host();
    injectLora(h, { name: 'hyper', r: 2, alpha: 4, dropout: 0.1, targetModules: ['q_proj', 'down_proj'] });
    const dir = join(tmp, 'saved');
    saveAdapter(h, 'hyper', dir, { baseModelNameOrPath: 'stories260K' });
    const config = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      r: 2,
      lora_alpha: 4,
      lora_dropout: 0.1,
      target_modules: ['q_proj', 'down_proj'],
      bias: 'none',
      base_model_name_or_path: 'stories260K',
    });
    const file = readSafetensors(join(dir, 'adapter_model.safetensors'));
    expect(file.metadata).toEqual({ format: 'pt' });
    expect(Object.fromEntries([...file.tensors].map(([k, t]) => [k, t.shape]))).toEqual({
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': [2, 8],
      'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight': [8, 2],
      'base_model.model.model.layers.0.mlp.down_proj.lora_A.weight': [2, 12],
      'base_model.model.model.layers.0.mlp.down_proj.lora_B.weight': [8, 2],
    });
    // lora_A.weight[j][i] is our A[i][j] (transposed on write).
    const A = namedLoraParameters(h, 'hyper').get('layers.0.mlp.down_proj.lora_A')!.arraySync() as number[][];
    const fileA = toFloat32(file.tensors.get('base_model.model.model.layers.0.mlp.down_proj.lora_A.weight')!);
    expect(fileA[1 * 12 + 5]).toBe(A[5][1]);
  });

  it('save → load round trip is exact, into a fresh model with the same base', () => {
    const h = host();
    injectLora(h, { name: 'hyper', r: 3, alpha: 6, targetModules: 'all-linear' });
    for (const v of namedLoraParameters(h, 'hyper').values()) v.assign(tf.randomNormal(v.shape, 0, 0.5, 'float32', 3));
    const dir = join(tmp, 'roundtrip');
    saveAdapter(h, 'hyper', dir);
    const h2 = host();
    loadAdapter(dir, h2, 'hyper');
    const a = namedLoraParameters(h, 'hyper');
    const b = namedLoraParameters(h2, 'hyper');
    expect([...b.keys()]).toEqual([...a.keys()]);
    for (const [k, v] of a) expect(maxAbsDiff(b.get(k)!.dataSync(), v.dataSync())).toBe(0);
    const x = tf.randomNormal([4, 8], 0, 1, 'float32', 5) as tf.Tensor2D;
    const [y1, y2] = [h.forward(x), h2.forward(x)];
    expect(maxAbsDiff(y1.dataSync(), y2.dataSync())).toBe(0);
    // Loading into an existing adapter of the same rank overwrites its values.
    for (const v of b.values()) v.assign(tf.zerosLike(v));
    loadAdapter(dir, h2, 'hyper');
    const y3 = h2.forward(x);
    expect(maxAbsDiff(y3.dataSync(), y1.dataSync())).toBe(0);
    tf.dispose([x, y1, y2, y3]);
  });

  it('accepts F16 weights', () => {
    const dir = join(tmp, 'f16');
    const src = readSafetensors(join(FIXTURE, 'adapter_model.safetensors'));
    const half = new Map([...src.tensors].map(([k, t]) => [k, fromFloat32(toFloat32(t), t.shape, 'F16')]));
    saveFixtureCopy(dir, half);
    const { h, x } = fixtureHost();
    loadAdapter(dir, h, 'default');
    const lora = namedLoraParameters(h, 'default').get('layers.0.self_attn.q_proj.lora_B')!;
    const fromFile = toFloat32(half.get('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight')!);
    expect(lora.dataSync()[1]).toBe(fromFile[1 * 4 + 0]); // lora_B.weight [out, r]: our B[0][1] = file[1][0]
    x.dispose();
  });

  function saveFixtureCopy(
    dir: string,
    tensors: Map<string, ReturnType<typeof fromFloat32>>,
    config?: Record<string, unknown>,
  ): void {
    const cfg = config ?? JSON.parse(readFileSync(join(FIXTURE, 'adapter_config.json'), 'utf8'));
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors);
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(cfg));
  }

  it('a key or shape mismatch is a LoraError listing the offending keys, and leaves the model without the adapter', () => {
    const src = readSafetensors(join(FIXTURE, 'adapter_model.safetensors'));
    const tensors = new Map(src.tensors);
    const qA = 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight';
    const upB = 'base_model.model.model.layers.0.mlp.up_proj.lora_B.weight';
    tensors.delete(qA);
    tensors.set('base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight', src.tensors.get(qA)!);
    tensors.set(upB, fromFloat32(new Float32Array(12 * 3), [12, 3]));
    const dir = join(tmp, 'bad-keys');
    saveFixtureCopy(dir, tensors);
    const { h, x } = fixtureHost();
    let err: unknown;
    try {
      loadAdapter(dir, h, 'default');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LoraError);
    const e = err as LoraError;
    expect(e.code).toBe('PEFT_KEY_MISMATCH');
    expect(e.details.missing).toEqual([qA]);
    expect(e.details.unexpected).toEqual(['base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight']);
    expect(e.message).toContain(`${upB}: expected [12, 4], got [12, 3]`);
    expect(listAdapters(h)).toEqual([]);
    expect(h.getLinear('layers.0.self_attn.q_proj')).toBeInstanceOf(DenseLinear);
    x.dispose();
  });

  it('NaN in adapter weights is PEFT_NON_FINITE naming the file and the tensor, and the model is left without the adapter', () => {
    const tensors = readSafetensors(join(FIXTURE, 'adapter_model.safetensors')).tensors;
    const base = JSON.parse(readFileSync(join(FIXTURE, 'adapter_config.json'), 'utf8'));
    const name = [...tensors.keys()].find((k) => k.endsWith('lora_B.weight'))!;
    const values = toFloat32(tensors.get(name)!, name).slice();
    values[1] = NaN;
    const dir = join(tmp, 'nan-adapter');
    saveFixtureCopy(dir, new Map([...tensors, [name, fromFloat32(values, tensors.get(name)!.shape)]]), base);
    const { h } = fixtureHost();
    let err: unknown;
    try {
      loadAdapter(dir, h, 'default');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LoraError);
    expect((err as LoraError).code).toBe('PEFT_NON_FINITE');
    expect((err as LoraError).message).toBe(
      `${join(dir, 'adapter_model.safetensors')}: tensor "${name}" holds NaN at index 1`,
    );
    expect(listAdapters(h)).toEqual([]);
  });

  it('rejects configs it cannot honour (wrong peft_type, DoRA, bias, rank mismatch with an existing adapter)', () => {
    const tensors = readSafetensors(join(FIXTURE, 'adapter_model.safetensors')).tensors;
    const base = JSON.parse(readFileSync(join(FIXTURE, 'adapter_config.json'), 'utf8'));
    const { h } = fixtureHost();
    for (const [patch, message] of [
      [{ peft_type: 'PREFIX_TUNING' }, /peft_type.*expected "LORA"/],
      [{ use_dora: true }, /use_dora/],
      [{ bias: 'all' }, /bias/],
      [{ r: 0 }, /field "r"/],
    ] as const) {
      const dir = join(tmp, 'bad-config');
      saveFixtureCopy(dir, tensors, { ...base, ...patch });
      expect(() => loadAdapter(dir, h, 'default')).toThrow(message);
    }
    injectLora(h, { name: 'default', r: 2, targetModules: ['q_proj'] });
    expect(() => loadAdapter(FIXTURE, h, 'default')).toThrow(/r = 4 but the model's adapter "default" has r = 2/);
    expect(() => loadAdapter(join(tmp, 'nowhere'), h, 'x')).toThrow(LoraError);
  });
});
