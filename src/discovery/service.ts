/**
 * gRPC method table for `sidero.discovery.server.Cluster` (kubespan.md §1.1), built on the codecs
 * in wire.ts. The server variant never throws from a deserializer: malformed requests become a
 * `MalformedRequest` value that the handler answers with InvalidArgument (grpc-js would otherwise
 * answer Internal).
 */
import type { MethodDefinition } from '@grpc/grpc-js';
import {
  affiliateDeleteRequestCodec,
  affiliateDeleteResponseCodec,
  affiliateUpdateRequestCodec,
  affiliateUpdateResponseCodec,
  helloRequestCodec,
  helloResponseCodec,
  listRequestCodec,
  listResponseCodec,
  watchRequestCodec,
  watchResponseCodec,
  type ClusterRequest,
  type Codec,
  type WatchResponse,
} from './wire.js';

export const SERVICE_NAME = 'sidero.discovery.server.Cluster';

/** Full method paths, `/sidero.discovery.server.Cluster/<Method>`. */
export const METHOD_PATHS = {
  Hello: `/${SERVICE_NAME}/Hello`,
  AffiliateUpdate: `/${SERVICE_NAME}/AffiliateUpdate`,
  AffiliateDelete: `/${SERVICE_NAME}/AffiliateDelete`,
  List: `/${SERVICE_NAME}/List`,
  Watch: `/${SERVICE_NAME}/Watch`,
} as const;

export type MethodName = keyof typeof METHOD_PATHS;

/** A request that failed to decode; carries the decoder's message for the InvalidArgument status. */
export interface MalformedRequest {
  malformed: string;
}

export function isMalformed(v: unknown): v is MalformedRequest {
  return typeof v === 'object' && v !== null && 'malformed' in v;
}

function toBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

function method<Req, Res>(
  name: MethodName,
  req: Codec<Req>,
  res: Codec<Res>,
  responseStream: boolean,
): MethodDefinition<Req, Res> {
  return {
    path: METHOD_PATHS[name],
    requestStream: false,
    responseStream,
    requestSerialize: (v: Req) => toBuffer(req.encode(v)),
    requestDeserialize: (b: Buffer) => req.decode(b),
    responseSerialize: (v: Res) => toBuffer(res.encode(v)),
    responseDeserialize: (b: Buffer) => res.decode(b),
    originalName: name.charAt(0).toLowerCase() + name.slice(1),
  };
}

/** The method table as a client uses it (decoders throw on malformed replies; the client catches). */
export const clusterMethods = {
  Hello: method('Hello', helloRequestCodec, helloResponseCodec, false),
  AffiliateUpdate: method('AffiliateUpdate', affiliateUpdateRequestCodec, affiliateUpdateResponseCodec, false),
  AffiliateDelete: method('AffiliateDelete', affiliateDeleteRequestCodec, affiliateDeleteResponseCodec, false),
  List: method('List', listRequestCodec, listResponseCodec, false),
  Watch: method('Watch', watchRequestCodec, watchResponseCodec, true),
};

function tolerant<Req>(c: Codec<Req>): Codec<Req | MalformedRequest> {
  return {
    encode: (v) => {
      if (isMalformed(v)) throw new Error('cannot encode a malformed request');
      return c.encode(v);
    },
    decode: (b) => {
      try {
        return c.decode(b);
      } catch (err) {
        return { malformed: err instanceof Error ? err.message : String(err) };
      }
    },
  };
}

/**
 * Watch as the server registers it: a response may be handed over already encoded (a Buffer), so
 * one notification or snapshot is serialized once however many watchers receive it.
 */
const serverWatch = method('Watch', tolerant(watchRequestCodec), watchResponseCodec, true);
const watchServerMethod: MethodDefinition<ClusterRequest | MalformedRequest, WatchResponse | Buffer> = {
  ...serverWatch,
  responseSerialize: (v: WatchResponse | Buffer) => (Buffer.isBuffer(v) ? v : serverWatch.responseSerialize(v)),
  responseDeserialize: serverWatch.responseDeserialize,
};

/** Encodes a WatchResponse once, for handing the same bytes to many watchers. */
export function encodeWatchResponse(v: WatchResponse): Buffer {
  return toBuffer(watchResponseCodec.encode(v));
}

/** The method table as the server registers it: request decoders never throw. */
export const clusterServiceDefinition = {
  Hello: method('Hello', tolerant(helloRequestCodec), helloResponseCodec, false),
  AffiliateUpdate: method('AffiliateUpdate', tolerant(affiliateUpdateRequestCodec), affiliateUpdateResponseCodec, false),
  AffiliateDelete: method('AffiliateDelete', tolerant(affiliateDeleteRequestCodec), affiliateDeleteResponseCodec, false),
  List: method('List', tolerant(listRequestCodec), listResponseCodec, false),
  Watch: watchServerMethod,
};
