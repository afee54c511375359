// The `process` global that readable-stream and debug expect, injected into the browser
// bundle by esbuild: nextTick on the microtask queue, an empty env, nothing else.
export const process = {
  browser: true,
  env: {},
  argv: [],
  version: '',
  versions: {},
  nextTick(callback, ...args) {
    queueMicrotask(() => callback(...args));
  },
};
