// `node --import ./test/support/module-log.mjs …`: appends the URL of every module the ESM
// loader resolves to the file named by TOKENGATE_MODULE_LOG, so a test can tell which packages
// a process loaded (tracing-sdk.test.ts: the OpenTelemetry SDK only with OTEL_* set).
import { register } from 'node:module';

register('./module-log-hook.mjs', import.meta.url);
