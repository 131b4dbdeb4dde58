/** `kubespand genkey | pubkey | genpsk`: the same input and output as `wg genkey | pubkey | genpsk`. */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { nodeCrypto } from '../noise/crypto-node.js';
import { clampPrivateKey, keyFromBase64, keyToBase64 } from '../noise/keys.js';
import type { Command } from './main.js';

export const genkeyCommand: Command = {
  summary: 'generate a new private key (base64) on stdout',
  async run() {
    process.stdout.write(keyToBase64(clampPrivateKey(randomBytes(32))) + '\n');
    return 0;
  },
};

export const genpskCommand: Command = {
  summary: 'generate a new preshared key (base64) on stdout',
  async run() {
    process.stdout.write(keyToBase64(randomBytes(32)) + '\n');
    return 0;
  },
};

export const pubkeyCommand: Command = {
  summary: 'read a private key on stdin, print its public key',
  async run() {
    const input = readFileSync(0, 'utf8').trim();
    let priv: Uint8Array;
    try {
      priv = keyFromBase64(input, 'private key');
    } catch {
      // wg prints exactly this and exits 1
      process.stderr.write('pubkey: Key is not the correct length or format\n');
      return 1;
    }
    process.stdout.write(keyToBase64(nodeCrypto.publicKey(clampPrivateKey(priv))) + '\n');
    return 0;
  },
};
