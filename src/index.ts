// The library surface ('tokengate'): the token layer stands on its own, without the gRPC
// server. The server is 'tokengate/server' (server-entry.ts); nothing here may load gRPC code
// (test/architecture checks both the import graph and the built package).
export { TokenManager, type IssuedToken, type TokenManagerOptions } from './tokens/manager.js';
export { SourceConfigError, TokenError, type TokenErrorCode } from './tokens/errors.js';
export type { ProviderStatus, ProviderStateName, TokenHandle, Acquired } from './tokens/token-handle.js';
export type { TokenServeSource } from './tokens/cached-token.js';
export { loadConfigFile, parseConfig } from './config/load.js';
export { ConfigError } from './config/errors.js';
export type { Config, ProviderConfig } from './config/types.js';
export { systemClock, ManualClock, type Clock } from './clock.js';
export { MemoryStore } from './store/memory-store.js';
export type { TokenStore, TokenRecord, StoreEvent, StoreLock } from './store/store.js';
