// test/security/listener.test.ts again, with Check served on node:http2 (`listen.checkServer: http2`).
import { useCheckServer } from '../support/check-server.js';

useCheckServer('http2');
await import('./listener.test.js');
