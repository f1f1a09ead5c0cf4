// The 'tokengate/server' entry: the whole process (gRPC ext_authz and access-log services,
// admin HTTP, reload, shutdown) for a caller that embeds tokengate rather than running the
// CLI. Kept apart from 'tokengate' so the library loads no gRPC code.
export { configProblems, startTokengate, Tokengate, type StartOptions } from './app.js';
