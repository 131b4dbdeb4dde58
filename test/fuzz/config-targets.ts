/**
 * Config files from users: the `up` WireGuard YAML (`parseWireguardConfig`) and the node YAML
 * (`parseNodeConfig`). Inputs are valid files with structured edits (a field set to any YAML value,
 * deleted, renamed by a typo, a list unwrapped or a mapping wrapped in a list — the mistakes YAML
 * indentation invites), byte-level mutations of the text, and arbitrary text.
 *
 * Contract: a config, or the module's ConfigError whose every line starts with `<source>: `; never
 * another exception. Secrets are never echoed: a private key, preshared key or cluster secret (even
 * misplaced under a typo'd key or inside a mis-indented section), and the password of a proxy URL.
 */
import fc from 'fast-check';
import { parseDocument, stringify as stringifyYaml, type Document } from 'yaml';
import { ConfigError as WgConfigError, parseWireguardConfigYaml, readWireguardConfigYaml } from '../../src/config/wireguard-config.js';
import { ConfigError as NodeConfigError, parseNodeConfigYaml, readNodeConfigYaml } from '../../src/kubespan/config.js';
import { maskProxyUrl, parseProxyUrl } from '../../src/discovery-client/proxy.js';
import { applyMutation, mutationArb, type Mutation } from './mutate.js';
import { expectThat, type FuzzTarget } from './target.js';

const b64key = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('base64'));

/** A secret in a secret field: a valid key, or a damaged one (still in its field). */
const secretArb = fc.oneof(
  { weight: 3, arbitrary: b64key },
  { weight: 1, arbitrary: fc.tuple(b64key, fc.integer({ min: 0, max: 43 }), fc.constantFrom('!', '-', '_', ' ', 'é')).map(([k, i, c]) => k.slice(0, i) + c + k.slice(i + 1)) },
  { weight: 1, arbitrary: b64key.map((k) => k.slice(0, 40)) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 31, maxLength: 31 }).map((b) => Buffer.from(b).toString('base64')) },
);

const anyValueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.integer(),
  fc.double({ noNaN: false }),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.oneof(fc.string({ maxLength: 12 }), fc.integer()), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string({ maxLength: 12 }), fc.integer()), { maxKeys: 3 }),
  fc.constantFrom('10.0.0.1/24', 'fd00::1/64', '192.0.2.1:51820', '[fd00::1]:51820', 'host.example:51820', '25s', '1m30s', '0', '-1s', '1.5s', 'http://proxy:3128'),
);

type Edit =
  | { op: 'set'; path: number; value: unknown }
  | { op: 'delete'; path: number }
  | { op: 'rename'; path: number; at: number; char: string }
  | { op: 'unwrap-list'; path: number }
  | { op: 'wrap-in-list'; path: number }
  | { op: 'add-key'; path: number; key: string; value: unknown };

const editArb: fc.Arbitrary<Edit> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('set' as const), path: fc.nat(), value: anyValueArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), path: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('rename' as const), path: fc.nat(), at: fc.nat(), char: fc.constantFrom('x', 'Z', '_', 's', '') }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('unwrap-list' as const), path: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('wrap-in-list' as const), path: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('add-key' as const), path: fc.nat(), key: fc.string({ minLength: 1, maxLength: 10 }), value: anyValueArb }) },
);

type Path = (string | number)[];

/** Every path to a mapping key or list item in `root` (the root itself excluded). */
function allPaths(root: unknown, prefix: Path = []): Path[] {
  const out: Path[] = [];
  if (Array.isArray(root)) {
    root.forEach((v, i) => {
      out.push([...prefix, i]);
      out.push(...allPaths(v, [...prefix, i]));
    });
  } else if (root !== null && typeof root === 'object') {
    for (const [k, v] of Object.entries(root)) {
      out.push([...prefix, k]);
      out.push(...allPaths(v, [...prefix, k]));
    }
  }
  return out;
}

function parentOf(root: unknown, path: Path): Record<string | number, unknown> | null {
  let cur: unknown = root;
  for (const k of path.slice(0, -1)) {
    if (cur === null || typeof cur !== 'object') return null;
    cur = (cur as Record<string | number, unknown>)[k];
  }
  return cur !== null && typeof cur === 'object' ? (cur as Record<string | number, unknown>) : null;
}

