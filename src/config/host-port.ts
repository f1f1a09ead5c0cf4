// Redis node addresses (`sentinels`, `cluster`): "host:port", "[v6]:port" or a bare "host".
// One parser for the config check and the client, so what check-config accepts serve can use.

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** The address, or undefined when `text` is not one (port outside 1-65535 included). */
export function parseHostPort(text: string, defaultPort: number): HostPort | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s/[\]@]+))(?::(\d{1,5}))?$/.exec(text.trim());
  if (!m) return undefined;
  const port = m[3] ? Number(m[3]) : defaultPort;
  if (port < 1 || port > 65535) return undefined;
  return { host: (m[1] ?? m[2])!, port };
}
