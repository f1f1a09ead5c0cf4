export function oneSlicePerProcess<T extends { key: string; child: object }>(targets: T[]): T[];