/**
 * Applies edits to a deep copy of `base`. Paths whose last key matches `protect` keep their key and
 * their value's place (only its value may be replaced by another secret-shaped value): a damaged
 * secret under a renamed key is no longer recognisable as a secret by anyone.
 */
function applyEdits(base: unknown, edits: Edit[], protect: RegExp): unknown {
  const root = structuredClone(base) as Record<string, unknown>;
  for (const e of edits) {
    const paths = allPaths(root);
    if (paths.length === 0) break;
    const path = paths[e.path % paths.length]!;
    const last = path[path.length - 1]!;
    const parent = parentOf(root, path);
    if (!parent) continue;
    const isProtected = path.some((k) => typeof k === 'string' && protect.test(k));
    switch (e.op) {
      case 'set':
        if (!isProtected) parent[last] = e.value;
        break;
      case 'delete':
        if (Array.isArray(parent)) parent.splice(last as number, 1);
        else delete parent[last];
        break;
      case 'rename': {
        if (typeof last !== 'string' || isProtected) break;
        const at = e.at % (last.length + 1);
        const renamed = last.slice(0, at) + e.char + last.slice(at + 1);
        if (renamed === '' || renamed in parent) break;
        parent[renamed] = parent[last];
        delete parent[last];
        break;
      }
      case 'unwrap-list': {
        const v = parent[last];
        if (Array.isArray(v) && v.length > 0) parent[last] = v[0];
        break;
      }
      case 'wrap-in-list':
        parent[last] = [parent[last]];
        break;
      case 'add-key': {
        const v = parent[last];
        if (v !== null && typeof v === 'object' && !Array.isArray(v) && !protect.test(e.key)) (v as Record<string, unknown>)[e.key] = e.value;
        break;
      }
    }
  }
  return root;
}

/** What the config modules promise never to show under any key: long base64 runs, 64 hex digits. */
const LOOKS_LIKE_KEY = /^(?:[A-Za-z0-9+/]{40,}={0,2}|[0-9a-fA-F]{64})$/;

/** Every 16-character window of each secret (whole secret when shorter). */
function windows(secrets: string[]): string[] {
  const out: string[] = [];
  for (const s of secrets) {
    if (s.length < 8) continue;
    if (s.length <= 16) out.push(s);
    else for (let i = 0; i + 16 <= s.length; i++) out.push(s.slice(i, i + 16));
  }
  return out;
}

function assertNoSecret(message: string, secrets: string[], what: string): void {
  const forms = windows(secrets).flatMap((w) => [w, JSON.stringify(w).slice(1, -1)]);
  for (const w of forms) expectThat(!message.includes(w), () => `${what}: a secret is echoed in the error (${JSON.stringify(w)}):\n${message}`);
}

/** Strings under secret-named keys of the YAML as it parses (for byte-mutated text). */
export function secretsInDocument(text: string, secretKey: RegExp): string[] {
  return secretsOfDocument(parseDocument(text), secretKey);
}

/**
 * Strings under secret-named keys of a parsed YAML document. The config targets pass the document the
 * parser under test built from the text (the parse is the costly part of a case, so it is done once):
 * the parsers' options differ from yaml's defaults only in how errors are worded, not in the tree.
 */
export function secretsOfDocument(parsed: Document, secretKey: RegExp): string[] {
  let doc: unknown;
  try {
    // toJS, not parse(): no process warnings, and Map keys stay what they are
    doc = parsed.toJS({ maxAliasCount: 100, mapAsMap: true });
  } catch {
    return [];
  }
  const out: string[] = [];
  const seen = new Set<object>(); // aliases make the document a graph
  const walk = (v: unknown, key: string): void => {
    if (typeof v === 'string' && secretKey.test(key) && v.length >= 12) out.push(v);
    if (v === null || typeof v !== 'object' || seen.has(v)) return;
    seen.add(v);
    if (Array.isArray(v)) v.forEach((x) => walk(x, key));
    else if (v instanceof Map) for (const [k, x] of v) walk(x, typeof k === 'string' ? k : '');
    else for (const [k, x] of Object.entries(v)) walk(x, k);
  };
  walk(doc, '');
  return out;
}

/** Runs `fn` while capturing process warnings (a library's warning prints text from the file on stderr). */
function withWarnings<T>(fn: () => T): { result?: T; error?: unknown; warnings: string[] } {
  const warnings: string[] = [];
  const original = process.emitWarning;
  process.emitWarning = ((w: string | Error) => void warnings.push(typeof w === 'string' ? w : w.message)) as typeof process.emitWarning;
  try {
    return { result: fn(), warnings };
  } catch (error) {
    return { error, warnings };
  } finally {
    process.emitWarning = original;
  }
}

