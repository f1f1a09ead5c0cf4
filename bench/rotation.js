/**
 * The judged rotation's rule: every target is a process of its own, so each process serves one
 * slice per rotation and every slice follows the same idle time. Two keys on one process put one
 * slice straight after another of the same process (1 s of serving without a break where every
 * other slice follows 1.5 s idle), and that slice read ~10 % above its sibling (FINDINGS, "One
 * slice per process").
 *
 * @template {{ key: string, child: object }} T
 * @param {T[]} targets
 * @returns {T[]} the same targets
 */
export function oneSlicePerProcess(targets) {
  const byChild = new Map();
  for (const t of targets) byChild.set(t.child, [...(byChild.get(t.child) ?? []), t.key]);
  const shared = [...byChild.values()].filter((keys) => keys.length > 1);
  if (shared.length) {
    throw new Error(`bench: the judged rotation needs one process per target; ${shared.map((k) => k.join(' and ')).join('; ')} share a process`);
  }
  return targets;
}
