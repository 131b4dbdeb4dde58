/**
 * Control-socket requests (`kubespand get|status|leave`, src/kubespan/control.ts): one JSON object
 * per line from a local client. Inputs: arbitrary lines, arbitrary JSON values, and requests with
 * the right shape but wrong or odd values; handlers may throw.
 *
 * Contract: `handleControlRequest` always resolves to `{ok: true, …}` or `{ok: false, error}` with a
 * string error; only a well-formed op reaches a handler, exactly once; the reply serialises to JSON;
 * a handler's failure is an `ok: false` reply, never a rejection.
 */
import fc from 'fast-check';
import { handleControlRequest, RESOURCE_KINDS, type ControlHandlers, type ResourceKind } from '../../src/kubespan/control.js';
import { expectThat, type FuzzTarget } from './target.js';

export interface ControlCase {
  line: string;
  handlerThrows: boolean;
}

const kindArb = fc.oneof(fc.constantFrom(...RESOURCE_KINDS, 'ksi', 'KubeSpanPeerStatus', 'affiliate', 'links', '', '__proto__', 'constructor', 'toString'), fc.string({ maxLength: 20 }));
const opArb = fc.oneof(fc.constantFrom('get', 'status', 'leave', 'reload', 'GET', '', '__proto__'), fc.string({ maxLength: 10 }));
const valueArb = fc.oneof(fc.string({ maxLength: 20 }), fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }), fc.object({ maxDepth: 2 }));

const lineArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.oneof(opArb, valueArb), kind: fc.oneof(kindArb, valueArb) }, { requiredKeys: [] }).map((o) => JSON.stringify(o)) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
  { weight: 2, arbitrary: fc.string({ maxLength: 80 }) },
  { weight: 1, arbitrary: fc.constantFrom('{"op":"get","kind":"affiliates"', '{"op":"get","__proto__":{"kind":"affiliates"}}', '{"op":"get","kind":{"toString":1}}', '[]', 'null', '"get"', '{"op":["get"]}', '{"op":"get","kind":"x".repeat(3)}', '{"op":"status"}{"op":"leave"}') },
);

const controlCaseArb: fc.Arbitrary<ControlCase> = fc.record({ line: lineArb, handlerThrows: fc.boolean() });

interface ControlContext {
  calls: string[];
  throws: boolean;
  handlers: ControlHandlers;
}

export const controlRequestTarget: FuzzTarget<ControlCase, ControlContext> = {
  name: 'control-request',
  description: 'handleControlRequest: always {ok:true,…} or {ok:false,error:string}; handlers only for well-formed ops; handler errors become replies',
  async: true,
  setup: () => {
    const ctx = { calls: [], throws: false } as unknown as ControlContext;
    const maybeThrow = (what: string): void => {
      ctx.calls.push(what);
      if (ctx.throws) throw new Error(`${what} failed`);
    };
    ctx.handlers = {
      get: (kind: ResourceKind) => (maybeThrow(`get ${kind}`), [{ id: kind }]),
      status: () => (maybeThrow('status'), { nodeId: 'n' }),
      leave: async () => maybeThrow('leave'),
      reload: async () => (maybeThrow('reload'), 'ok'),
    };
    return ctx;
  },
  arbitrary: () => controlCaseArb,
  async check(ctx, c) {
    ctx.calls = [];
    ctx.throws = c.handlerThrows;
    let reply: Record<string, unknown>;
    try {
      reply = await handleControlRequest(c.line, ctx.handlers);
    } catch (err) {
      throw new Error(`handleControlRequest rejected for ${JSON.stringify(c.line)}: ${(err as Error).message}`);
    }
    expectThat(reply !== null && typeof reply === 'object' && typeof reply.ok === 'boolean', () => `reply without ok: ${JSON.stringify(reply)}`);
    const text = JSON.stringify(reply);
    expectThat(typeof text === 'string' && JSON.parse(text).ok === reply.ok, 'reply does not round-trip through JSON');
    if (reply.ok === false) expectThat(typeof reply.error === 'string' && reply.error.length > 0, () => `ok:false without an error string: ${text}`);
    expectThat(ctx.calls.length <= 1, () => `${ctx.calls.length} handler calls for one request`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(c.line);
    } catch {
      expectThat(reply.ok === false && ctx.calls.length === 0, 'a line that is not JSON reached a handler');
      return;
    }
    const op = (parsed as { op?: unknown } | null)?.op;
    if (ctx.calls.length === 1) {
      expectThat(typeof op === 'string' && ['get', 'status', 'leave', 'reload'].includes(op), () => `op ${JSON.stringify(op)} reached a handler`);
      expectThat(reply.ok === !c.handlerThrows, () => `handler ${c.handlerThrows ? 'failure' : 'success'} replied ok=${reply.ok}`);
    } else {
      expectThat(reply.ok === false, () => `ok:true without a handler call: ${text}`);
    }
    if (ctx.calls[0]?.startsWith('get ')) expectThat(RESOURCE_KINDS.includes(ctx.calls[0].slice(4) as ResourceKind), 'get with an unknown kind reached the handler');
  },
};
