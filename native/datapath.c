/*
 * kubespand data-path accelerators: two primitives the benchmarks showed to dominate the per-packet
 * cost in JavaScript, and nothing else.
 *
 *   1. ChaCha20-Poly1305 (RFC 8439, 96-bit nonce = 4 zero bytes || 64-bit LE counter, empty AD),
 *      in place, through the OpenSSL that Node itself links (its EVP symbols are exported by the node
 *      binary and its headers ship with node-gyp). A key is prepared once per WireGuard keypair.
 *      node:crypto needs five JS calls and three objects per packet for the same work.
 *   2. sendmmsg(2) of many datagrams to one destination on an existing UDP socket fd (the node:dgram
 *      socket), one syscall per batch.
 *   3. X25519 (shared secret and public key) on raw 32-byte keys through the same OpenSSL. node:crypto
 *      only takes KeyObjects, and importing a raw key costs a JWK or DER round trip per operation,
 *      which made it a third of a handshake's time.
 *
 * libsodium, when the system has it (libsodium.so.23, opened with dlopen at load: no build
 * dependency, and the addon works the same without it), takes over X25519 and the AEAD of packets
 * shorter than SODIUM_AEAD_MAX. Same primitives, same bytes; the reason is latency. An idle daemon
 * runs each packet with cold caches, and there OpenSSL's EVP path (provider dispatch, four calls per
 * packet) cost 18 us per small packet against libsodium's 9 us (same C harness, 20 ms between
 * packets); OpenSSL's X25519 computes the public key again with every raw private key it imports
 * (two scalar multiplications per DH), libsodium's is one. For MTU-sized packets OpenSSL's AVX2
 * ChaCha20 is faster (1.19 vs 1.62 us at 1420 B), so bulk stays on OpenSSL.
 * KUBESPAND_LIBSODIUM=0 in the environment keeps everything on OpenSSL.
 *
 * No protocol logic: which key, which counter, where the header goes and where to send are decided
 * in TypeScript (src/noise, src/bind). Built as a separate addon from the TUN one, so a Node whose
 * OpenSSL symbols are not visible only loses these accelerators (kubespand falls back to
 * node:crypto and dgram), never the TUN.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <openssl/evp.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <netinet/udp.h>

#define TAG_LEN 16
#define MAX_BATCH 256
/* Packets (plaintext bytes) below this go through libsodium when it is loaded: see the header. */
#define SODIUM_AEAD_MAX 512

/* The few libsodium functions used, by their stable ABI (declared in sodium.h, not needed to build). */
static struct {
  int loaded;
  int (*aead_encrypt_detached)(unsigned char *c, unsigned char *mac, unsigned long long *maclen_p, const unsigned char *m, unsigned long long mlen,
                               const unsigned char *ad, unsigned long long adlen, const unsigned char *nsec, const unsigned char *npub,
                               const unsigned char *k);
  int (*aead_decrypt_detached)(unsigned char *m, unsigned char *nsec, const unsigned char *c, unsigned long long clen, const unsigned char *mac,
                               const unsigned char *ad, unsigned long long adlen, const unsigned char *npub, const unsigned char *k);
  int (*scalarmult)(unsigned char *q, const unsigned char *n, const unsigned char *p);
  int (*scalarmult_base)(unsigned char *q, const unsigned char *n);
  const char *(*version)(void);
  char why[160];
} sodium;

static void sodium_load(void) {
  const char *env = getenv("KUBESPAND_LIBSODIUM");
  if (env != NULL && strcmp(env, "0") == 0) {
    snprintf(sodium.why, sizeof sodium.why, "disabled by KUBESPAND_LIBSODIUM=0");
    return;
  }
  void *lib = dlopen("libsodium.so.23", RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    const char *e = dlerror();
    snprintf(sodium.why, sizeof sodium.why, "%s", e != NULL ? e : "libsodium.so.23 not found");
    return;
  }
  int (*init)(void) = (int (*)(void))dlsym(lib, "sodium_init");
  *(void **)&sodium.aead_encrypt_detached = dlsym(lib, "crypto_aead_chacha20poly1305_ietf_encrypt_detached");
  *(void **)&sodium.aead_decrypt_detached = dlsym(lib, "crypto_aead_chacha20poly1305_ietf_decrypt_detached");
  *(void **)&sodium.scalarmult = dlsym(lib, "crypto_scalarmult_curve25519");
  *(void **)&sodium.scalarmult_base = dlsym(lib, "crypto_scalarmult_curve25519_base");
  *(void **)&sodium.version = dlsym(lib, "sodium_version_string");
  if (init == NULL || sodium.aead_encrypt_detached == NULL || sodium.aead_decrypt_detached == NULL || sodium.scalarmult == NULL ||
      sodium.scalarmult_base == NULL || sodium.version == NULL || init() < 0) {
    snprintf(sodium.why, sizeof sodium.why, "libsodium.so.23 lacks a needed function or failed to initialise");
    dlclose(lib);
    return;
  }
  sodium.loaded = 1; /* kept open for the life of the process */
}

