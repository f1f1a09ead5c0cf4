// Providers that build on each other (`via`, `subjectToken.provider`, `actorToken.provider`):
// every link names a provider that exists, no chain is circular, and an actor token is shared.
import { join, type ReadContext } from '../reader.js';
import type { ConfigProblem, ProviderConfig, SourceConfig } from '../types.js';

/** The providers a source builds on: `via`, `subjectToken.provider`, `actorToken.provider`. */
export function sourceLinks(source: SourceConfig): { key: string; provider: string }[] {
  if (source.type === 'gcp_impersonation') return [{ key: 'via', provider: source.via }];
  if (source.type !== 'token_exchange') return [];
  const out: { key: string; provider: string }[] = [];
  if (source.subjectToken.provider) out.push({ key: 'subjectToken.provider', provider: source.subjectToken.provider });
  if (source.actorToken?.provider) out.push({ key: 'actorToken.provider', provider: source.actorToken.provider });
  return out;
}

/** Every link names a provider that exists, and no chain comes back to where it started. */
export function checkChains(providers: ReadonlyMap<string, ProviderConfig>, path: string, problems: ConfigProblem[]): void {
  for (const p of providers.values()) {
    for (const l of sourceLinks(p.source)) {
      if (!providers.has(l.provider)) problems.push({ path: `${join(join(path, p.name), 'source')}.${l.key}`, problem: `names no configured provider (${l.provider})` });
    }
  }
  const state = new Map<string, 'visiting' | 'done'>();
  const reported = new Set<string>();
  const visit = (name: string, trail: string[]): void => {
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') {
      const cycle = [...trail.slice(trail.indexOf(name)), name];
      const key = [...new Set(cycle)].sort().join(',');
      if (!reported.has(key)) {
        reported.add(key);
        problems.push({ path: `${join(join(path, name), 'source')}`, problem: `providers form a cycle: ${cycle.join(' → ')}` });
      }
      return;
    }
    state.set(name, 'visiting');
    const p = providers.get(name);
    for (const l of p ? sourceLinks(p.source) : []) if (providers.has(l.provider)) visit(l.provider, [...trail, name]);
    state.set(name, 'done');
  };
  for (const name of providers.keys()) visit(name, []);
}

/** `actorToken.provider` names a provider with one shared token (not itself, not a per-caller one). */
export function checkActorTokens(providers: ReadonlyMap<string, ProviderConfig>, ctx: ReadContext): void {
  for (const p of providers.values()) {
    if (p.source.type !== 'token_exchange' || !p.source.actorToken?.provider) continue;
    const path = `providers.${p.name}.source.actorToken.provider`;
    const actor = providers.get(p.source.actorToken.provider);
    // An unknown or circular name is checkChains' to report.
    if (actor && actor !== p && actor.cache) ctx.problems.push({ path, problem: `${actor.name} issues per-caller tokens; an actor token is the gateway's own` });
  }
}
