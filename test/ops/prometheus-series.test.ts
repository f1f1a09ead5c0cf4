// A series' label values are kept only in its key (src/observability/prometheus.ts): what is
// rendered and dropped must be what it was when each series kept an array of them.
import { describe, expect, it } from 'vitest';
import { Counter, Histogram } from '../../src/observability/prometheus.js';

function rendered(m: { render(out: string[]): void }): string[] {
  const out: string[] = [];
  m.render(out);
  return out.slice(2);
}

describe('metric series without label-value arrays', () => {
  it('a counter renders each series with its labels and drops by them', () => {
    const c = new Counter('t_total', 'help', ['provider', 'outcome']);
    c.inc({ provider: 'p1', outcome: 'success' });
    c.cell('p2', 'ERR_X').value += 2;
    c.inc({ provider: 'p1', outcome: 'success' });
    expect(rendered(c)).toEqual(['t_total{provider="p1",outcome="success"} 2', 't_total{provider="p2",outcome="ERR_X"} 2']);
    c.drop((v) => v[0] === 'p1');
    expect(rendered(c)).toEqual(['t_total{provider="p2",outcome="ERR_X"} 2']);
    expect(c.get({ provider: 'p2', outcome: 'ERR_X' })).toBe(2);
  });

  it('a counter without labels renders bare', () => {
    const c = new Counter('u_total', 'help');
    c.inc();
    expect(rendered(c)).toEqual(['u_total 1']);
  });

  it('a histogram without labels has only le; a labelled one has its labels first; drop forgets by label', () => {
    const h = new Histogram('h_seconds', 'help', [0.1, 1]);
    h.observe(0.5);
    expect(rendered(h)).toEqual(['h_seconds_bucket{le="0.1"} 0', 'h_seconds_bucket{le="1"} 1', 'h_seconds_bucket{le="+Inf"} 1', 'h_seconds_sum 0.5', 'h_seconds_count 1']);
    const l = new Histogram('l_seconds', 'help', [1], ['provider']);
    l.observe(2, 'p1');
    l.observe(0.5, 'p2');
    expect(rendered(l)).toEqual([
      'l_seconds_bucket{provider="p1",le="1"} 0', 'l_seconds_bucket{provider="p1",le="+Inf"} 1', 'l_seconds_sum{provider="p1"} 2', 'l_seconds_count{provider="p1"} 1',
      'l_seconds_bucket{provider="p2",le="1"} 1', 'l_seconds_bucket{provider="p2",le="+Inf"} 1', 'l_seconds_sum{provider="p2"} 0.5', 'l_seconds_count{provider="p2"} 1',
    ]);
    l.drop((v) => v[0] === 'p1');
    expect(rendered(l)).toHaveLength(4);
  });
});