#define NAPI_OK(call)                                  \
  do {                                                 \
    if ((call) != napi_ok) {                           \
      napi_throw_error(env, NULL, "N-API call failed"); \
      return NULL;                                     \
    }                                                  \
  } while (0)

typedef struct {
  EVP_CIPHER_CTX *enc;
  EVP_CIPHER_CTX *dec;
  unsigned char key[32];
} aead_key;

static void aead_finalize(napi_env env, void *data, void *hint) {
  aead_key *k = (aead_key *)data;
  if (k->enc) EVP_CIPHER_CTX_free(k->enc);
  if (k->dec) EVP_CIPHER_CTX_free(k->dec);
  OPENSSL_cleanse(k->key, sizeof k->key);
  free(k);
}

static void make_nonce(unsigned char nonce[12], double counter) {
  uint64_t c = (uint64_t)counter;
  memset(nonce, 0, 4);
  for (int i = 0; i < 8; i++) nonce[4 + i] = (unsigned char)(c >> (8 * i));
}

/* aeadCreate(key: Uint8Array(32)) -> external handle */
static napi_value aead_create(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *data;
  size_t len;
  napi_typedarray_type type;
  napi_value ab;
  size_t off;
  if (argc < 1 || napi_get_typedarray_info(env, argv[0], &type, &len, &data, &ab, &off) != napi_ok || type != napi_uint8_array || len != 32) {
    napi_throw_type_error(env, NULL, "aeadCreate: key must be a 32-byte Uint8Array");
    return NULL;
  }
  aead_key *k = calloc(1, sizeof *k);
  if (!k) {
    napi_throw_error(env, NULL, "aeadCreate: out of memory");
    return NULL;
  }
  memcpy(k->key, data, 32);
  k->enc = EVP_CIPHER_CTX_new();
  k->dec = EVP_CIPHER_CTX_new();
  if (!k->enc || !k->dec || EVP_EncryptInit_ex(k->enc, EVP_chacha20_poly1305(), NULL, k->key, NULL) != 1 ||
      EVP_DecryptInit_ex(k->dec, EVP_chacha20_poly1305(), NULL, k->key, NULL) != 1) {
    aead_finalize(env, k, NULL);
    napi_throw_error(env, NULL, "aeadCreate: OpenSSL chacha20-poly1305 unavailable");
    return NULL;
  }
  napi_value handle;
  if (napi_create_external(env, k, aead_finalize, NULL, &handle) != napi_ok) {
    aead_finalize(env, k, NULL);
    napi_throw_error(env, NULL, "aeadCreate: napi_create_external failed");
    return NULL;
  }
  return handle;
}

static int get_key(napi_env env, napi_value v, aead_key **out) {
  return napi_get_value_external(env, v, (void **)out) == napi_ok && *out != NULL;
}

static int get_bytes(napi_env env, napi_value v, unsigned char **data, size_t *len) {
  napi_typedarray_type type;
  napi_value ab;
  size_t off;
  void *p;
  if (napi_get_typedarray_info(env, v, &type, len, &p, &ab, &off) != napi_ok || type != napi_uint8_array) return 0;
  *data = (unsigned char *)p;
  return 1;
}

