import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createStore, type Store } from '../../tracker/index.ts';
import { isMetricsReader } from '../../tracker/tracker.ts';
import { contractViolation } from '../support/error-contract.ts';
import { fixtureFiles, startTracker, type Fixture, type RunningTracker } from './fixtures/harness.ts';

let fixture: Fixture;
let running: RunningTracker | undefined;
let store: Store | undefined;

beforeAll(async () => {
  fixture = await fixtureFiles();
});
afterEach(async () => {
  await running?.close();
  await store?.close();
});

describe('GET /metrics access', () => {
  it('with a metrics token, answers only its bearer', async () => {
    store = await createStore({ kind: 'memory' }, { logger: (await import('pino')).pino({ level: 'silent' }) });
    running = await startTracker({ store, directory: fixture.directory, config: { metricsToken: 'metrics-secret-123' } });
    for (const authorization of [undefined, 'Bearer wrong', 'Bearer metrics-secret-1234', 'metrics-secret-123']) {
      const response = await fetch(`${running.baseUrl}/metrics`, { headers: authorization ? { authorization } : {} });
      expect(response.status).toBe(403);
      expect(contractViolation(403, await response.text())).toBeUndefined();
    }
    const allowed = await fetch(`${running.baseUrl}/metrics`, { headers: { authorization: 'Bearer metrics-secret-123' } });
    expect(allowed.status).toBe(200);
    expect(await allowed.text()).toContain('peerfill_tracker');
  });

  it('without one, answers loopback clients only', () => {
    for (const address of ['127.0.0.1', '127.0.0.2', '::1', '::ffff:127.0.0.1']) expect(isMetricsReader(undefined, undefined, address)).toBe(true);
    for (const address of ['10.77.0.2', '192.168.1.5', '::ffff:10.0.0.1', 'fe80::1', undefined]) expect(isMetricsReader(undefined, undefined, address)).toBe(false);
  });
});
