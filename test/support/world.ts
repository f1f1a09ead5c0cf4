// The test world: a loopback IdP (the demo token server) and an in-process tokengate configured
// from a few lines of YAML, with a Check client, an admin client and `until`. One call builds
// it, one `close` tears all of it down, so a test file states only what is special about it.
//
// ccSource / rtSource (or `cc` / `rt` inside a `yaml` function) write the usual provider sources.
//
//   let w: World;
//   beforeAll(async () => { w = await startWorld({ yaml: ({ cc }) => `providers:\n  p: { source: ${cc()} }` }); });
//   afterAll(() => w?.close());
//   it('injects the token', async () => {
//     const res = await w.check({ contextExtensions: { provider: 'p' } });
//     expect(injected(res)?.header?.value).toBe(`Bearer ${w.idp.issuedAccessTokens[0]}`);
//   });
import { DemoTokenServer, type DemoTokenServerOptions } from '../../demo/token-server.js';
import { startTestApp, type TestApp, type TestAppOptions } from './app.js';
import { until } from './until.js';

export { until } from './until.js';
export type { TestApp } from './app.js';

/** The demo IdP's default client; `cc()` uses it unless told otherwise. */
const DEMO_CLIENT = { clientId: 'demo-client', clientSecret: 'demo-secret' } as const;

export interface ClientCredentials {
  readonly tokenUrl?: string;
  readonly clientId?: string;
  readonly clientSecret?: string;
  /** More entries for the flow map (authMethod, scope, reuseInterval...), values JSON-quoted. */
  readonly extra?: Readonly<Record<string, string>>;
}

/** Anything with a token endpoint: a DemoTokenServer, or `{ tokenUrl }` for an endpoint of the test's own. */
export interface TokenEndpoint {
  readonly tokenUrl: string;
}

/** What a `yaml` function gets to write its providers with. */
export interface YamlContext {
  readonly idp: DemoTokenServer;
  /** A client_credentials `source` flow map against this IdP (demo-client / demo-secret by default). */
  cc(over?: ClientCredentials): string;
  /** A refresh_token `source` flow map against this IdP presenting `refreshToken` (same client defaults). */
  rt(refreshToken: string, over?: ClientCredentials): string;
}

export type WorldYaml = string | ((ctx: YamlContext) => string);

export interface WorldOptions extends TestAppOptions {
  /** The IdP's options (token lifetime, clients, format...). Default: the demo server's defaults. */
  readonly idp?: DemoTokenServerOptions;
  /**
   * The app's config. Without a top-level `listen:` it listens on 127.0.0.1:0 for gRPC with admin
   * HTTP off (or on 127.0.0.1:0 with `admin: true`); without `providers:` it has one provider `p`
   * fetching client_credentials from the IdP.
   */
  readonly yaml?: WorldYaml;
  /** Serve admin HTTP on 127.0.0.1:0 (only when the YAML has no `listen:` of its own). */
  readonly admin?: boolean;
  /** Runs after the IdP started and before the app does (e.g. make the IdP fail the warm-up). */
  readonly beforeApp?: (idp: DemoTokenServer) => void | Promise<void>;
}

export type AppOptions = Omit<WorldOptions, 'idp' | 'yaml' | 'beforeApp'>;

/** An IdP and the apps started against it: for suites that start a fresh app per test. */
export interface IdpWorld {
  readonly idp: DemoTokenServer;
  readonly until: typeof until;
  /** An app against this IdP (e.g. the same config with and without admin.token); closed with the world. */
  startApp(yaml: WorldYaml, opts?: AppOptions): Promise<TestApp>;
  /** Closes every app, then the IdP. Safe to call twice, and after a failed start. */
  close(): Promise<void>;
}

/** An IdP and one app (the usual test world); `startApp` adds more apps against the same IdP. */
export interface World extends IdpWorld, TestApp {
  close(): Promise<void>;
}

/** A client_credentials source flow map for YAML (values JSON-quoted, which is valid YAML). */
export function ccSource(idp: TokenEndpoint, over: ClientCredentials = {}): string {
  return flowMap('client_credentials', idp, over, {});
}

/**
 * A refresh_token source flow map for YAML: the demo client presenting `refreshToken` (give the
 * IdP the same one in `refreshTokens`). `${env:X}` in a value stays a reference: it is only quoted.
 */
export function rtSource(idp: TokenEndpoint, refreshToken: string, over: ClientCredentials = {}): string {
  return flowMap('refresh_token', idp, over, { refreshToken });
}

function flowMap(type: string, idp: TokenEndpoint, over: ClientCredentials, own: Readonly<Record<string, string>>): string {
  const entries: Record<string, string> = {
    tokenUrl: over.tokenUrl ?? idp.tokenUrl,
    clientId: over.clientId ?? DEMO_CLIENT.clientId,
    clientSecret: over.clientSecret ?? DEMO_CLIENT.clientSecret,
    ...own,
    ...over.extra,
  };
  const fields = Object.entries(entries).map(([k, v]) => `, ${k}: ${JSON.stringify(v)}`).join('');
  return `{ type: ${type}${fields} }`;
}

/** The YAML a world's app starts from: the caller's text with `listen:` / `providers:` filled in when absent. */
export function worldYaml(yaml: WorldYaml | undefined, idp: DemoTokenServer, opts: { admin?: boolean } = {}): string {
  const ctx: YamlContext = { idp, cc: (over) => ccSource(idp, over), rt: (token, over) => rtSource(idp, token, over) };
  let text = typeof yaml === 'function' ? yaml(ctx) : (yaml ?? '');
  if (!/^providers:/m.test(text)) text += `\nproviders:\n  p: { source: ${ctx.cc()} }\n`;
  if (!/^listen:/m.test(text)) text = `listen: { grpc: 127.0.0.1:0, admin: ${opts.admin ? '127.0.0.1:0' : '"off"'} }\n${text}`;
  return text;
}

/** Starts the IdP alone; apps come with `startApp`. */
export async function startIdp(opts: DemoTokenServerOptions = {}): Promise<IdpWorld> {
  const idp = new DemoTokenServer(opts);
  await idp.start();
  const apps: TestApp[] = [];
  let closed: Promise<void> | undefined;
  return {
    idp,
    until,
    async startApp(yaml, o = {}) {
      const { admin, ...rest } = o;
      const app = await startTestApp(worldYaml(yaml, idp, { admin }), rest);
      apps.push(app);
      return app;
    },
    close() {
      closed ??= (async () => {
        // Apps first: they hold connections to the IdP, and stopping it under them logs noise.
        const results = await Promise.allSettled(apps.map((a) => a.close()));
        await idp.stop();
        const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) throw failed.reason;
      })();
      return closed;
    },
  };
}

export async function startWorld(opts: WorldOptions = {}): Promise<World> {
  const { idp: idpOptions, yaml, beforeApp, ...appOptions } = opts;
  const world = await startIdp(idpOptions);
  try {
    await beforeApp?.(world.idp);
    const main = await world.startApp(yaml ?? '', appOptions);
    return { ...world, ...main, close: world.close };
  } catch (err) {
    await world.close().catch(() => undefined);
    throw err;
  }
}
