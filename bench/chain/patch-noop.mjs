globalThis.__patchSession = () => undefined;