export type ConfigCase =
  | { mode: 'structured'; secrets: string[]; edits: Edit[]; extra: ProxyParts }
  | { mode: 'text'; secrets: string[]; mutation: Mutation; extra: ProxyParts }
  | { mode: 'arbitrary'; text: string };

// ---------------------------------------------------------------------------------------------- up config

function wireguardBase(privateKey: string, psk: string): Record<string, unknown> {
  return {
    interface: 'ksfz0',
    mtu: 1420,
    addresses: ['10.10.0.1/24', 'fd00::1/64'],
    wireguard: {
      privateKey,
      listenPort: 51820,
      firewallMark: 32,
      peers: [
        { publicKey: 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=', presharedKey: psk, endpoint: '192.0.2.1:51820', persistentKeepaliveInterval: '25s', allowedIPs: ['10.10.0.2/32'] },
        { publicKey: 'TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=', endpoint: 'peer.example:51820', allowedIPs: ['10.10.0.3/32', 'fd00::3/128'] },
      ],
    },
  };
}

const WG_SECRET_KEY = /^(privateKey|presharedKey)$/;

const arbitraryYamlArb: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.string({ unit: 'binary', maxLength: 100 }),
  fc.object({ maxDepth: 3 }).map((o) => stringifyYaml(o)),
  fc.constantFrom('', '---\n---\n', '&a [*a]', 'a: &x\n  b: *x\n', '? [a]\n: b\n', '!!binary AAAA', 'key: !!js/function "x"', '- - - -', '{'.repeat(200)),
);

/** A proxy URL with a password, valid or broken in one place. Not used by the up config. */
type ProxyParts = { scheme: string; user: string; password: string; host: string; port: string };

const passwordArb = fc
  .tuple(fc.string({ unit: fc.constantFrom(...'abcdefghijkXYZ0123456789@:/%#?!$&*+ '.split('')), minLength: 4, maxLength: 12 }), fc.uint8Array({ minLength: 5, maxLength: 5 }))
  .map(([s, b]) => `P${Buffer.from(b).toString('hex')}${s}`);

const proxyArb: fc.Arbitrary<ProxyParts> = fc.record({
  scheme: fc.constantFrom('http', 'http', 'https', 'socks5', 'ftp', 'HTTP', ''),
  user: fc.constantFrom('user', 'u', 'dom%5Cuser', ''),
  password: passwordArb,
  host: fc.constantFrom('proxy.example', '192.0.2.9', '[2001:db8::9]', '', 'bad host', '300.1.1.1'),
  port: fc.constantFrom('3128', '', '99999', 'x', '0'),
});

function proxyUrl(p: ProxyParts): string {
  // no scheme: `user:pass@host:port`, which the proxy parser reads as http://
  return `${p.scheme === '' ? '' : `${p.scheme}://`}${p.user}:${p.password}@${p.host}${p.port === '' ? '' : `:${p.port}`}`;
}

const noProxy: ProxyParts = { scheme: '', user: '', password: '', host: '', port: '' };

function configCaseArb(secretCount: number, withProxy: boolean): fc.Arbitrary<ConfigCase> {
  const secrets = fc.array(secretArb, { minLength: secretCount, maxLength: secretCount });
  const extra = withProxy ? proxyArb : fc.constant(noProxy);
  return fc.oneof(
    { weight: 6, arbitrary: fc.record({ mode: fc.constant('structured' as const), secrets, edits: fc.array(editArb, { minLength: 1, maxLength: 4 }), extra }) },
    { weight: 3, arbitrary: fc.record({ mode: fc.constant('text' as const), secrets, mutation: mutationArb, extra }) },
    { weight: 1, arbitrary: fc.record({ mode: fc.constant('arbitrary' as const), text: arbitraryYamlArb }) },
  );
}

/**
 * The text to parse, and the strings that must never be echoed; `andDocumentSecrets` says that the
 * strings under secret-named keys of the text as it parses must not be echoed either (the caller adds
 * them with secretsOfDocument once the text is parsed).
 */
