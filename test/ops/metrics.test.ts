// /metrics after real traffic: the DESIGN series with their labels and counts, and every metric
// the shipped alert rules and dashboard use exists in that scrape.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { repoPath } from '../support/demo-files.js';
import { envoyRequest, metadata } from '../support/envoy-request.js';
import { startWorld, until, type World } from '../support/world.js';
import { AccessLogSender, accessLogMessages, find, httpLogEntry, parseMetrics, value, type Sample } from './helpers.js';

describe('GET /metrics after traffic', () => {
  let w: World;
  let text: string;
  let samples: Sample[];
  let types: Map<string, string>;

  beforeAll(async () => {
    w = await startWorld({ admin: true, yaml: ({ cc }) => `
providers:
  cc:
    source: ${cc()}
  bad:
    source: ${cc({ clientSecret: 'wrong-secret' })}
routes:
  - match: { authority: api.example.com }
    provider: cc
` });
    const check = w.check;
    for (let i = 0; i < 5; i++) await check({ authority: 'api.example.com' });
    for (let i = 0; i < 2; i++) await check({ contextExtensions: { provider: 'bad' } });
    await check({ authority: 'unrouted.example.org' });
    await check({ contextExtensions: { provider: 'not-configured' } });
    // The upstream rejects cc's token once: purged, refreshed, then one more Check.
    const tokenId = metadata(await check({ authority: 'api.example.com' })).token_id!;
    const envoy = new AccessLogSender(w.app.grpcAddress);
    await envoy.send(accessLogMessages([[httpLogEntry({ status: 401, provider: 'cc', tokenId })]]));
    envoy.close();
    await until(() => w.app.manager.provider('cc')?.status().state === 'valid' && w.app.manager.provider('cc')?.status().tokenId !== tokenId);
    await check({ authority: 'api.example.com' });

    const res = await w.admin.http('GET', '/metrics');
    expect(res.status).toBe(200);
    text = res.text;
    ({ samples, types } = parseMetrics(text));
  });
  afterAll(async () => {
    await w?.close();
  });

  it('declares every DESIGN metric with its type', () => {
    expect(Object.fromEntries([...types].filter(([n]) => n.startsWith('tokengate_')))).toEqual({
      tokengate_checks_total: 'counter',
      tokengate_check_duration_seconds: 'histogram',
      tokengate_token_fetches_total: 'counter',
      tokengate_token_fetch_duration_seconds: 'histogram',
      tokengate_store_errors_total: 'counter',
      tokengate_store_record_opens_total: 'counter',
      tokengate_upstream_rejections_total: 'counter',
      tokengate_grant_ambiguous_total: 'counter',
      tokengate_token_expires_in_seconds: 'gauge',
      tokengate_breaker_state: 'gauge',
      tokengate_grant_needs_attention: 'gauge',
      tokengate_build_info: 'gauge',
      tokengate_refresh_lock_total: 'counter',
      tokengate_refresh_lock_wait_seconds: 'histogram',
      tokengate_store_fenced_writes_total: 'counter',
      tokengate_token_endpoint_queue: 'gauge',
      tokengate_token_endpoint_rate: 'gauge',
      tokengate_token_endpoint_throttled_total: 'counter',
      tokengate_exchange_cache_entries: 'gauge',
      tokengate_exchange_cache_hits_total: 'counter',
      tokengate_exchange_cache_misses_total: 'counter',
      tokengate_exchange_cache_evictions_total: 'counter',
      tokengate_exchanges_total: 'counter',
      tokengate_exchange_holds_total: 'counter',
    });
  });

  it('tokengate_checks_total{provider,result,source} counts every Check by outcome', () => {
    for (const s of find(samples, 'tokengate_checks_total')) expect(Object.keys(s.labels).sort()).toEqual(['provider', 'result', 'source']);
    expect(value(samples, 'tokengate_checks_total', { provider: 'cc', result: 'ok', source: 'cache' })).toBe(7);
    expect(value(samples, 'tokengate_checks_total', { provider: 'bad', result: 'denied', source: 'none' })).toBe(2);
    expect(value(samples, 'tokengate_checks_total', { provider: '', result: 'allowed_unmatched', source: 'none' })).toBe(1);
    expect(value(samples, 'tokengate_checks_total', { provider: '', result: 'denied_unknown_provider', source: 'none' })).toBe(1);
    // A name from a request never becomes a label value.
    expect(text).not.toContain('not-configured');
    expect(text).not.toContain('unrouted');
  });

  it('tokengate_token_fetches_total{provider,outcome} and the fetch duration histogram', () => {
    expect(value(samples, 'tokengate_token_fetches_total', { provider: 'cc', outcome: 'success' })).toBe(2);
    expect(value(samples, 'tokengate_token_fetches_total', { provider: 'bad', outcome: 'ERR_IDP_REJECTED' })).toBeGreaterThanOrEqual(1);
    expect(find(samples, 'tokengate_token_fetches_total', { provider: 'bad', outcome: 'success' })).toHaveLength(0);
    expect(value(samples, 'tokengate_token_fetch_duration_seconds_count', { provider: 'cc' })).toBe(2);
    expect(value(samples, 'tokengate_token_fetch_duration_seconds_bucket', { provider: 'cc', le: '+Inf' })).toBe(2);
    // The slow path (the denied Checks waited for a fetch) is timed; cache hits are not.
    expect(value(samples, 'tokengate_check_duration_seconds_count')).toBeGreaterThanOrEqual(2);
  });

  it('tokengate_breaker_state and tokengate_token_expires_in_seconds per provider', () => {
    expect(value(samples, 'tokengate_breaker_state', { provider: 'cc' })).toBe(0);
    expect(value(samples, 'tokengate_breaker_state', { provider: 'bad' })).toBe(0); // a refused credential does not trip it
    const expiresIn = value(samples, 'tokengate_token_expires_in_seconds', { provider: 'cc' })!;
    expect(expiresIn).toBeGreaterThan(250);
    expect(expiresIn).toBeLessThanOrEqual(300);
    expect(find(samples, 'tokengate_token_expires_in_seconds', { provider: 'bad' })).toHaveLength(0);
  });

  it('tokengate_upstream_rejections_total{provider,status} after an access-log purge', () => {
    expect(find(samples, 'tokengate_upstream_rejections_total')).toEqual([
      { name: 'tokengate_upstream_rejections_total', labels: { provider: 'cc', status: '401' }, value: 1 },
    ]);
  });

  it('no token appears in the scrape', () => {
    expect(w.idp.issuedAccessTokens.length).toBeGreaterThanOrEqual(2);
    for (const token of w.idp.issuedAccessTokens) expect(text).not.toContain(token);
  });

  it('every metric the alert rules and the Grafana dashboard use exists in the scrape', () => {
    const alerts = fs.readFileSync(repoPath('examples/prometheus/alerts.yml'), 'utf8');
    const dashboard = fs.readFileSync(repoPath('examples/grafana/tokengate.json'), 'utf8');

    // Shapes first: Prometheus rule groups, and a Grafana dashboard whose panels query Prometheus.
    const rules = (YAML.parse(alerts) as { groups: { name: string; rules: { alert: string; expr: string; for?: string }[] }[] }).groups.flatMap((g) => g.rules);
    expect(rules.map((r) => r.alert)).toEqual(expect.arrayContaining([
      'TokengateTokenFetchesFailing', 'TokengateBreakerOpen', 'TokengateTokenExpiringWhileRefreshFails',
      'TokengateUpstreamRejectingTokens', 'TokengateStoreErrors', 'TokengateRefreshLockContention', 'TokengateRefreshLockLost',
    ]));
    for (const r of rules) {
      expect(r.expr, r.alert).toMatch(/tokengate_/);
      expect(balanced(r.expr), `${r.alert}: unbalanced brackets`).toBe(true);
    }
    const dash = JSON.parse(dashboard) as { panels: { type: string; targets?: { expr: string }[] }[] };
    const exprs = dash.panels.flatMap((p) => p.targets ?? []).map((q) => q.expr);
    expect(exprs.length).toBeGreaterThan(5);
    for (const e of exprs) expect(balanced(e), e).toBe(true);

    const referenced = new Set<string>();
    for (const source of [rules.map((r) => r.expr).join('\n'), exprs.join('\n')]) {
      for (const [name] of source.matchAll(/tokengate_[a-z_]+/g)) {
        const base = name.replace(/_(bucket|sum|count)$/, '');
        referenced.add(types.get(base) === 'histogram' ? base : name);
      }
    }
    const missing = [...referenced].filter((n) => !types.has(n));
    expect(missing).toEqual([]);
    // Between them they cover every metric tokengate exports.
    expect([...referenced].sort()).toEqual([...types.keys()].filter((n) => n.startsWith('tokengate_')).sort());
  });
});

function balanced(expr: string): boolean {
  const stack: string[] = [];
  const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
  for (const c of expr.replace(/"(?:[^"\\]|\\.)*"/g, '""')) {
    if ('([{'.includes(c)) stack.push(c);
    else if (c in pairs && stack.pop() !== pairs[c]) return false;
  }
  return stack.length === 0;
}
