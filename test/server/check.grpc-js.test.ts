// test/server/check.test.ts again, with Check served by grpc-js (`listen.checkServer: grpc-js`);
// the suite itself runs on the default, node:http2.
import { useCheckServer } from '../support/check-server.js';

useCheckServer('grpc-js');
await import('./check.test.js');
