/**
 * YAML helpers both config parsers (the `up` config and the node config) use so that a damaged file
 * never makes an error message show a secret: keys that are not plain names, and parser messages
 * that quote the source.
 */
import { isScalar, visit, type Document } from 'yaml';

/** The offset of the first mapping key that is not a plain scalar (`? [a]: x`, an alias, or what a stray `?` makes of a block). */
export function complexKeyOffset(doc: Document): number | undefined {
  let at: number | undefined;
  visit(doc, {
    Pair(_, pair) {
      if (pair.key !== null && !isScalar(pair.key)) {
        at = (pair.key as { range?: [number, number, number] }).range?.[0] ?? 0;
        return visit.BREAK;
      }
      return undefined;
    },
  });
  return at;
}

/** An unknown key as it may be shown: a plain name, or a placeholder (a key can be anything, even pasted key material). */
export function keyName(key: string): string {
  // letters, digits, '_', '-' and '.' only: a damaged line can merge its value into the key (a flipped
  // space after `http_proxy:` made `http_proxy:!"socks5://u:<password>` the key), and a value's
  // text holds ':', '/', '@', quotes or spaces wherever it could carry a credential
  return /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/.test(key) && !/^[A-Za-z0-9+/]{40,}={0,2}$/.test(key) ? key : '(a key that is not a plain name)';
}

/**
 * The first line of a YAML parser message without the source text some messages quote (the
 * offending token, a tag, an escape): it may be a key or a password. The line and column say where.
 */
export function yamlMessage(message: string): string {
  return (message.split('\n')[0] ?? '')
    .replace(/ at line \d+, column \d+:?$/, '')
    .replace(/: ".*"$/s, '')
    .replace(/^(Not a YAML token|Block scalar header includes extra characters|Unresolved plain scalar|Could not resolve tag|Not a valid tag|Unresolved tag|Ordered maps must not include duplicate keys|Invalid escape sequence|Plain value cannot start with|Unknown directive)\b.*$/s, '$1')
    .replace(/[A-Za-z0-9+/=_-]{20,}/g, '(hidden)');
}
