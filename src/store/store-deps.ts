// What a store is built with. Its own file so the Redis store and the factory that loads it
// lazily do not import each other.
import type { Clock } from '../clock.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';

export interface StoreDeps {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: Metrics;
}
