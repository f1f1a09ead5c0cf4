// V8's allocation-site pretenuring off at run time (v8.setFlagsFromString), as tokengate would.
import v8 from 'node:v8';
v8.setFlagsFromString('--no-allocation-site-pretenuring');
globalThis.__patchSession = () => undefined;
