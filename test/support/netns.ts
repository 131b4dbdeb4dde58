/** The netns topology helpers live in src/netns (the demo uses them too); tests import them from here. */
export * from '../../src/netns/topology.js';