function materialise(c: ConfigCase, base: (secrets: string[], proxy: ProxyParts) => unknown, protect: RegExp): { text: string; secrets: string[]; andDocumentSecrets: boolean } {
  if (c.mode === 'arbitrary') return { text: c.text, secrets: [], andDocumentSecrets: true };
  const passwords = c.extra.password ? [c.extra.password] : [];
  if (c.mode === 'structured') {
    const doc = applyEdits(base(c.secrets, c.extra), c.edits, protect);
    // a damaged secret is still secret where it stands; only intact ones are tracked everywhere
    return { text: stringifyYaml(doc), secrets: [...c.secrets, ...passwords], andDocumentSecrets: false };
  }
  const original = stringifyYaml(base(c.secrets, c.extra));
  const text = Buffer.from(applyMutation(Buffer.from(original, 'utf8'), c.mutation)).toString('utf8');
  // after a byte mutation (which may rename the key too) what looks like key material must not appear,
  // nor whatever now sits under a secret-named key; the password only if its URL is still whole
  const keyLike = c.secrets.filter((s) => LOOKS_LIKE_KEY.test(s) && text.includes(s));
  const password = text.includes(proxyUrl(c.extra)) ? passwords : [];
  return { text, secrets: [...keyLike, ...password], andDocumentSecrets: true };
}

/**
 * Parses `text` with a config module's two steps (read the YAML, then check it) while capturing process
 * warnings, and returns the strings that must never be echoed: `secrets`, plus those under
 * secret-named keys of the document the parser read when `andDocumentSecrets`.
 */
function parseConfig<Y extends { doc: Document }, T>(
  text: string,
  read: (text: string) => Y,
  check: (yaml: Y) => T,
  material: { secrets: string[]; andDocumentSecrets: boolean },
  secretKey: RegExp,
): { result?: T; error?: unknown; warnings: string[]; secrets: string[] } {
  let yaml: Y | undefined;
  const run = withWarnings(() => {
    yaml = read(text);
    return check(yaml);
  });
  if (!material.andDocumentSecrets) return { ...run, secrets: material.secrets };
  // read never throws; if it did, the contract check reports that, and a fresh parse stands in
  const documentSecrets = yaml ? secretsOfDocument(yaml.doc, secretKey) : secretsInDocument(text, secretKey);
  return { ...run, secrets: [...material.secrets, ...documentSecrets] };
}

export const wireguardConfigTarget: FuzzTarget<ConfigCase> = {
  name: 'wireguard-config',
  description: 'parseWireguardConfig: a config or a ConfigError with one `<source>: ` line per problem; key values never echoed',
  setup: () => undefined,
  arbitrary: () => configCaseArb(2, false),
  check(_ctx, c) {
    const material = materialise(c, ([priv, psk]) => wireguardBase(priv!, psk!), WG_SECRET_KEY);
    const text = material.text;
    const run = parseConfig(text, readWireguardConfigYaml, (yaml) => parseWireguardConfigYaml(yaml, 'fuzz.yaml'), material, WG_SECRET_KEY);
    const secrets = run.secrets;
    expectThat(run.warnings.length === 0, () => `parsing printed process warnings: ${run.warnings.join(' | ').slice(0, 300)}`);
    const config = run.result;
    if (run.error !== undefined || config === undefined) {
      const err = run.error;
      expectThat(err instanceof WgConfigError, () => `threw ${(err as Error)?.constructor?.name}: ${(err as Error)?.message} for ${JSON.stringify(text.slice(0, 300))}`);
      expectThat(err.problems.length > 0 && err.problems.every((p) => p.startsWith('fuzz.yaml: ') && !p.includes('\n')), () => `problems are not single lines starting with the source: ${err.message}`);
      assertNoSecret(err.message, secrets, 'up config');
      return;
    }
    expectThat(config.wireguard.privateKey.length === 32 && config.interface.length > 0, 'a parsed config without a private key or interface');
    assertNoSecret(JSON.stringify(config), secrets, 'parsed up config as JSON');
  },
};

// ---------------------------------------------------------------------------------------------- node config

