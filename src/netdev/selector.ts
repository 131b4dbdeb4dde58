/**
 * Talos's `deviceSelector` (spec/kubespan.md §7): chooses links by what the hardware says rather
 * than by name, so a renamed or re-ordered NIC is still found.
 *
 * Matching (Talos `device_config.go`): every field that is set must match (AND); unset or empty
 * fields are ignored; `physical`, when set, must equal the link's flag; a selector with nothing set
 * matches nothing. String fields are globs with only `*` special (any run, including empty),
 * case-sensitive, as `ryanuber/go-glob`. Hardware addresses are compared in lowercase colon form
 * (`52:54:00:12:34:56`), PCI ids in the kernel's `VVVV:DDDD` upper-case form.
 */
import type { NetLink } from './sysfs.js';

export interface DeviceSelector {
  busPath?: string | undefined;
  hardwareAddr?: string | undefined;
  permanentAddr?: string | undefined;
  pciID?: string | undefined;
  driver?: string | undefined;
  physical?: boolean | undefined;
}

export const SELECTOR_STRING_FIELDS = ['busPath', 'hardwareAddr', 'permanentAddr', 'pciID', 'driver'] as const;
type StringField = (typeof SELECTOR_STRING_FIELDS)[number];

/** go-glob: `*` matches any run of characters (also none); everything else literally; case-sensitive. */
export function globMatch(pattern: string, subject: string): boolean {
  if (pattern === '') return subject === '';
  if (pattern === '*') return true;
  const parts = pattern.split('*');
  if (parts.length === 1) return subject === pattern;
  const last = parts.length - 1;
  let rest = subject;
  for (let i = 0; i < last; i++) {
    const part = parts[i]!;
    const at = rest.indexOf(part);
    if (i === 0 ? at !== 0 : at < 0) return false;
    rest = rest.slice(at + part.length);
  }
  return pattern.endsWith('*') || rest.endsWith(parts[last]!);
}

/** True when no field is set: such a selector matches nothing. */
export function isEmptySelector(sel: DeviceSelector): boolean {
  return SELECTOR_STRING_FIELDS.every((f) => sel[f] === undefined || sel[f] === '') && sel.physical === undefined;
}

function linkValue(link: NetLink, field: StringField): string {
  switch (field) {
    case 'busPath':
      return link.busPath;
    case 'hardwareAddr':
      return link.hardwareAddr ?? '';
    case 'permanentAddr':
      return link.permanentAddr ?? '';
    case 'pciID':
      return link.pciID;
    case 'driver':
      return link.driver;
  }
}

export function matchesSelector(sel: DeviceSelector, link: NetLink): boolean {
  if (isEmptySelector(sel)) return false;
  for (const f of SELECTOR_STRING_FIELDS) {
    const pattern = sel[f];
    if (pattern === undefined || pattern === '') continue;
    if (!globMatch(pattern, linkValue(link, f))) return false;
  }
  if (sel.physical !== undefined && sel.physical !== link.physical) return false;
  return true;
}

/** The links `sel` matches, in the order given. */
export function selectLinks(sel: DeviceSelector, links: readonly NetLink[]): NetLink[] {
  return links.filter((l) => matchesSelector(sel, l));
}

/** `{driver: "e1000e", physical: true}`, for messages. */
export function describeSelector(sel: DeviceSelector): string {
  const parts: string[] = [];
  for (const f of SELECTOR_STRING_FIELDS) if (sel[f] !== undefined && sel[f] !== '') parts.push(`${f}: ${JSON.stringify(sel[f])}`);
  if (sel.physical !== undefined) parts.push(`physical: ${sel.physical}`);
  return `{${parts.join(', ')}}`;
}

function linkSummary(l: NetLink): string {
  return `${l.name} (hardwareAddr ${l.hardwareAddr ?? 'none'}, driver ${l.driver || 'none'}, busPath ${l.busPath || 'none'})`;
}

/**
 * The one link `sel` matches. Throws a configuration error naming `field`, the selector and the
 * links when it matches none or several.
 */
export function selectOneLink(sel: DeviceSelector, links: readonly NetLink[], field: string): NetLink {
  if (isEmptySelector(sel)) throw new Error(`${field}: the device selector is empty; an empty selector matches nothing (set busPath, hardwareAddr, permanentAddr, pciID, driver or physical)`);
  const found = selectLinks(sel, links);
  if (found.length === 1) return found[0]!;
  if (found.length === 0) {
    throw new Error(`${field}: device selector ${describeSelector(sel)} matches no link (links: ${links.map(linkSummary).join('; ') || 'none'})`);
  }
  throw new Error(`${field}: device selector ${describeSelector(sel)} matches ${found.length} links (${found.map((l) => l.name).join(', ')}); it must match exactly one: add a field such as hardwareAddr or busPath`);
}

/**
 * The union of the links each selector matches, in link order. Throws naming `field[i]` when a
 * selector matches nothing (a selector that never matches is a configuration mistake).
 */
export function selectLinksForAll(selectors: readonly DeviceSelector[], links: readonly NetLink[], field: string): NetLink[] {
  const chosen = new Set<string>();
  selectors.forEach((sel, i) => {
    if (isEmptySelector(sel)) throw new Error(`${field}[${i}]: the device selector is empty; an empty selector matches nothing`);
    const found = selectLinks(sel, links);
    if (found.length === 0) throw new Error(`${field}[${i}]: device selector ${describeSelector(sel)} matches no link (links: ${links.map(linkSummary).join('; ') || 'none'})`);
    for (const l of found) chosen.add(l.name);
  });
  return links.filter((l) => chosen.has(l.name));
}
