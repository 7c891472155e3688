// Whether this machine has a WebGPU adapter, asked of Dawn (the optional `webgpu` package) directly, without any
// of this repository's code: tests use it to decide whether the webgpu backend can exist here, so a bug in the
// runtime's own initialisation fails instead of looking like a missing GPU. run-tests.mjs uses it to decide whether
// a skipped webgpu test is allowed in CI. The adapters tried mirror the runtime's: the platform's GPU, then Mesa's
// software OpenGL ES driver in compatibility mode; HYPERLLAMA_WEBGPU_ADAPTER=default|opengles restricts them.

const ADAPTERS = [
  { name: 'default', flags: [], request: { powerPreference: 'high-performance' } },
  { name: 'opengles', flags: ['backend=opengles'], request: { featureLevel: 'compatibility' } },
];

/**
 * @returns {Promise<{ adapter: string | null, why: string }>} the first adapter found (`default` or `opengles`,
 * with its description), or null and why there is none.
 */
export async function findWebGPUAdapter() {
  let dawn;
  try {
    dawn = await import('webgpu');
  } catch (e) {
    return {
      adapter: null,
      why: `the optional package "webgpu" is not installed (${String(e?.message ?? e).split('\n')[0]})`,
    };
  }
  // Mesa's GLES driver needs no display with this platform (the runtime sets the same default).
  process.env.EGL_PLATFORM ??= 'surfaceless';
  const only = process.env.HYPERLLAMA_WEBGPU_ADAPTER;
  const tried = [];
  for (const a of ADAPTERS.filter((x) => !only || x.name === only)) {
    try {
      const adapter = await dawn.create(a.flags).requestAdapter(a.request);
      if (adapter) {
        const info = adapter.info ?? {};
        const label = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ');
        return { adapter: `${a.name}${label ? ` (${label})` : ''}`, why: `WebGPU adapter: ${a.name}` };
      }
      tried.push(`${a.name}: no adapter`);
    } catch (e) {
      tried.push(`${a.name}: ${String(e?.message ?? e).split('\n')[0]}`);
    }
  }
  return { adapter: null, why: `no WebGPU adapter on this machine (${tried.join('; ') || 'none tried'})` };
}

// `node tools/scripts/webgpu-adapter.mjs` prints the adapter, or "none: <why>".
if (import.meta.url === `file://${process.argv[1]}`) {
  const found = await findWebGPUAdapter();
  console.log(found.adapter ?? `none: ${found.why}`);
  process.exit(0);
}