function nodeBase(secret: string, proxy: ProxyParts): Record<string, unknown> {
  return {
    cluster: {
      id: 'fuzz-cluster-id',
      secret,
      discovery: { enabled: true, registries: { service: { endpoint: 'https://discovery.example.com/' }, kubernetes: { disabled: true } } },
    },
    machine: {
      network: {
        kubespan: {
          enabled: true,
          advertiseKubernetesNetworks: false,
          allowDownPeerBypass: false,
          mtu: 1420,
          filters: { endpoints: ['0.0.0.0/0', '!10.0.0.0/8', '::/0'], excludeAdvertisedNetworks: ['192.168.0.0/16'] },
          extraAnnouncedEndpoints: ['203.0.113.1:51820'],
        },
        nameservers: ['192.0.2.53'],
      },
      env: { http_proxy: proxyUrl(proxy), no_proxy: 'localhost' },
    },
    kubespand: {
      nodeName: 'node-1',
      podCIDRs: ['10.244.0.0/24'],
      stateDir: '/var/lib/kubespand',
      controlSocket: '/run/kubespand/kubespand.sock',
      interface: 'kubespan',
      listenPort: 51820,
      logLevel: 'info',
      metricsListen: '127.0.0.1:9109',
    },
  };
}

const NODE_PROTECT = /^secret$/;
const NODE_SECRET_KEY = /secret|private|password|psk/i;

export const nodeConfigTarget: FuzzTarget<ConfigCase> = {
  name: 'node-config',
  description: 'parseNodeConfig: a config or a ConfigError with `<source>: ` lines; cluster secret and proxy passwords never echoed',
  setup: () => undefined,
  arbitrary: () => configCaseArb(1, true),
  check(_ctx, c) {
    const material = materialise(c, ([secret], proxy) => nodeBase(secret!, proxy), NODE_PROTECT);
    const text = material.text;
    const run = parseConfig(text, readNodeConfigYaml, (yaml) => parseNodeConfigYaml(yaml, 'node.yaml'), material, NODE_SECRET_KEY);
    const secrets = run.secrets;
    expectThat(run.warnings.length === 0, () => `parsing printed process warnings: ${run.warnings.join(' | ').slice(0, 300)}`);
    const config = run.result;
    if (run.error !== undefined || config === undefined) {
      const err = run.error;
      expectThat(err instanceof NodeConfigError, () => `threw ${(err as Error)?.constructor?.name}: ${(err as Error)?.message} for ${JSON.stringify(text.slice(0, 300))}`);
      expectThat(err.problems.length > 0, 'a ConfigError without problems');
      expectThat(err.message.split('\n').every((l) => l.startsWith('node.yaml: ')), () => `problem lines do not start with the source: ${err.message}`);
      assertNoSecret(err.message, secrets, 'node config');
      return;
    }
    for (const w of config.warnings) assertNoSecret(w, secrets, 'node config warning');
    // printing the parsed config (as `validate` or a log line might) shows no cluster secret
    assertNoSecret(JSON.stringify(config.cluster), secrets.filter((s) => c.mode === 'arbitrary' || s !== c.extra.password), 'parsed cluster section as JSON');
  },
};

// ---------------------------------------------------------------------------------------------- proxy URLs

export type ProxyCase = { parts: ProxyParts; percent: string | null };

const proxyCaseArb: fc.Arbitrary<ProxyCase> = fc.record({ parts: proxyArb, percent: fc.option(fc.constantFrom('%', '%z', '%zz', '%41', '%E0%A4%A'), { freq: 3 }) });

export const proxyUrlTarget: FuzzTarget<ProxyCase> = {
  name: 'proxy-url',
  description: 'parseProxyUrl/maskProxyUrl: a route or an Error naming the key; the password is never in a message or the display form',
  setup: () => undefined,
  arbitrary: () => proxyCaseArb,
  check(_ctx, c) {
    const parts = c.percent === null ? c.parts : { ...c.parts, password: c.parts.password + c.percent };
    const url = proxyUrl(parts);
    const masked = maskProxyUrl(url);
    assertNoSecret(masked, [parts.password], `maskProxyUrl(${JSON.stringify(url)})`);
    let route;
    try {
      route = parseProxyUrl(url, 'https_proxy');
    } catch (err) {
      expectThat(err instanceof Error && err.message.startsWith('https_proxy: '), () => `parseProxyUrl(${JSON.stringify(url)}) threw without naming the key: ${(err as Error)?.message}`);
      assertNoSecret(err.message, [parts.password], `parseProxyUrl(${JSON.stringify(url)})`);
      return;
    }
    assertNoSecret(route.display, [parts.password], 'route.display');
    assertNoSecret(route.address + route.host, [parts.password], 'route address');
  },
};
