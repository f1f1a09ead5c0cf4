export function oneSlicePerProcess<T extends { key: string; child: object }>(targets: T[]): T[];
export function balancedRotations(n: number): number[][];
export function rowOfRound(plan: number[][], r: number): number[];