static int seal_one(aead_key *k, double counter, unsigned char *p, int len) {
  unsigned char nonce[12];
  int outl = 0, finl = 0;
  make_nonce(nonce, counter);
  if (sodium.loaded && len < SODIUM_AEAD_MAX) /* in place: libsodium allows c == m */
    return sodium.aead_encrypt_detached(p, p + len, NULL, p, (unsigned long long)len, NULL, 0, NULL, nonce, k->key) == 0;
  if (EVP_EncryptInit_ex(k->enc, NULL, NULL, NULL, nonce) != 1) return 0;
  if (len > 0 && EVP_EncryptUpdate(k->enc, p, &outl, p, len) != 1) return 0;
  if (EVP_EncryptFinal_ex(k->enc, p + outl, &finl) != 1) return 0;
  return EVP_CIPHER_CTX_ctrl(k->enc, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, p + len) == 1;
}

static int open_one(aead_key *k, double counter, unsigned char *p, int len) {
  unsigned char nonce[12];
  int outl = 0, finl = 0;
  make_nonce(nonce, counter);
  if (sodium.loaded && len < SODIUM_AEAD_MAX) /* verifies the tag before decrypting; m == c allowed */
    return sodium.aead_decrypt_detached(p, NULL, p, (unsigned long long)len, p + len, NULL, 0, nonce, k->key) == 0;
  if (EVP_DecryptInit_ex(k->dec, NULL, NULL, NULL, nonce) != 1) return 0;
  if (EVP_CIPHER_CTX_ctrl(k->dec, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, p + len) != 1) return 0;
  if (len > 0 && EVP_DecryptUpdate(k->dec, p, &outl, p, len) != 1) return 0;
  return EVP_DecryptFinal_ex(k->dec, p + outl, &finl) == 1;
}

/*
 * aeadSeal(handle, counter, buf, offset, length) -> boolean
 * Encrypts buf[offset, offset+length) in place and writes the tag at buf[offset+length, +16).
 */
static napi_value aead_seal_or_open(napi_env env, napi_callback_info info, int seal) {
  size_t argc = 5;
  napi_value argv[5];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  aead_key *k;
  unsigned char *buf;
  size_t buflen;
  double counter, offset, length;
  if (argc < 5 || !get_key(env, argv[0], &k) || napi_get_value_double(env, argv[1], &counter) != napi_ok || !get_bytes(env, argv[2], &buf, &buflen) ||
      napi_get_value_double(env, argv[3], &offset) != napi_ok || napi_get_value_double(env, argv[4], &length) != napi_ok) {
    napi_throw_type_error(env, NULL, "aeadSeal/aeadOpen(handle, counter, buf, offset, length): bad arguments");
    return NULL;
  }
  if (offset < 0 || length < 0 || counter < 0 || offset + length + TAG_LEN > (double)buflen || length > 65535) {
    napi_throw_range_error(env, NULL, "aeadSeal/aeadOpen: range outside the buffer");
    return NULL;
  }
  int ok = seal ? seal_one(k, counter, buf + (size_t)offset, (int)length) : open_one(k, counter, buf + (size_t)offset, (int)length);
  napi_value result;
  NAPI_OK(napi_get_boolean(env, ok, &result));
  return result;
}

static napi_value aead_seal(napi_env env, napi_callback_info info) { return aead_seal_or_open(env, info, 1); }
static napi_value aead_open(napi_env env, napi_callback_info info) { return aead_seal_or_open(env, info, 0); }

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#define UDP_GSO_MAX_SEGS 64
#define UDP_GSO_MAX_BYTES 65000

/* UDP GSO is used until the kernel refuses it once (old kernel, or a socket that cannot do it). */
static int udp_gso_disabled = 0;

/*
 * udpSendBatch(fd, address: Uint8Array(4|16), port, datagrams: Uint8Array[]) -> number sent
 * To one destination, in as few sendmmsg(2) calls as possible. Runs of equal-sized datagrams (the
 * last of a run may be shorter) travel as one UDP GSO message (UDP_SEGMENT), whose iovec points at
 * the caller's buffers: the kernel builds one large skb and segments it late. Stops at
 * EAGAIN/ENOBUFS and returns how many datagrams went out so the caller can fall back for the rest;
 * another error with nothing sent returns -errno.
 */
