/** The first WebGPU adapter Dawn finds on this machine (`default` or `opengles`, described), or null and why. */
export function findWebGPUAdapter(): Promise<{ adapter: string | null; why: string }>;
