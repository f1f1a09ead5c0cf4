// test/server/per-caller.test.ts again, with Check served by grpc-js (`listen.checkServer: grpc-js`):
// per-caller answers are kept framed for the node:http2 path, and grpc-js must get the message.
import { useCheckServer } from '../support/check-server.js';

useCheckServer('grpc-js');
await import('./per-caller.test.js');
