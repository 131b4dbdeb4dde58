/**
 * Device selectors as the KubeSpan daemon uses them: which links' addresses become endpoints
 * (`machine.network.kubespan.endpointLinks`), and which link's MAC seeds the KubeSpan address
 * (`kubespand.identityLinkSelector`). Both read the live links (sysfs + netlink) each time they are
 * asked, so a renamed NIC is still found by its hardware.
 */
import type { HostLink } from '../kubespan/links.js';
import { isEmptySelector, selectLinks, selectLinksForAll, selectOneLink, type DeviceSelector } from './selector.js';
import { listNetLinks, type NetLink } from './sysfs.js';

export const ENDPOINT_LINKS_FIELD = 'machine.network.kubespan.endpointLinks';
export const IDENTITY_SELECTOR_FIELD = 'kubespand.identityLinkSelector';

/** The name of the one link the identity selector matches; throws a configuration error otherwise. */
export async function identityLinkName(selector: DeviceSelector, links?: NetLink[]): Promise<string> {
  return selectOneLink(selector, links ?? (await listNetLinks()), IDENTITY_SELECTOR_FIELD).name;
}

/**
 * The links the endpoint selectors match. `strict` (at start) throws when a selector matches
 * nothing; otherwise (each reconcile pass) a link that went away just contributes nothing.
 */
export async function endpointLinkNames(selectors: readonly DeviceSelector[], opts: { strict?: boolean; links?: NetLink[] } = {}): Promise<Set<string>> {
  const links = opts.links ?? (await listNetLinks());
  if (opts.strict) return new Set(selectLinksForAll(selectors, links, ENDPOINT_LINKS_FIELD).map((l) => l.name));
  const names = new Set<string>();
  for (const s of selectors) if (!isEmptySelector(s)) for (const l of selectLinks(s, links)) names.add(l.name);
  return names;
}

/** `links` restricted to those the endpoint selectors match; all of them when no selectors are set. */
export async function endpointLinks(links: HostLink[], selectors: readonly DeviceSelector[] | undefined): Promise<HostLink[]> {
  if (!selectors) return links;
  const names = await endpointLinkNames(selectors);
  return links.filter((l) => names.has(l.name));
}
