import https from 'node:https';
import { it } from 'vitest';
import { TestPki, spkiPin, spkiPinWithOpenssl } from './support/pki.js';
import { createNodeTransport } from '../../src/tokens/http/transport.js';
it('scratch', async () => {
const pki = new TestPki();
const ca = pki.ca('ca');
for (const type of ['ec', 'rsa'] as const) {
  const srv = pki.issue(ca, 'srv-' + type, 'server', type);
  const pin = spkiPin(srv.cert);
  console.log(type, pin, spkiPinWithOpenssl(srv.certFile));
  const s = https.createServer({ key: srv.key, cert: srv.cert }, (req, res) => { res.setHeader('content-type','application/json'); res.end('{"access_token":"x"}'); });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as any).port;
  const t = createNodeTransport({ ca: ca.cert, pinSha256: pin });
  try {
    const r = await t({ url: new URL(`https://127.0.0.1:${port}/t`), headers: {}, body: '', signal: AbortSignal.timeout(3000) });
    console.log(type, 'ok', r.status);
  } catch (e) { console.log(type, 'fail', (e as any).code, (e as Error).message); }
  t.close(); s.close();
}
pki.cleanup();
});
