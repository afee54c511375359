import { describe, expect, it } from 'vitest';
import { RedisCluster, clusterSkipReason } from './fixtures/redis-cluster.ts';

if (clusterSkipReason) console.log(`skipping Redis Cluster fixture test: ${clusterSkipReason}`);

describe.skipIf(clusterSkipReason !== undefined)('RedisCluster fixture', () => {
  it('starts 3 primaries and 3 replicas with cluster_state:ok, and stops them all', async () => {
    const cluster = await RedisCluster.start();
    try {
      expect(cluster.urls).toHaveLength(6);
      const owner = await cluster.primaryPortFor('pf:{abc}:peers');
      expect(cluster.urls).toContain(`redis://127.0.0.1:${owner}`);
    } finally {
      await cluster.stop();
    }
  });
});
