// results.json → REPORT.md: tables first, then the targets, the profile, and how it was measured.
import fs from 'node:fs';
import path from 'node:path';
import { median } from './stats.js';

const f0 = (v) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '—');
const f1 = (v) => (Number.isFinite(v) ? v.toFixed(1) : '—');
const f2 = (v) => (Number.isFinite(v) ? v.toFixed(2) : '—');
const f3 = (v) => (Number.isFinite(v) ? v.toFixed(3) : '—');
const mb = (bytes) => (Number.isFinite(bytes) ? (bytes / 2 ** 20).toFixed(1) : '—');
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : NaN);

/** Who drove the fixed-rate p99 windows (results.json `sizes.latClient`; older files: node:http2's client). */
function generatorName(client) {
  return client === 'raw' ? 'raw-frame HTTP/2 generator (`bench/raw-h2.js`)' : "node:http2's client (h2 load generator)";
}

function table(head, rows) {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

const TARGET_LABEL = {
  'floor-h2': 'limit: node:http2, pre-encoded answer',
  'floor-grpc-js': 'grpc-js do-nothing floor (constant object)',
  'tokengate-route': 'tokengate, cache hit via routes[] header rule',
  'tokengate-twin': 'tokengate twin (A/A: identical to tokengate)',
  'tokengate-h2': 'tokengate, Check on node:http2 (`listen.checkServer: http2`), context_extensions',
  'tokengate-h2-route': 'tokengate, Check on node:http2, routes[] header rule',
  'tokengate-h2-twin': 'tokengate twin on node:http2 (A/A: identical to tokengate on node:http2; fixed rates only)',
  'floor-object': 'floor (constant object)',
  'floor-buffer': 'floor (constant pre-encoded Buffer)',
  tokengate: 'tokengate, cached token (memory store)',
  'tokengate-redis': 'tokengate, cached token (redis store)',
};
const label = (k) => TARGET_LABEL[k] ?? k;

/** Pass/fail of the issue's targets, from the results. */
/**
 * "Within 10 %" on the median of per-round ratios, judged like the p99 target: met when all of
 * its 90 % interval is ≥ 0.9, missed when all of it is below, undecided otherwise. A result
 * without an interval (fewer than 5 rounds, or an older results.json) is judged on the median.
 */
export function scaleVerdict(median, low, high) {
  if (!Number.isFinite(low) || !Number.isFinite(high)) return median >= 0.9;
  if (low >= 0.9) return true;
  if (high < 0.9) return false;
  return 'undecided';
}

/**
 * "At most `limit`" on a median with its 90 % interval: met when all of the interval is within
 * it, missed when all of it is above, undecided otherwise; without an interval (fewer than 5
 * rounds), on the median alone.
 */
export function ceilingVerdict(median, low, high, limit) {
  if (!Number.isFinite(low) || !Number.isFinite(high)) return median <= limit;
  if (high <= limit) return true;
  if (low > limit) return false;
  return 'undecided';
}

/** " [low–high]" of a 90 % interval, or nothing when the run had too few rounds for one. */
const interval = (low, high) => (Number.isFinite(low) && Number.isFinite(high) ? ` [${f2(low)}–${f2(high)}]` : '');

export function evaluateTargets(r) {
  const out = [];
  const hp = r.hotPath;
  if (hp) {
    for (const [client, t] of Object.entries(hp.throughput ?? {})) {
      const fo = t['floor-object'];
      const tg = t.tokengate;
      if (!fo || !tg) continue;
      const x = tg.rateVsFloorMedian;
      out.push({
        target: `throughput ≥ 0.9 × floor (${client} load generator, saturating)`,
        measured: `${f2(x)} × (median Check/s ${f0(tg.rate)} vs ${f0(fo.rate)})`,
        yardstick: f2(t['floor-buffer']?.rateVsFloorMedian),
        pass: x >= 0.9,
      });
    }
    for (const [client, lat] of Object.entries(hp.latency ?? {})) {
      if (!lat.tokengate || !lat['floor-object']) continue;
      const at = `${f0(hp.offeredRate[client])}/s, ${client}`;
      const c = lat.tokengate.cpuVsFloorMedian;
      out.push({
        target: `CPU per Check ≤ 1.1 × floor (at ${at})`,
        measured: `${f2(c)} × (median µs/Check ${f1(lat.tokengate.cpuPerCheckUs)} vs ${f1(lat['floor-object'].cpuPerCheckUs)})`,
        yardstick: f2(lat['floor-buffer']?.cpuVsFloorMedian),
        pass: c <= 1.1,
      });
      const p = lat.tokengate.p99VsFloorMedian;
      out.push({
        target: `p99 ≤ 1.2 × floor p99 (at ${at})`,
        measured: `${f2(p)} × (median p99 ${f3(lat.tokengate.p99MedianOfRounds)} vs ${f3(lat['floor-object'].p99MedianOfRounds)} ms; all rounds pooled ${f2(ratio(lat.tokengate.latency.p99, lat['floor-object'].latency.p99))} ×)`,
        yardstick: f2(lat['floor-buffer']?.p99VsFloorMedian),
        pass: p <= 1.2,
      });
    }
  }
  const sz = r.sizes;
  // Which serving path and which way of naming the provider a sizes target measures.
  const targetMode = (k) => `${k.startsWith('tokengate-h2') ? 'Check on node:http2' : 'Check on grpc-js'}, ${k.endsWith('route') ? 'routes[] header rule' : 'context_extensions'}`;
  const sizeIndependenceTarget = (k, lo, hi) => `cost independent of size: (${targetMode(k)}${k.startsWith('tokengate-h2') ? ', the default path' : ', opt-in path: information'} at ${hi} − the limit's growth ${lo}→${hi}) ≤ 1.1 × its cost at ${lo}`;
  if (sz) {
    for (const size of Object.keys(sz.closed)) {
      for (const k of ['tokengate', 'tokengate-route', 'tokengate-h2', 'tokengate-h2-route']) {
        const t = sz.closed[size][k];
        if (!t) continue;
        out.push({
          target: `CPU per Check ≤ 1.3 × the node:http2 limit (${size}, ${targetMode(k)}${k.startsWith('tokengate-h2') ? ', the default path' : ', opt-in path: information'}, saturating)`,
          measured: `${f2(t.cpuVsLimitMedian)} × median, ${f2(t.cpuVsLimitMin)} × lowest round (µs/Check ${f1(t.cpuPerCheckUs)} vs ${f1(sz.closed[size]['floor-h2'].cpuPerCheckUs)})`,
          yardstick: `A/A ${f2(ratio(sz.closed[size]['tokengate-twin']?.cpuPerCheckUs, sz.closed[size].tokengate?.cpuPerCheckUs))}`,
          // Judged on the default Check path; grpc-js (listen.checkServer: grpc-js) is the way back, shown as information.
          pass: k.startsWith('tokengate-h2') ? t.cpuVsLimitMedian <= 1.3 : 'info',
        });
      }
    }
    const sizes = Object.keys(sz.closed);
    const lo = sizes[0];
    const hi = sizes.at(-1);
    const si = sz.sizeIndependence;
    if (si) {
      for (const k of ['tokengate', 'tokengate-route', 'tokengate-h2', 'tokengate-h2-route']) {
        const t = si[k];
        if (!t) continue;
        const twin = si[k.startsWith('tokengate-h2') ? 'tokengate-h2-twin' : 'tokengate-twin'];
        out.push({
          target: sizeIndependenceTarget(k, si.lo, si.hi),
          measured: `${f2(t.median)} ×${interval(t.low, t.high)} from the medians of ${si.rounds} alternating rounds (${si.lo} and ${si.hi} in the same rounds; the limit grows ${f2(si.limitGrowthMedian)} ×)`,
          yardstick: twin ? `A/A twin: ${f2(twin.median)}${interval(twin.low, twin.high)}` : '',
          pass: k.startsWith('tokengate-h2') ? ceilingVerdict(t.median, t.low, t.high, 1.1) : 'info',
        });
      }
    } else if (lo !== hi) {
      // results.json of older runs: each size's rounds ran minutes apart, judged on medians.
      for (const k of ['tokengate', 'tokengate-route', 'tokengate-h2', 'tokengate-h2-route']) {
        const pick = (size, key, f) => sz.closed[size]?.[key]?.[f];
        const calc = (f) => (pick(hi, k, f) - (pick(hi, 'floor-h2', f) - pick(lo, 'floor-h2', f))) / pick(lo, k, f);
        const x = calc('cpuPerCheckUs');
        out.push({
          target: sizeIndependenceTarget(k, lo, hi),
          measured: `${f2(x)} × medians, ${f2(calc('cpuPerCheckMinUs'))} × lowest rounds (limit grows ${f2(ratio(pick(hi, 'floor-h2', 'cpuPerCheckUs'), pick(lo, 'floor-h2', 'cpuPerCheckUs')))} ×)`,
          yardstick: `A/A twin: ${f2((pick(hi, 'tokengate-twin', 'cpuPerCheckUs') - (pick(hi, 'floor-h2', 'cpuPerCheckUs') - pick(lo, 'floor-h2', 'cpuPerCheckUs'))) / pick(lo, 'tokengate-twin', 'cpuPerCheckUs'))}`,
          pass: k.startsWith('tokengate-h2') ? x <= 1.1 : 'info',
        });
      }
    }
    for (const size of sizes) {
      const at = sz.open[size]?.[5000];
      if (!at) continue;
      const limit = at['floor-h2'];
      // Pooled over slices (bench/run.js slicedOpenLoop); older results.json carry medians of rounds.
      const sliced = limit?.p99VsLimit !== undefined;
      for (const k of ['tokengate-h2', 'tokengate-h2-route', 'tokengate', 'tokengate-route']) {
        const t = at[k];
        if (!t) continue;
        const defaultPath = k.startsWith('tokengate-h2');
        if (!sliced) {
          out.push({ target: `p99 at 5,000 Check/s ≤ 1.2 × the limit's p99 (${size}, ${targetMode(k)})`, measured: `${f2(t.p99VsLimitMedian)} × median of rounds (p99 ${f3(t.p99MedianOfRounds)} vs ${f3(limit?.p99MedianOfRounds)} ms)`, yardstick: '', pass: t.p99VsLimitMedian <= 1.2 });
          continue;
        }
        const aa = sz.aa?.[size]?.[5000];
        const aaAgrees = (a) => a !== undefined && a.ratio >= 1 / 1.2 && a.ratio <= 1.2 && (!Number.isFinite(a.low) || (a.low <= 1 && a.high >= 1));
        const twin = at['tokengate-h2-twin'];
        // Judged on the rotations the rest of the machine left alone when there are enough of them.
        const onQuiet = defaultPath && t.quietSlices >= (sz.minQuietRotations ?? Infinity);
        // Judged on the median over rotations of the per-slice ratio (the issue's "medians of
        // alternating rounds"), when the run carries it; older results.json: the pooled ratio.
        const byMedian = t.p99VsLimitMedianLow !== undefined || t.p99VsLimitQuietMedian !== undefined;
        const judged = byMedian
          ? (onQuiet ? [t.p99VsLimitQuietMedianLow, t.p99VsLimitQuietMedianHigh, t.p99VsLimitQuietMedian] : [t.p99VsLimitMedianLow, t.p99VsLimitMedianHigh, t.p99VsLimitMedianOfSlices])
          : (onQuiet ? [t.p99VsLimitQuietLow, t.p99VsLimitQuietHigh, t.p99VsLimitQuiet] : [t.p99VsLimitLow, t.p99VsLimitHigh, t.p99VsLimit]);
        const [lo, hi, x] = judged;
        const aaJudged = byMedian ? (onQuiet ? aa?.quietMedian : aa?.median) : onQuiet ? aa?.quiet : aa;
        const statName = byMedian ? 'median of per-rotation slice ratios' : 'pooled';
        const quietText = t.quietSlices !== undefined ? `; quiet rotations (rest of the machine < ${f2(sz.quietCores)} cores): ${t.quietSlices} of ${t.slices}${t.quietSlices ? `, median ${f2(t.p99VsLimitQuietMedian)} ×${interval(t.p99VsLimitQuietMedianLow, t.p99VsLimitQuietMedianHigh)}, pooled ${f2(t.p99VsLimitQuiet)} ×${interval(t.p99VsLimitQuietLow, t.p99VsLimitQuietHigh)} (p99 ${f3(t.p99Quiet)} vs ${f3(limit.p99Quiet)} ms, send lag p99 ${f3(t.lagP99Quiet)} / ${f3(limit.lagP99Quiet)} ms)` : ''}` : '';
        out.push({
          target: `p99 at 5,000 Check/s ≤ 1.2 × the limit's p99 (${size}, ${targetMode(k)}${defaultPath ? ', the default path' : ', opt-in path: information'})`,
          measured: `${generatorName(sz.latClient)}: **${f2(t.p99VsLimitMedianOfSlices)} ×** median of per-rotation slice ratios${interval(t.p99VsLimitMedianLow, t.p99VsLimitMedianHigh)} (median slice p99 ${f3(t.p99MedianOfSlices)} vs ${f3(limit.p99MedianOfSlices)} ms); ${f2(t.p99VsLimit)} × pooled${interval(t.p99VsLimitLow, t.p99VsLimitHigh)} (p99 ${f3(t.p99)} vs ${f3(limit.p99)} ms, ${f0(t.calls ?? t.samples)} vs ${f0(limit.calls ?? limit.samples)} calls), ${f2(t.p99VsLimitLowest)} × lowest; send lag p99 ${f3(t.lagP99)} / ${f3(limit.lagP99)} ms${t.serverMajorGcs ? `; server full GCs inside its slices ${t.serverMajorGcs.n} (longest ${f1(t.serverMajorGcs.maxMs)} ms) vs the limit's ${limit.serverMajorGcs?.n} (longest ${f1(limit.serverMajorGcs?.maxMs)} ms)` : ''}${quietText}; **judged on the ${statName}, ${onQuiet ? 'quiet rotations' : 'all rotations'}**`,
          yardstick: defaultPath && twin
            ? `A/A h2 twin ÷ tokengate-h2: median ${f2(aa?.median?.ratio)}${interval(aa?.median?.low, aa?.median?.high)}, pooled ${f2(aa?.ratio)}${interval(aa?.low, aa?.high)}${aa?.quietMedian ? ` (quiet rotations: median ${f2(aa.quietMedian.ratio)}${interval(aa.quietMedian.low, aa.quietMedian.high)})` : ''}; twin ÷ limit: median ${f2(twin.p99VsLimitMedianOfSlices)}${interval(twin.p99VsLimitMedianLow, twin.p99VsLimitMedianHigh)}, pooled ${f2(twin.p99VsLimit)}`
            : 'not judged: Check on grpc-js is the opt-in path (it saturates near 5,000/s at 3–8 KB on this machine, as its own floor does)',
          // Met when all of the judged statistic's 90 % interval is ≤ 1.2, missed when all of it
          // is above; only when the harness tells identical servers apart by less than the
          // target's margin: the A/A pair, same statistic, within 1/1.2–1.2 and its interval holding 1.
          pass: !defaultPath ? 'info' : !aaAgrees(aaJudged) ? `undecided: the A/A pair lands ${f2(aaJudged?.ratio)} × apart` : ceilingVerdict(x, lo, hi, 1.2),
        });
      }
    }
  }
  if (r.storm) {
    const counts = r.storm.events.map((e) => e.idpRequests);
    out.push({ target: 'exactly one IdP request per refresh event', measured: `${counts.join(', ')} (${r.storm.events.length} events)`, pass: counts.every((c) => c === 1) });
  }
  if (r.scale) {
    const sizes = Object.keys(r.scale.sizes).map(Number).sort((a, b) => a - b);
    const lo = sizes[0];
    const hi = sizes.at(-1);
    const mid = sizes.length > 2 ? sizes[1] : undefined;
    for (const [mode, t] of Object.entries(r.scale.throughput)) {
      const x = t[hi]?.rateVsBaseMedian ?? ratio(t[hi]?.rate, t[lo]?.rate);
      const [low, high] = [t[hi]?.rateVsBaseLow, t[hi]?.rateVsBaseHigh];
      const y = mid === undefined ? undefined : t[mid];
      out.push({
        target: `${f0(hi)} providers within 10% of ${lo} (by ${mode})`,
        measured: `${f2(x)} ×${interval(low, high)} median of ${t[hi]?.rateVsBasePerRound?.length ?? '—'} per-round ratios (median Check/s ${f0(t[hi]?.rate)} vs ${f0(t[lo]?.rate)}; CPU µs/Check ${f1(t[hi]?.cpuPerCheckUs)} vs ${f1(t[lo]?.cpuPerCheckUs)})`,
        yardstick: y?.rateVsBaseMedian !== undefined ? `${f2(y.rateVsBaseMedian)}${interval(y.rateVsBaseLow, y.rateVsBaseHigh)} (${mid} providers ÷ ${lo})` : '',
        pass: scaleVerdict(x, low, high),
      });
    }
    const rss = Math.max(r.scale.sizes[hi].afterWarmup.rss, r.scale.sizes[hi].afterLoad?.rss ?? 0);
    out.push({ target: `${f0(hi)} providers: RSS < 200 MB`, measured: `${mb(rss)} MB (peak of after warm-up / after load)`, pass: rss < 200 * 2 ** 20 });
  }
  return out;
}

function hotPathSection(r) {
  const hp = r.hotPath;
  const lines = ['## 1. Hot path against the gRPC floor', ''];
  lines.push(`Every target answers the same Envoy-shaped CheckRequest (15 headers, routed by \`context_extensions\`) with the same answer: status OK, \`${hp.answer.header.key}\` (${hp.answer.header.valueLength} bytes, \`append: ${hp.answer.header.append?.value}\`, \`append_action: ${hp.answer.header.append_action}\`) and dynamic metadata \`{${hp.answer.metadataKeys.join(', ')}}\`. Answers byte-for-byte identical across targets: **${hp.answersIdentical ? 'yes' : 'NO'}**.`, '');
  for (const [client, t] of Object.entries(hp.throughput)) {
    lines.push(`### Saturating throughput — ${client} load generator, ${r.meta.concurrency} calls in flight over ${r.meta.channels} HTTP/2 connections`, '');
    const fo = t['floor-object']?.rate;
    const fb = t['floor-buffer']?.rate;
    lines.push(table(
      ['target', 'Check/s (median)', 'min–max', '÷ floor (object), median of rounds', 'medians ÷ floor (object)', 'medians ÷ floor (Buffer)', 'server CPU µs/Check', 'server cores', 'load-gen cores', 'other processes (cores)', 'errors'],
      Object.entries(t).map(([k, v]) => [label(k), `**${f0(v.rate)}**`, `${f0(v.rateMin)}–${f0(v.rateMax)}`, `**${f2(v.rateVsFloorMedian)}**`, f2(ratio(v.rate, fo)), f2(ratio(v.rate, fb)), f1(v.cpuPerCheckUs), f2(v.serverCores), f2(v.loadgenCores), f2(v.otherCores), String(v.clientErrors)]),
    ), '');
  }
  for (const [client, lat] of Object.entries(hp.latency)) {
    lines.push(`### Latency at a fixed offered rate — ${f0(hp.offeredRate[client])} Check/s, ${client} load generator (open loop, ${r.plan?.fixedRate ? 'a fixed smoke-test rate' : `~${Math.round(r.meta.offeredFraction * 100)}% of the floor's ${client} throughput`})`, '');
    lines.push(table(
      ['target', 'achieved/s', 'p50 ms', 'p90 ms', 'p99 ms (pooled)', 'p99.9 ms', 'max ms', 'p99 per round (ms)', 'median p99 ms', 'p99 ÷ floor (median of rounds)', 'server CPU µs/Check', 'CPU ÷ floor (median of rounds)', 'server cores', 'send lag p99 ms', 'generator CPU µs/call'],
      Object.entries(lat).map(([k, v]) => [label(k), f0(v.achievedRate), f3(v.latency.p50), f3(v.latency.p90), f3(v.latency.p99), f3(v.latency.p999), f3(v.latency.max), v.p99PerRound.map(f2).join(', '), `**${f3(v.p99MedianOfRounds)}**`, `**${f2(v.p99VsFloorMedian)}**`, `**${f1(v.cpuPerCheckUs)}**`, f2(v.cpuVsFloorMedian), f2(v.serverCores), f3(v.lagP99), f1(v.generatorCpuUsPerCall)]),
    ), '');
  }
  lines.push('"p99 ÷ floor (median of rounds)": each round runs the targets back to back; the ratio is taken within a round, and the median over rounds is reported. The two floors do the same work per call, so how far apart *they* land is the noise yardstick of the run. "send lag" is how late the load generator sent calls against the ideal schedule: when it is a large part of the p99, the p99 measures the shared machine, not the server.', '');
  return lines.join('\n');
}

function targetsSection(r) {
  const rows = evaluateTargets(r);
  if (!rows.length) return '';
  return [
    '## Targets (measured, not asserted)',
    '',
    'Ratios are taken within each round (the targets of a round run back to back) and the median over rounds is reported. The yardstick column is the same ratio for servers that should come out equal: the *other* floor, which does the same work as the first, or, for scale, 100 providers against 1. How far it lands from 1.00 is the noise of this run.',
    '',
    table(['target', 'measured (tokengate)', 'noise yardstick: same ratio, equivalent servers', 'met'], rows.map((t) => [t.target, t.measured, t.yardstick ?? '', typeof t.pass === 'string' ? t.pass : t.pass ? 'yes' : '**no**'])),
    '',
  ].join('\n');
}

function sizesSection(r) {
  const sz = r.sizes;
  if (!sz) return '';
  const lines = ['## 1b. Request size: tokengate against the platform\'s limit', ''];
  lines.push('Envoy-shaped CheckRequests built with Envoy\'s protos (`bench/envoy-request.js`): **0.4k** is the bench\'s own request (15 headers); **3k** and **8k** add what a browser\'s call through Envoy carries (~30 headers: a cookie of 1.3 / 5.3 KB, `traceparent`, `x-forwarded-*`, XFCC, SPIFFE principals on both peers). The **limit** is a node:http2 server (no grpc-js) answering every Check with the same answer, gRPC-framed once at startup. The **grpc-js floor** decodes each request with proto-loader and encodes a constant answer object. tokengate answers a cache hit named by `context_extensions`, or by a `routes[]` rule on `api.example.com` with `x-tenant: blue` (on node:http2 each in a process of its own, so every judged target serves one slice per rotation; on grpc-js, information only, both in one process). **tokengate twin** is a second, identical tokengate process: its distance from tokengate is the harness\'s own noise (A/A). h2 load generator, ' + `${r.meta.concurrency} calls in flight over ${r.meta.channels} connections; ratios are taken within each round; "lowest" is the lowest of the alternating rounds.${sz.sizeIndependence ? ' The saturating rounds of every size alternate in one rotation (each target at each size takes its turn in every round), so the size independence target compares windows seconds apart; it is computed from the median over rounds of each term and judged with its 90 % interval (rounds resampled, the same rounds for every term): met when all of it is ≤ 1.1, missed when all of it is above, undecided otherwise.' : ''}`, '');
  lines.push(`Probes (answer per size and way of naming): ${Object.entries(sz.probes).map(([k, v]) => `${k}: ${v.provider}/${v.source}${v.injected ? '' : ' **NOT INJECTED**'}`).join('; ')}.`, '');
  const keys = Object.keys(Object.values(sz.closed)[0] ?? {});
  for (const size of Object.keys(sz.closed)) {
    const c = sz.closed[size];
    lines.push(`### ${size}: ${f0(sz.bytes[size].context_extensions)} bytes (context_extensions), ${f0(sz.bytes[size].route)} bytes (routed)`, '');
    lines.push(table(['server', 'Check/s (saturating)', '÷ limit', 'CPU µs/Check median', 'lowest round', '÷ limit (median)', '÷ limit (lowest)', '÷ grpc-js floor', 'client errors'],
      keys.map((k) => [label(k), f0(c[k].rate), f2(c[k].rateVsLimitMedian), f1(c[k].cpuPerCheckUs), f1(c[k].cpuPerCheckMinUs), f2(c[k].cpuVsLimitMedian), f2(c[k].cpuVsLimitMin), f2(c[k].cpuVsGrpcFloorMedian), f0(c[k].clientErrors)])), '');
    const o = sz.open[size] ?? {};
    const rows = [];
    const sliced = Object.values(o).some((at) => at['floor-h2']?.p99VsLimit !== undefined);
    for (const rate of Object.keys(o)) {
      for (const [k, v] of Object.entries(o[rate])) {
        rows.push(sliced
          ? [`${f0(Number(rate))}/s`, label(k), `${v.slices} × ${f0((v.calls ?? v.samples) / v.slices)}`, f0(v.achievedRate), f3(v.p50), `**${f3(v.p99)}**`, f3(v.p999), `**${f2(v.p99VsLimit)}**${interval(v.p99VsLimitLow, v.p99VsLimitHigh)}`, f3(v.p99MedianOfSlices), f3(v.p99MinOfSlices), f2(v.p99VsLimitMedianOfSlices), f2(v.p99VsLimitLowest), f3(v.lagP99), f1(v.generatorCpuUsPerCall), `${v.generatorGc.n} (max ${f1(v.generatorGc.maxMs)} ms)`, f2(v.loadgenCores), f2(v.otherCores), f1(v.cpuPerCheckUs), f0(v.errors)]
          : [`${f0(Number(rate))}/s`, label(k), f0(v.achievedRate), f3(v.p50MedianOfRounds), f3(v.p99MedianOfRounds), f3(v.p99MinOfRounds), f2(v.p99VsLimitMedian), f2(v.p99VsLimitMin), f3(v.lagP99), f1(v.cpuPerCheckUs), f0(v.errors)]);
      }
    }
    if (rows.length && sliced) {
      const aa = Object.entries(sz.aa?.[size] ?? {}).map(([rate, x]) => `${f0(Number(rate))}/s ${x.median ? `median of rotations ${f2(x.median.ratio)}${interval(x.median.low, x.median.high)}, ` : ''}pooled ${f2(x.ratio)}${interval(x.low, x.high)}`).join(', ');
      lines.push(table(['offered', 'server', 'slices × calls', 'achieved/s', 'p50 ms (pooled)', 'p99 ms (pooled)', 'p99.9 ms', 'p99 ÷ limit (pooled) [90 % interval]', 'p99 ms (median of slices)', 'p99 ms (lowest slice)', '÷ limit (median of slices)', '÷ limit (lowest)', 'send lag p99 ms (pooled)', 'generator CPU µs/call', 'generator GCs in windows', 'generator cores', 'other processes (cores)', 'CPU µs/Check', 'errors'], rows), '');
      if (aa) lines.push(`A/A (h2 twin ÷ tokengate on node:http2, p99): ${aa}.`, '');
    } else if (rows.length) {
      lines.push(table(['offered', 'server', 'achieved/s', 'p50 ms (median of rounds)', 'p99 ms (median)', 'p99 ms (lowest)', 'p99 ÷ limit (median)', 'p99 ÷ limit (lowest)', 'send lag p99 ms', 'CPU µs/Check', 'errors'], rows), '');
    }
  }
  if (sz.sliceMs) {
    lines.push(`**Fixed rates** (open loop, **${generatorName(sz.latClient)}** with \`${sz.loadgenFlags}\`): the targets take turns in slices of ${f0(sz.sliceMs)} ms (50 ms of each not recorded), one warm-up rotation discarded; a target's p99 is given pooled over every call of all its slices, and slice by slice. At ${f0(sz.judgedRate)}/s the limit, tokengate on node:http2 (the default Check path) and its identical twin rotate on their own; Check on grpc-js (the opt-in path) runs after them in a block of its own, as information. The p99 target is judged on the **median over rotations of the per-slice ratio** (the target's slice p99 ÷ the limit's slice p99 in the same rotation: the issue's "medians of alternating rounds", each round a slice), because a single 100+ ms stall sets the pooled p99 of every slice of the target it hits (bench/FINDINGS.md); the pooled ratio is given beside it. "[90 % interval]": the statistic over rotations resampled with replacement (slice i of every target is from the same rotation); the target is met when all of the interval is ≤ 1.2, missed when all of it is above, undecided otherwise — and undecided whatever the interval when the A/A pair (the twin against tokengate on node:http2, the same statistic) lands more than 1.2 × apart or its own interval excludes 1, since then the interval understates the run's noise. It is judged on the **quiet rotations** (every slice of the rotation had the rest of the machine, i.e. system busy time less the server's and the generator's, under ${f2(sz.quietCores)} cores) when there are at least ${sz.minQuietRotations} of them, else on all rotations; both are given. "send lag" is how late the generator sent calls against the ideal schedule, pooled; "generator CPU µs/call" is the generator process's own CPU time per call (process.cpuUsage over each slice, median of slices): what driving the rate costs the shared machine; "generator GCs in windows" counts the generator's own collections inside recorded windows (it should be 0).`, '');
  }
  return lines.join('\n');
}

function profileSection(r) {
  const p = r.profile;
  if (!p) return '';
  const lines = ['## 2. Where a Check\'s CPU goes (`--cpu-prof`, steady window, h2 load generator)', ''];
  const tg = p.tokengate;
  const fb = p['floor-buffer'];
  const fh = p['floor-h2'];
  if (tg?.layers && fb?.layers) {
    const layers = [...new Set([...tg.layers, ...fb.layers, ...(fh?.layers ?? [])].map((l) => l.layer))];
    const us = (s, l) => {
      const row = s?.layers?.find((x) => x.layer === l);
      return row ? (row.ms * 1000) / s.served : 0;
    };
    lines.push(`Request: ${p.requestSize ?? '0.4k'}. Busy CPU per Check: tokengate **${f1(tg.busyUsPerCheck)} µs**, grpc-js floor (Buffer) **${f1(fb.busyUsPerCheck)} µs**, node:http2 limit **${f1(fh?.busyUsPerCheck)} µs** (profiler on in all; sampled, so ±a few %).`, '');
    lines.push(table(['layer', 'tokengate µs/Check', 'floor (Buffer) µs/Check', 'node:http2 limit µs/Check', 'tokengate % of busy'],
      layers.map((l) => [l, f2(us(tg, l)), f2(us(fb, l)), fh?.layers ? f2(us(fh, l)) : '—', f1(tg.layers.find((x) => x.layer === l)?.pctOfBusy ?? 0)])), '');
    lines.push('Top self time in tokengate:', '');
    lines.push(table(['function', '% of busy', 'µs/Check'], tg.topSelf.slice(0, 15).map((x) => [`\`${x.fn}\``, f1(x.pctOfBusy), f2((x.ms * 1000) / tg.served)])), '');
    if (tg.grpcJsInclusive?.length) {
      lines.push('grpc-js in tokengate, inclusive (callees included; nested entries overlap):', '');
      lines.push(table(['function', '% of busy', 'µs/Check'], tg.grpcJsInclusive.slice(0, 20).map((x) => [`\`${x.fn}\``, f1(x.pctOfBusy), f2((x.ms * 1000) / tg.served)])), '');
    }
    const own = tg.tokengateInclusive.filter((x) => /authz-service|provider|route-table|check-response|cached-token/.test(x.fn));
    if (own.length) {
      lines.push('tokengate\'s own functions, inclusive (callees included):', '');
      lines.push(table(['function', '% of busy', 'µs/Check'], own.slice(0, 8).map((x) => [`\`${x.fn}\``, f2(x.pctOfBusy), f2((x.ms * 1000) / tg.served)])), '');
    }
  }
  return lines.join('\n');
}

function scaleSection(r) {
  const s = r.scale;
  if (!s) return '';
  const sizes = Object.keys(s.sizes).map(Number).sort((a, b) => a - b);
  const lines = ['## 3. Scale in providers and routes', ''];
  lines.push('One self-signed JWT provider (HS256, 30 min) and one route (`svc-<i>.bench.example`, `/v1/`) per provider. Memory after a forced GC.', '');
  const modes = Object.keys(s.throughput);
  lines.push(table(
    ['providers + routes', 'config parse ms', 'heap MB just after parse (garbage incl.)', 'warm-up ms (sign all)', 'RSS MB after warm-up', 'heap used MB', 'RSS MB after load', ...modes.flatMap((m) => [`Check/s by ${m}`, `÷ 1 provider (median of per-round ratios [90 %])`, `CPU µs/Check`])],
    sizes.map((n) => {
      const z = s.sizes[n];
      const base = sizes[0];
      return [f0(n), f0(z.parseMs), mb(z.afterParse?.heapUsed), f0(z.warmupMs), mb(z.afterWarmup.rss), mb(z.afterWarmup.heapUsed), mb(z.afterLoad?.rss), ...modes.flatMap((m) => [f0(s.throughput[m][n].rate), `${f2(s.throughput[m][n].rateVsBaseMedian ?? ratio(s.throughput[m][n].rate, s.throughput[m][base].rate))}${Number.isFinite(s.throughput[m][n].rateVsBaseLow) && n !== base ? ` [${f2(s.throughput[m][n].rateVsBaseLow)}–${f2(s.throughput[m][n].rateVsBaseHigh)}]` : ''}`, f1(s.throughput[m][n].cpuPerCheckUs)])];
    }),
  ), '');
  if (s.routeMatch) {
    lines.push('Route matching alone (`RouteTable.match`, ns per call; "hit" asks for the LAST rule, "miss" matches none):', '');
    const shapes = [...new Set(s.routeMatch.map((x) => x.shape))];
    lines.push(table(['rules', ...shapes.flatMap((sh) => [`${sh} hit`, `${sh} miss`])],
      sizes.map((n) => [f0(n), ...shapes.flatMap((sh) => {
        const x = s.routeMatch.find((y) => y.shape === sh && y.routes === n);
        return [f0(x?.hitNs), f0(x?.missNs)];
      })])), '');
    lines.push('`exact`: `authority: svc-<i>.bench.example` + `pathPrefix: /v1/`; `wildcard`: `authority: "*.svc-<i>.bench.example"`; `pathOnly`: no authority, `pathPrefix: /svc-<i>/`.', '');
  }
  return lines.join('\n');
}

function redisSection(r) {
  const x = r.redis;
  if (!x) return '';
  const lines = ['## 4. With the Redis store', ''];
  if (x.skipped) {
    lines.push(`skipped: ${x.skipped}`, '');
    return lines.join('\n');
  }
  const fo = x.throughput['floor-object'];
  lines.push(`h2 load generator; latency at ${f0(x.offeredRate)} Check/s (open loop).`, '');
  lines.push(table(['target', 'Check/s (saturating)', '÷ floor', 'CPU µs/Check (sat.)', 'p50 ms', 'median p99 ms', 'p99 ÷ floor (median of rounds)', 'CPU µs/Check (fixed rate)', '÷ floor'],
    Object.keys(x.throughput).map((k) => [label(k), f0(x.throughput[k].rate), f2(ratio(x.throughput[k].rate, fo.rate)), f1(x.throughput[k].cpuPerCheckUs), f3(x.latency[k].p50MedianOfRounds), f3(x.latency[k].p99MedianOfRounds), f2(x.latency[k].p99VsFloorMedian), f1(x.latency[k].cpuPerCheckUs), f2(ratio(x.latency[k].cpuPerCheckUs, x.latency['floor-object'].cpuPerCheckUs))])), '');
  const total = x.commandsFromTokengate.total;
  lines.push(`Redis commands sent by tokengate's own connections (${x.tokengateConnections.length}, seen with \`MONITOR\`) while it answered **${f0(x.checksServedByRedisTarget)} Checks**: **${total}** ${total ? `(${Object.entries(x.commandsFromTokengate.counts).map(([k, v]) => `${k} ${v}`).join(', ')})` : ''}. First answer's source: \`${x.answerSource}\`.`, '');
  lines.push(`Server-wide \`INFO commandstats\` delta over the same span (every client of this Redis, other users included): ${Object.keys(x.serverWideCommandsDuringRun).length ? Object.entries(x.serverWideCommandsDuringRun).map(([k, v]) => `${k} ${v}`).join(', ') : 'none'}.`, '');
  return lines.join('\n');
}

function stormSection(r) {
  const s = r.storm;
  if (!s) return '';
  const lines = ['## 5. Refresh storms', ''];
  lines.push(`A \`client_credentials\` provider against the demo IdP; Checks spread over ${s.channels} HTTP/2 connections; IdP requests counted at the IdP. **expiry**: the token is issued with a 2 s lifetime and \`refresh.before: 0s\`, so its refresh starts at hard expiry; the N Checks are fired the moment the IdP sees that request. **invalidate**: \`POST /v1/tokens/<provider>/invalidate\` (what an upstream 401 does), then N Checks at once. **invalidate, slow IdP**: the same with an IdP that takes 2 s and a \`waitBudget\` of 10 s, so every Check is waiting on the one refresh. "sources" says how many Checks waited for the refresh (\`refreshed\`) and how many reached tokengate after it had finished (\`cache\`).`, '');
  lines.push(table(['trigger', 'N', 'IdP delay ms', 'waitBudget ms', 'IdP requests', 'OK', 'denied', 'gRPC errors', 'sources', 'p50 ms', 'p99 ms', 'max ms', 'dispatch ms'],
    s.events.map((e) => [e.trigger, f0(e.n), f0(e.idpDelayMs), f0(e.waitBudgetMs), `**${e.idpRequests}**`, f0(e.ok), f0(e.denied), f0(e.grpcErrors), Object.entries(e.sources).map(([k, v]) => `${k} ${v}`).join(', '), f1(e.latency.p50), f1(e.latency.p99), f1(e.latency.max), f0(e.dispatchMs)])), '');
  const denied = s.events.filter((e) => e.denied || e.grpcErrors);
  if (denied.length) lines.push(`Denials/errors seen: ${denied.map((e) => `${e.trigger} N=${e.n}: ${String(e.lastError ?? '').slice(0, 160)}`).join('; ')}`, '');
  return lines.join('\n');
}

function baselineSection(r, file) {
  if (!file || !fs.existsSync(file)) return '';
  const b = JSON.parse(fs.readFileSync(file, 'utf8'));
  const rows = [];
  const add = (name, get, fmt) => {
    let before;
    let after;
    try {
      before = get(b);
    } catch {
      before = NaN;
    }
    try {
      after = get(r);
    } catch {
      after = NaN;
    }
    rows.push([name, fmt(before), fmt(after)]);
  };
  for (const n of [1, 100, 10_000]) {
    add(`route match, ${f0(n)} exact rules, last rule (ns)`, (x) => x.scale.routeMatch.find((y) => y.shape === 'exact' && y.routes === n).hitNs, f0);
  }
  add('route match, 10,000 wildcard rules, last rule (ns)', (x) => x.scale.routeMatch.find((y) => y.shape === 'wildcard' && y.routes === 10_000).hitNs, f0);
  add('route match, 10,000 path-only rules, last rule (ns)', (x) => x.scale.routeMatch.find((y) => y.shape === 'pathOnly' && y.routes === 10_000).hitNs, f0);
  add('route match, 10,000 exact rules, no rule matches (ns)', (x) => x.scale.routeMatch.find((y) => y.shape === 'exact' && y.routes === 10_000).missNs, f0);
  add('10,000 providers, Check/s by routes[] ÷ 1 provider', (x) => x.scale.throughput['routes[] (last route)'][10000].rate / x.scale.throughput['routes[] (last route)'][1].rate, f2);
  add('10,000 providers, CPU µs/Check by routes[]', (x) => x.scale.throughput['routes[] (last route)'][10000].cpuPerCheckUs, f1);
  const gl = (x) => x.hotPath.latency['grpc-js'] ?? x.hotPath.latency;
  add('hot path CPU µs/Check at fixed rate (grpc-js): tokengate', (x) => gl(x).tokengate.cpuPerCheckUs, f1);
  add('hot path CPU µs/Check at fixed rate (grpc-js): floor (object)', (x) => gl(x)['floor-object'].cpuPerCheckUs, f1);
  add('hot path CPU/Check ratio tokengate ÷ floor (object), grpc-js', (x) => gl(x).tokengate.cpuPerCheckUs / gl(x)['floor-object'].cpuPerCheckUs, f2);
  add('profile: tokengate busy µs/Check', (x) => x.profile.tokengate.busyUsPerCheck, f1);
  add('profile: floor (Buffer) busy µs/Check', (x) => x.profile['floor-buffer'].busyUsPerCheck, f1);
  add('profile: protobuf decode µs/Check (tokengate)', (x) => (x.profile.tokengate.layers.find((l) => l.layer === 'protobuf').ms * 1000) / x.profile.tokengate.served, f2);
  add('throughput ratio tokengate ÷ floor (object), h2', (x) => x.hotPath.throughput.h2.tokengate.rate / x.hotPath.throughput.h2['floor-object'].rate, f2);
  add('10,000 providers: RSS MB after load', (x) => x.scale.sizes[10000].afterLoad.rss / 2 ** 20, f1);
  return ['## Before / after the changes in this round', '', `Before: the same harness on the code as it was (${b.meta.date}, ${b.meta.command}); after: this run. Same machine, both noisy (see "other processes").`, '', table(['figure', 'before', 'after'], rows), ''].join('\n');
}

export function renderReport(r, { baselineFile, findingsFile } = {}) {
  const m = r.meta;
  const other = Object.values(r.hotPath?.throughput ?? {}).flatMap((t) => Object.values(t).map((v) => v.otherCores));
  const parts = [
    '# tokengate benchmark report',
    `Generated by \`${m.command}\` on ${m.date} in ${f0(m.durationS)} s. Machine: **${m.cores} cores** (${m.cpuModel}), ${f1(m.memoryGB)} GB, ${m.platform}; **Node ${m.node}**, @grpc/grpc-js ${m.grpcJs}, @grpc/proto-loader ${m.protoLoader}. Servers under test (tokengate and floors alike) run with \`${m.serverFlags ?? '(Node defaults)'}\`, the flags the Docker image ships (\`BENCH_SERVER_FLAGS\` overrides). Load average at start ${m.loadavgAtStart.map(f2).join(' / ')}, at end ${m.loadavgAtEnd?.map(f2).join(' / ')}.`,
    `**The load generator shares this ${m.cores}-core machine with the server under test** (one process each, plus an idle orchestrator); other processes on the machine used a median of ${f2(median(other.filter(Number.isFinite)))} cores during the throughput windows (column "other processes"). Figures are medians of alternating rounds (A B C, B C A, …; a warm-up round discarded), so drift hits every target alike; the judged rotations (the size matrix, its 5,000/s p99 block and the scale phase) also balance which target runs right after which (\`bench/rotation.js\`), so what one slice leaves behind does not always land on the same neighbour; single rounds vary by ±20% or more on a shared machine.`,
    targetsSection(r),
    r.hotPath ? hotPathSection(r) : '',
    sizesSection(r),
    profileSection(r),
    scaleSection(r),
    redisSection(r),
    stormSection(r),
    baselineSection(r, baselineFile),
  ];
  if (findingsFile && fs.existsSync(findingsFile)) parts.push(fs.readFileSync(findingsFile, 'utf8').trim());
  parts.push(METHOD);
  return `${parts.map((p) => p.trim()).filter((p) => p !== '').join('\n\n')}\n`;
}

const METHOD = `## How this is measured

- **Processes.** Each server under test runs in its own process (\`bench/target.js\`), the load generator in another (\`bench/loadgen.js\`), all started by \`bench/run.js\` with \`child_process.fork\` and killed when it exits. Only 127.0.0.1 is used.
- **Floors.** Do-nothing ext_authz servers on tokengate's stack: the same \`@grpc/grpc-js\` server, the same \`GRPC_SERVER_OPTIONS\`, the same service definition (so grpc-js decodes every CheckRequest with the same proto-loader options as tokengate), answering the same CheckResponse. *floor (constant object)* returns one constant response object that grpc-js encodes on every call: "do nothing" in a plain grpc-js service, and the floor the targets are judged against. *floor (constant pre-encoded Buffer)* returns a constant pre-encoded Buffer through a pass-through serialiser: the least this stack can do per call, and what tokengate's cache hit does too.
- **The limit** (*floor-h2*, section 1b) is no gRPC stack at all: a \`node:http2\` server that reads each request to its end and answers every stream with the same CheckResponse bytes, gRPC-framed once at startup, and a \`grpc-status: 0\` trailer. *tokengate-h2* is tokengate with \`listen.checkServer: http2\`: Check served on \`node:http2\` by \`src/server/h2/\` (tokengate's own handler, no grpc-js call machinery), every other service on grpc-js; see FINDINGS.
- **tokengate** is \`startTokengate\` on a parsed YAML config: memory store, one self-signed JWT provider, a Check routed by \`context_extensions.provider\`; the token is cached, so every Check is a cache hit.
- **Load generators.** *grpc-js*: \`@grpc/grpc-js\` clients, one channel per connection (\`grpc.use_local_subchannel_pool\` and a distinct channel option, so N channels are N HTTP/2 connections), the CheckRequest pre-encoded once, answers not decoded. On this machine it costs more CPU per call than the server it drives, so with one core left for it, it — not the server — is the bottleneck. *h2*: the same gRPC-over-HTTP/2 framing and bytes on \`node:http2\` without grpc-js's client call stack, with a \`grpc-timeout\` header as Envoy's gRPC client sends; it costs about half as much, so the server saturates first. Both are reported.
- **Throughput** is closed loop at a fixed concurrency; the rate and **CPU per Check** (\`process.cpuUsage()\` delta ÷ Checks answered) are read inside the server process over a steady window after a ramp. At saturation CPU/Check mostly mirrors throughput; the CPU/Check that matters is the one at the **fixed offered rate** (open loop, the same rate for every target, below saturation), where latency is measured too: from each call's send to its answer, all calls after a warm-up. The open-loop schedule runs on 1 ms timers (a busy loop would steal the server's core), so calls leave in small bursts; the lag column shows how late.
- **Profile**: \`node --cpu-prof\` on a separate tokengate and floor (Buffer), samples restricted to the steady load window, self time grouped by layer. Set \`BENCH_KEEP_PROFILES=1\` to keep the raw \`.cpuprofile\` files in \`bench/profiles/\` (open them in Chrome DevTools).
- **Storms**: the demo IdP runs in the orchestrator; IdP requests are counted there.
- **Redis**: tokengate's Redis connections are the ones that appeared while it started (\`CLIENT LIST\` before/after); \`MONITOR\` counts what exactly those connections send during the hot-path rounds.
- \`BENCH_QUICK=1 npm run bench\` runs every phase with one short round (~1 min, noisier); \`BENCH_SCENARIO=smoke\` only the floor and tokengate for about a second each (what \`test/bench/harness.test.ts\` runs). \`BENCH_CONCURRENCY\` and \`BENCH_CHANNELS\` change the closed loop.
`;

export function writeReport(results, file, opts) {
  fs.writeFileSync(file, renderReport(results, opts));
}

// `node bench/report.js [dir]`: re-renders dir/REPORT.md from dir/results.json (default bench/),
// e.g. after editing FINDINGS.md, without measuring again.
if (process.argv[1] && fs.realpathSync(process.argv[1]) === fs.realpathSync(new URL(import.meta.url).pathname)) {
  const here = path.dirname(new URL(import.meta.url).pathname);
  const dir = path.resolve(process.argv[2] ?? here);
  const results = JSON.parse(fs.readFileSync(path.join(dir, 'results.json'), 'utf8'));
  writeReport(results, path.join(dir, 'REPORT.md'), { baselineFile: path.join(here, 'baseline-before.json'), findingsFile: path.join(here, 'FINDINGS.md') });
  process.stdout.write(`wrote ${path.join(dir, 'REPORT.md')}\n`);
}
