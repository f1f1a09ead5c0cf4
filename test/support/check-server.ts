// Which serving path Check runs on in this test file (`listen.checkServer`). The contract
// suites run once as they are (the default) and once more through a `*.grpc-js.test.ts` twin
// that calls `useCheckServer('grpc-js')` and then imports the suite.
import type { CheckServer } from '../../src/config/types.js';

let underTest: CheckServer | undefined;

export function useCheckServer(server: CheckServer): void {
  underTest = server;
}

/** The path chosen for this file, undefined for the config's own (the default). */
export function checkServerUnderTest(): CheckServer | undefined {
  return underTest;
}

/** YAML `listen:` lines naming the path under test ('' for the default). */
export function checkServerYaml(indent = '  '): string {
  return underTest ? `${indent}checkServer: ${underTest}\n` : '';
}
