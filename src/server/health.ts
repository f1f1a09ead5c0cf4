// grpc.health.v1.Health for "" and the Authorization service: NOT_SERVING until config is
// loaded and every provider has had its first fetch attempt, and again from shutdown on.
import type * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { AUTHZ_SERVICE_NAME } from './protos.js';

const SERVICES = ['', AUTHZ_SERVICE_NAME] as const;

export class Health {
  private readonly impl = new HealthImplementation(Object.fromEntries(SERVICES.map((s) => [s, 'NOT_SERVING'])));
  private serving = false;

  addTo(server: grpc.Server): void {
    this.impl.addToServer(server);
  }

  set(serving: boolean): void {
    this.serving = serving;
    for (const s of SERVICES) this.impl.setStatus(s, serving ? 'SERVING' : 'NOT_SERVING');
  }

  get isServing(): boolean {
    return this.serving;
  }
}
