import type { ConfigProblem } from './types.js';

/** A config that cannot be used. `problems` are `path: problem` pairs; no value is ever quoted. */
export class ConfigError extends Error {
  readonly code = 'ERR_CONFIG_INVALID';
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[], options?: { cause?: unknown }) {
    super(`invalid config:\n${formatProblems(problems)}`, options);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export function formatProblems(problems: readonly ConfigProblem[]): string {
  return problems.map((p) => `${p.path || '(root)'}: ${p.problem}`).join('\n');
}
