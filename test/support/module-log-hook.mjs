// The resolve hook behind module-log.mjs (runs on the loader's own thread).
import { appendFileSync } from 'node:fs';

const file = process.env.TOKENGATE_MODULE_LOG;

export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  if (file) appendFileSync(file, `${resolved.url}\n`);
  return resolved;
}
