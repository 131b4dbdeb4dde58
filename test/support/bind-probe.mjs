#!/usr/bin/env node
// Test helper for test/netns/bind.test.ts: runs the project's UdpBind (transpiled by
// test/support/ts-child.ts into <tree>) inside a network namespace.
//   node bind-probe.mjs <tree> recv <port>
//       listens on 0.0.0.0 and :: ; prints "listening <port>" and "got <text> from <endpoint>"
//   node bind-probe.mjs <tree> send <mark> <dst v4> <dst v6> <port>
//       sends unmarked, then marked, then marked again after a rebind; prints errors and the marks
//       read back from both sockets with getSocketMark
//   node bind-probe.mjs <tree> eperm <mark>
//       tries setMark (run unprivileged: prints the error)
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [tree, mode, ...args] = process.argv.slice(2);
const load = (rel) => import(pathToFileURL(join(tree, rel)).href);
const { UdpBind } = await load('src/bind/udp-bind.js');
const { formatEndpoint } = await load('src/bind/bind.js');
const { loadNative } = await load('src/native.js');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

if (mode === 'recv') {
  const bind = new UdpBind();
  const port = await bind.open(Number(args[0]));
  bind.onDatagrams((batch) => {
    for (const d of batch) console.log(`got ${Buffer.from(d.data).toString()} from ${formatEndpoint(d.from)}`);
  });
  process.on('SIGTERM', () => void bind.close().then(() => process.exit(0)));
  console.log(`listening ${port} families ${JSON.stringify(bind.families)}`);
} else if (mode === 'send') {
  const [markText, dst4, dst6, portText] = args;
  const mark = Number(markText);
  const port = Number(portText);
  const bind = new UdpBind();
  await bind.open(0);
  const native = loadNative();
  const marks = () => {
    const fds = bind.socketFds();
    return `v4=0x${native.getSocketMark(fds.v4).toString(16)} v6=0x${native.getSocketMark(fds.v6).toString(16)}`;
  };
  const sendBoth = (tag) => {
    bind.send({ address: dst4, port }, Buffer.from(`${tag}-v4`));
    bind.send({ address: dst6, port }, Buffer.from(`${tag}-v6`));
  };
  sendBoth('unmarked');
  await sleep(200);
  console.log(`unmarked errors ${bind.stats.sendErrors} marks ${marks()}`);
  bind.setMark(mark);
  console.log(`after setMark marks ${marks()}`);
  sendBoth('marked');
  await sleep(100);
  const before = bind.port;
  await bind.open(0);
  console.log(`rebound ${before !== bind.port} marks ${marks()}`);
  sendBoth('rebound');
  await sleep(200);
  console.log(`done sent ${bind.stats.sent} errors ${bind.stats.sendErrors}`);
  await bind.close();
} else if (mode === 'eperm') {
  const bind = new UdpBind({ address4: '127.0.0.1', address6: null });
  await bind.open(0);
  try {
    bind.setMark(Number(args[0]));
    console.log('setMark succeeded');
  } catch (err) {
    console.log(`setMark failed: ${err.message}`);
  }
  await bind.close();
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
