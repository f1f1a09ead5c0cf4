// Chains of providers: every link names a provider that exists, and no chain is a cycle.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';

function problems(yaml: string, env: Record<string, string> = {}): string {
  try {
    parseConfig(yaml, { env });
    return '';
  } catch (err) {
    return (err as Error).message;
  }
}

const JWT = 'urn:ietf:params:oauth:token-type:jwt';

describe('provider chains in the config', () => {
  it('refuses a cycle, naming the providers in it', () => {
    const msg = problems(`
providers:
  imp:
    source: { type: gcp_impersonation, serviceAccount: sa@p.iam.gserviceaccount.com, via: sts }
  sts:
    source: { type: token_exchange, tokenUrl: http://127.0.0.1:1/token, subjectToken: { provider: imp, type: "${JWT}" } }
`);
    expect(msg).toMatch(/providers form a cycle: (imp → sts → imp|sts → imp → sts)/);
  });

  it('refuses a link to a provider that does not exist, naming both', () => {
    const msg = problems(`
providers:
  imp:
    source: { type: gcp_impersonation, serviceAccount: sa@p.iam.gserviceaccount.com, via: missing-sts }
`);
    expect(msg).toContain('providers.imp.source.via: names no configured provider (missing-sts)');
  });

  it('accepts a chain static → token_exchange → gcp_impersonation', () => {
    expect(problems(`
providers:
  k8s-sa:
    source: { type: static, file: /var/run/secrets/tokens/gcp }
  sts:
    source: { type: token_exchange, tokenUrl: http://127.0.0.1:1/v1/token, subjectToken: { provider: k8s-sa, type: "${JWT}" } }
  gcp:
    source: { type: gcp_impersonation, serviceAccount: sa@p.iam.gserviceaccount.com, via: sts, scopes: [https://www.googleapis.com/auth/cloud-platform], lifetime: 30m }
`)).toBe('');
  });

  it('checks auth-method fields and metadata flavors', () => {
    const msg = problems(`
providers:
  a:
    source: { type: client_credentials, tokenUrl: https://idp.example/token, clientId: c, authMethod: client_assertion }
  b:
    source: { type: client_credentials, tokenUrl: https://idp.example/token, clientId: c, authMethod: tls_client_auth }
  c:
    source: { type: metadata, flavor: azure }
  d:
    source: { type: client_credentials, issuer: http://idp.example, clientId: c, clientSecret: s }
  e:
    source: { type: client_credentials, issuer: https://idp.example, tokenUrl: https://idp.example/t, clientId: c, clientSecret: s }
  f:
    source: { type: metadata, flavor: gcp, endpoint: http://169.254.169.254 }
`);
    expect(msg).toContain('providers.a.source.clientAssertionFile: is required with authMethod: client_assertion');
    expect(msg).toContain('providers.b.source.tls: certFile and keyFile are required with authMethod: tls_client_auth');
    expect(msg).toContain('providers.c.source.resource: is required with flavor: azure');
    expect(msg).toContain('providers.d.source.issuer: must be https');
    expect(msg).toContain('providers.e.source.issuer: tokenUrl and issuer are alternatives');
    // Plain http to the link-local metadata address needs no opt-in.
    expect(msg).not.toContain('providers.f');
  });
});
