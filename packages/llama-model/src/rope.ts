import * as tf from '@tensorflow/tfjs';
import { rotaryEmbedding } from '@hyperllama/runtime';

/**
 * cos and sin of the RoPE angles for the given positions, Hugging Face style: frequency i of head_dim/2 is
 * theta^(-2i/headDim) and the table is duplicated over the two halves of a head. Computed in float32 like HF.
 * positionIds [B, T] → cos, sin [B, 1, T, headDim] (broadcast over heads).
 */
export function ropeCosSin(
  positionIds: tf.Tensor2D,
  theta: number,
  headDim: number,
): { cos: tf.Tensor4D; sin: tf.Tensor4D } {
  return tf.tidy(() => {
    const [B, T] = positionIds.shape;
    const half = headDim / 2;
    const invFreq = new Float32Array(half);
    for (let i = 0; i < half; i++) invFreq[i] = 1 / Math.pow(theta, (2 * i) / headDim);
    const angles = tf.mul(tf.reshape(tf.cast(positionIds, 'float32'), [B, T, 1]), tf.tensor1d(invFreq)); // [B, T, half]
    const full = tf.reshape(tf.concat([angles, angles], 2), [B, 1, T, headDim]);
    return { cos: tf.cos(full) as tf.Tensor4D, sin: tf.sin(full) as tf.Tensor4D };
  });
}

/**
 * x·cos + rotate_half(x)·sin, where rotate_half([x1, x2]) = [-x2, x1] over the two halves of the last axis.
 * The runtime's op with its own gradient (the inverse rotation) keeps nothing of x for the backward pass.
 */
export function rotate(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D): tf.Tensor4D {
  return rotaryEmbedding(x, cos, sin);
}

/**
 * Rotary position embedding with the rotate_half convention of Hugging Face Llama.
 * x [B, H, T, headDim], positionIds int32 [B, T] → [B, H, T, headDim].
 */
export function applyRope(x: tf.Tensor4D, positionIds: tf.Tensor2D, theta: number, headDim: number): tf.Tensor4D {
  return tf.tidy(() => {
    const { cos, sin } = ropeCosSin(positionIds, theta, headDim);
    return rotate(x, cos, sin);
  });
}
