// `node --import ./module-log.mjs ...` with PF_MODULE_LOG=FILE: every module the process loads
// through the ESM loader (every `import`, static or dynamic, of our code and of packages,
// CommonJS packages included) is appended to FILE as its URL, as it loads.
import { register } from 'node:module';

if (process.env.PF_MODULE_LOG) register('./module-log-hooks.mjs', import.meta.url, { data: { logPath: process.env.PF_MODULE_LOG } });
