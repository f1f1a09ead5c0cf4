// The arrows that must never exist between the parts of src/ (docs/architecture.md says why).
// Parts: config/, clock.ts, observability/, resilience/, store/, routing/, tokens/, server/,
// app.ts, cli.ts, and the two package entries index.ts ('tokengate') and server-entry.ts
// ('tokengate/server').
import type { LayerRule } from './import-graph.js';

/** Everything below the server: the library a caller gets from `import … from 'tokengate'`. */
const LIBRARY = /^(tokens|store|resilience|routing|observability|config)\/|^(clock|index)\.ts$/;
export const GRPC = /^(@grpc\/.+|grpc-health-check|protobufjs)$/;

export const LAYER_RULES: readonly LayerRule[] = [
  {
    name: 'nothing-below-imports-app-or-cli',
    why: 'app.ts wires the parts and cli.ts drives app; the parts they wire must not reach back up',
    from: /^(tokens|store|resilience|routing|observability|config|server)\/|^(clock|index)\.ts$/,
    to: /^(app|cli|server-entry)\.ts$/,
  },
  {
    name: 'library-does-not-import-server',
    why: 'the server is an adapter over TokenManager; the library must stand without it',
    from: LIBRARY,
    to: /^server\//,
  },
  {
    name: 'library-loads-no-grpc',
    why: "import { TokenManager } from 'tokengate' must not load gRPC code",
    from: LIBRARY,
    to: GRPC,
  },
  {
    name: 'resilience-store-routing-do-not-import-tokens-or-server',
    why: 'they are tools the token layer and the server use; each has its own types and errors',
    from: /^(resilience|store|routing)\//,
    to: /^(tokens|server)\//,
  },
  {
    name: 'tokens-import-only-below',
    why: 'the token layer stands on store, resilience, observability, config and the clock',
    from: /^tokens\//,
    to: /^(?!(tokens|store|resilience|observability|config)\/|clock\.ts$).+\.ts$/,
  },
  {
    name: 'observability-imports-only-config',
    why: 'logs and metrics are used by every part, so they can use none of them',
    from: /^observability\//,
    to: /^(?!(observability|config)\/|clock\.ts$).+\.ts$/,
  },
  {
    name: 'config-imports-only-config',
    why: 'config types may be imported everywhere, so config imports no other part',
    from: /^config\//,
    to: /^(?!config\/).+\.ts$/,
  },
  {
    name: 'callers-use-the-token-facade',
    why: 'the server, app and CLI get tokens through TokenManager and its TokenHandle, not the slot machinery',
    from: /^(server\/|(app|cli|index|server-entry)\.ts$)/,
    to: /^tokens\/(provider|replica-coordinator|fetcher|token-slot)\.ts$/,
  },
  {
    name: 'product-stays-in-src',
    why: 'demo/ (the fake IdP and echo upstream), test/ and bench/ are fixtures; the package and the image ship src/ alone',
    from: /\.ts$/,
    to: /^\.\.\//,
  },
];
