/**
 * `pnpm --filter @holdfast/testkit run fetch:nodes`: downloads the Node builds of NODE_PLATFORMS from
 * the npm registry into the cache (CI does this before the tests), then checks that each one runs here.
 * Exit 1 names what is missing.
 */
import { fetchPlatformNode, NODE_PLATFORMS, platformNode } from './platform-node.js';

for (const platform of NODE_PLATFORMS) {
  try {
    fetchPlatformNode(platform);
    const node = platformNode(platform);
    if (node.ok) {
      process.stdout.write(`${platform.name}: ${node.path}\n`);
    } else {
      process.stderr.write(`${node.missing}\n`);
      process.exitCode = 1;
    }
  } catch (err) {
    process.stderr.write(`${platform.name}: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