static napi_value udp_send_batch(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, port;
  unsigned char *addr;
  size_t addrlen;
  bool is_array = false;
  if (argc < 4 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || !get_bytes(env, argv[1], &addr, &addrlen) || (addrlen != 4 && addrlen != 16) ||
      napi_get_value_int32(env, argv[2], &port) != napi_ok || napi_is_array(env, argv[3], &is_array) != napi_ok || !is_array) {
    napi_throw_type_error(env, NULL, "udpSendBatch(fd, address, port, datagrams[]): bad arguments");
    return NULL;
  }
  uint32_t n;
  NAPI_OK(napi_get_array_length(env, argv[3], &n));
  struct sockaddr_storage ss;
  socklen_t sslen;
  memset(&ss, 0, sizeof ss);
  if (addrlen == 4) {
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    memcpy(&sin->sin_addr, addr, 4);
    sslen = sizeof *sin;
  } else {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    memcpy(&sin6->sin6_addr, addr, 16);
    sslen = sizeof *sin6;
  }
  static struct iovec iovs[MAX_BATCH];
  static struct mmsghdr msgs[MAX_BATCH];
  static uint32_t msg_count_dgrams[MAX_BATCH];
  static union {
    char buf[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
  } ctrl[MAX_BATCH];
  uint32_t sent_total = 0;
  int err = 0;
  while (sent_total < n) {
    /* gather up to MAX_BATCH datagrams */
    uint32_t count = n - sent_total > MAX_BATCH ? MAX_BATCH : n - sent_total;
    for (uint32_t i = 0; i < count; i++) {
      napi_value el;
      unsigned char *p;
      size_t len;
      if (napi_get_element(env, argv[3], sent_total + i, &el) != napi_ok || !get_bytes(env, el, &p, &len)) {
        napi_throw_type_error(env, NULL, "udpSendBatch: every datagram must be a Uint8Array");
        return NULL;
      }
      iovs[i].iov_base = p;
      iovs[i].iov_len = len;
    }
    /* group them into messages */
    uint32_t m = 0;
    for (uint32_t i = 0; i < count;) {
      size_t seg = iovs[i].iov_len;
      uint32_t k = 1;
      size_t bytes = seg;
      if (!udp_gso_disabled && seg > 0) {
        while (i + k < count && k < UDP_GSO_MAX_SEGS && iovs[i + k].iov_len <= seg && iovs[i + k].iov_len > 0 && bytes + iovs[i + k].iov_len <= UDP_GSO_MAX_BYTES) {
          bytes += iovs[i + k].iov_len;
          k++;
          if (iovs[i + k - 1].iov_len < seg) break; /* a shorter datagram ends the run */
        }
      }
      struct msghdr *h = &msgs[m].msg_hdr;
      memset(&msgs[m], 0, sizeof msgs[m]);
      h->msg_name = &ss;
      h->msg_namelen = sslen;
      h->msg_iov = &iovs[i];
      h->msg_iovlen = k;
      if (k > 1) {
        h->msg_control = ctrl[m].buf;
        h->msg_controllen = sizeof ctrl[m].buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(h);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t gso = (uint16_t)seg;
        memcpy(CMSG_DATA(c), &gso, sizeof gso);
      }
      msg_count_dgrams[m] = k;
      m++;
      i += k;
    }
    /* send the messages */
    uint32_t done_msgs = 0, done_dgrams = 0;
    while (done_msgs < m) {
      int r = sendmmsg(fd, msgs + done_msgs, m - done_msgs, MSG_DONTWAIT);
      if (r < 0) {
        if (errno == EINTR) continue;
        err = errno;
        /* a kernel or socket without UDP GSO: switch it off for good and resend this batch plainly */
        if ((err == EINVAL || err == EIO || err == EOPNOTSUPP) && !udp_gso_disabled && msgs[done_msgs].msg_hdr.msg_iovlen > 1) {
          udp_gso_disabled = 1;
          err = 0;
          sent_total += done_dgrams;
          goto next_round;
        }
        break;
      }
      for (int j = 0; j < r; j++) done_dgrams += msg_count_dgrams[done_msgs + (uint32_t)j];
      done_msgs += (uint32_t)r;
      if (r == 0) break;
    }
    sent_total += done_dgrams;
    if (done_msgs < m) break;
  next_round:;
  }
  napi_value result;
  if (sent_total == 0 && err != 0 && err != EAGAIN && err != EWOULDBLOCK && err != ENOBUFS) {
    NAPI_OK(napi_create_int32(env, -err, &result));
  } else {
    NAPI_OK(napi_create_uint32(env, sent_total, &result));
  }
  return result;
}


/*
 * out = X25519(priv, pub), or with pub == NULL the public key of priv; 1 on success. Both libraries
 * clamp the scalar and ignore the point's top bit (RFC 7748). A low-order point gives the all-zero
 * secret (libsodium writes it and returns -1, OpenSSL refuses to derive): 1 with zeros, which the
 * handshake rejects.
 */
static int x25519_raw(const unsigned char *priv, const unsigned char *pub, unsigned char *out) {
  if (sodium.loaded) {
    if (pub == NULL) return sodium.scalarmult_base(out, priv) == 0;
    (void)sodium.scalarmult(out, priv, pub);
    return 1;
  }
  int ok = 0;
  EVP_PKEY *sk = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
  if (sk == NULL) return 0;
  size_t len = 32;
  if (pub == NULL) {
    ok = EVP_PKEY_get_raw_public_key(sk, out, &len) == 1 && len == 32;
  } else {
    EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, pub, 32);
    EVP_PKEY_CTX *ctx = pk != NULL ? EVP_PKEY_CTX_new(sk, NULL) : NULL;
    if (ctx != NULL && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, pk) == 1) {
      if (EVP_PKEY_derive(ctx, out, &len) != 1 || len != 32) memset(out, 0, 32);
      ok = 1;
    }
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pk);
  }
  EVP_PKEY_free(sk);
  return ok;
}

