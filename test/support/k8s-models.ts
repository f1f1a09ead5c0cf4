// Schema checks for core Kubernetes and Istio objects with the kubernetes-models packages
// (generated from the upstream OpenAPI specs and CRDs).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

interface ModelClass {
  new (data: Record<string, unknown>): { validate(): void };
}

/** apiVersion → module that exports one class per kind. */
const MODULES: Record<string, string> = {
  v1: 'kubernetes-models/v1',
  'apps/v1': 'kubernetes-models/apps/v1',
  'policy/v1': 'kubernetes-models/policy/v1',
  'autoscaling/v2': 'kubernetes-models/autoscaling/v2',
  'networking.istio.io/v1beta1': '@kubernetes-models/istio/networking.istio.io/v1beta1',
  'security.istio.io/v1': '@kubernetes-models/istio/security.istio.io/v1',
  'install.istio.io/v1alpha1': '@kubernetes-models/istio/install.istio.io/v1alpha1',
};

export function hasModel(apiVersion: string, kind: string): boolean {
  const mod = MODULES[apiVersion];
  return !!mod && typeof (require(mod) as Record<string, unknown>)[kind] === 'function';
}

/** Problems ([] when valid). Throws when no model covers the kind. */
export function validateModel(manifest: Record<string, any>): string[] {
  const mod = MODULES[String(manifest.apiVersion)];
  const Model = mod ? (require(mod) as Record<string, ModelClass | undefined>)[String(manifest.kind)] : undefined;
  if (!Model) throw new Error(`no model for ${String(manifest.apiVersion)} ${String(manifest.kind)}`);
  try {
    new Model(manifest).validate();
    return [];
  } catch (err) {
    return [err instanceof Error ? err.message : String(err)];
  }
}