/*
 * x25519(privateKey, publicKey | null, out) -> boolean
 * With a public key: out = X25519(privateKey, publicKey); a low-order point (OpenSSL refuses to
 * derive an all-zero secret) yields all zeros, which the handshake rejects. With null: out = the
 * public key of privateKey. Keys are raw 32-byte strings; false only when OpenSSL fails otherwise.
 */
static napi_value x25519_js(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  unsigned char *priv, *pub = NULL, *out;
  size_t priv_len, pub_len = 0, out_len;
  napi_valuetype pub_type = napi_null;
  if (argc >= 2) NAPI_OK(napi_typeof(env, argv[1], &pub_type));
  if (argc < 3 || !get_bytes(env, argv[0], &priv, &priv_len) || !get_bytes(env, argv[2], &out, &out_len) ||
      (pub_type != napi_null && !get_bytes(env, argv[1], &pub, &pub_len))) {
    napi_throw_type_error(env, NULL, "x25519(privateKey, publicKey | null, out): bad arguments");
    return NULL;
  }
  if (priv_len != 32 || out_len != 32 || (pub != NULL && pub_len != 32)) {
    napi_throw_range_error(env, NULL, "x25519: keys and output must be 32 bytes");
    return NULL;
  }
  napi_value result;
  NAPI_OK(napi_get_boolean(env, x25519_raw(priv, pub, out), &result));
  return result;
}

/* backends() -> { libsodium: version string | null, why: reason it is not used | null, sodiumAeadMax } */
static napi_value backends_js(napi_env env, napi_callback_info info) {
  napi_value obj, v;
  NAPI_OK(napi_create_object(env, &obj));
  if (sodium.loaded) NAPI_OK(napi_create_string_utf8(env, sodium.version(), NAPI_AUTO_LENGTH, &v));
  else NAPI_OK(napi_get_null(env, &v));
  NAPI_OK(napi_set_named_property(env, obj, "libsodium", v));
  if (sodium.loaded) NAPI_OK(napi_get_null(env, &v));
  else NAPI_OK(napi_create_string_utf8(env, sodium.why, NAPI_AUTO_LENGTH, &v));
  NAPI_OK(napi_set_named_property(env, obj, "why", v));
  NAPI_OK(napi_create_int32(env, SODIUM_AEAD_MAX, &v));
  NAPI_OK(napi_set_named_property(env, obj, "sodiumAeadMax", v));
  return obj;
}

static napi_value init(napi_env env, napi_value exports) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, sodium_load); /* once per process, whichever thread loads the addon first */
  napi_property_descriptor props[] = {
      {"backends", NULL, backends_js, NULL, NULL, NULL, napi_default, NULL},
      {"aeadCreate", NULL, aead_create, NULL, NULL, NULL, napi_default, NULL},
      {"aeadSeal", NULL, aead_seal, NULL, NULL, NULL, napi_default, NULL},
      {"aeadOpen", NULL, aead_open, NULL, NULL, NULL, napi_default, NULL},
      {"udpSendBatch", NULL, udp_send_batch, NULL, NULL, NULL, napi_default, NULL},
      {"x25519", NULL, x25519_js, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
