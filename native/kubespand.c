/*
 * kubespand_native: the few system calls Node cannot make by itself.
 *
 *   tunOpen(name)                        open /dev/net/tun, TUNSETIFF (IFF_TUN | IFF_NO_PI) -> { fd, name }
 *   tunGetName(fd)                       TUNGETIFF: the kernel's name for an already-open TUN fd (WG_TUN_FD)
 *   setNonBlocking(fd)                   O_NONBLOCK on an inherited fd
 *   tunReaderStart(fd, maxBatch, bufSize, cb, vnetHdr?, room?) -> handle
 *                                        uv_poll_t on the node loop; on readable, read() until EAGAIN or
 *                                        maxBatch packets, then ONE call cb(packets). A read error other
 *                                        than EAGAIN (interface deleted: EBADFD/EIO) calls cb(null, err)
 *                                        once and stops the reader. With room, each packet is a
 *                                        Uint8Array view with 16 zeroed bytes before it and 31 after
 *                                        (header, padding and tag: the device seals it in place).
 *   tunReaderStop(handle)                stop polling; safe to call twice
 *   udpReaderStart(fd, maxBatch, cb) -> handle
 *                                        the same poll-driven reader for a UDP socket: it polls a dup of
 *                                        the fd (the caller's socket keeps its own fd and handle for
 *                                        sending and closing), recvmmsg(2) takes up to maxBatch datagrams
 *                                        per wake-up, then ONE call cb(data, meta, addresses): data is one
 *                                        Uint8Array with the payloads back to back, meta a Uint32Array of
 *                                        [length, source port] per datagram, addresses their sources.
 *                                        Errors that only concern one datagram (ICMP-reported errors,
 *                                        ENOMEM) are counted and reading goes on; a dead fd calls
 *                                        cb(null, err) once and stops. Stop it with tunReaderStop.
 *   tunWrite(fd, buf)                    bytes written, or -errno (never throws on EAGAIN)
 *   tunWriteBatch(fd, bufs)              writes in order; a packet the kernel rejects is skipped,
 *                                        EAGAIN stops the batch; returns the count written
 *   closeFd(fd)                          close(2), throws with errno text
 *   setSocketMark(fd, mark)              setsockopt SO_MARK, throws with errno text
 *   getSocketMark(fd)                    getsockopt SO_MARK (tests)
 *   setSocketBuffers(fd, bytes)          SO_RCVBUF/SO_SNDBUF, first with the *FORCE variants (CAP_NET_ADMIN,
 *                                        beyond net.core.[rw]mem_max, as wireguard-go does); returns the
 *                                        sizes the kernel reports { recv, send }
 *   sdNotify(path, text)                 one datagram to systemd's notify socket ($NOTIFY_SOCKET; "@name" is an
 *                                        abstract socket); node has no AF_UNIX datagram sockets. Returns the
 *                                        bytes sent, throws with errno text
 *
 * All protocol logic stays in TypeScript. Errors thrown here carry `code` (e.g. "EPERM"), `errno` and
 * `syscall`, and their message names the call and the value it was given.
 *
 * Threading: everything runs on the JS thread of the env that called it; the reader's uv_poll_t lives on
 * that env's loop, so it also works inside a worker thread (an env cleanup hook stops it at teardown).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
/* <net/if.h> clashes with <linux/if.h> (needed for TUNSETIFF); this is its one declaration we use */
extern char *if_indextoname(unsigned int ifindex, char *ifname);
#include <unistd.h>

#include <node_api.h>
#include <uv.h>
#include <sys/uio.h>

#include "offload.h"

#define TUN_DEVICE_PATH "/dev/net/tun"
#define MAX_BATCH_LIMIT 4096
#define MAX_BUF_SIZE (1 << 20)
#define UDP_SLOT_SIZE 65536 /* the largest UDP payload; a WireGuard datagram is at most MTU + 32 */
#define UDP_MAX_BATCH 256

/* ---------------------------------------------------------------- errors and argument helpers */

#define NAPI_OK_OR_RETURN(env, call, ret) \
  do {                                    \
    if ((call) != napi_ok) return (ret);  \
  } while (0)

/* errno -> "EBADFD": glibc >= 2.32 knows every name; elsewhere libuv's table, which lacks a few. */
static void errno_name(int err, char *out, size_t len) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *name = strerrorname_np(err);
  if (name != NULL) {
    snprintf(out, len, "%s", name);
    return;
  }
#endif
#ifdef EBADFD
  if (err == EBADFD) {
    snprintf(out, len, "EBADFD");
    return;
  }
#endif
  uv_err_name_r(-err, out, len);
  if (strncmp(out, "Unknown", 7) == 0) snprintf(out, len, "E%d", err);
}

/* Throws an Error with code/errno/syscall set. `err` is a positive errno. */
static void throw_errno(napi_env env, int err, const char *syscall, const char *fmt, ...) {
  char context[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(context, sizeof context, fmt, ap);
  va_end(ap);

  char code[64];
  errno_name(err, code, sizeof code);
  char message[512];
  snprintf(message, sizeof message, "%s failed: %s (%s)", context, strerror(err), code);

  napi_value msg_v, code_v, error, errno_v, syscall_v;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg_v) != napi_ok) return;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_v) != napi_ok) return;
  if (napi_create_error(env, code_v, msg_v, &error) != napi_ok) return;
  if (napi_create_int32(env, -err, &errno_v) == napi_ok) napi_set_named_property(env, error, "errno", errno_v);
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_v) == napi_ok)
    napi_set_named_property(env, error, "syscall", syscall_v);
  napi_throw(env, error);
}

/* Builds (does not throw) an Error value for the reader's error callback. */
static napi_value make_errno_error(napi_env env, int err, const char *syscall, const char *context) {
  char code[64];
  errno_name(err, code, sizeof code);
  char message[512];
  snprintf(message, sizeof message, "%s: %s (%s)", context, strerror(err), code);
  napi_value msg_v, code_v, error, errno_v, syscall_v;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg_v) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_v) != napi_ok) return NULL;
  if (napi_create_error(env, code_v, msg_v, &error) != napi_ok) return NULL;
  if (napi_create_int32(env, -err, &errno_v) == napi_ok) napi_set_named_property(env, error, "errno", errno_v);
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_v) == napi_ok)
    napi_set_named_property(env, error, "syscall", syscall_v);
  return error;
}

static void throw_type(napi_env env, const char *fmt, ...) {
  char message[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
}

static void throw_range(napi_env env, const char *fmt, ...) {
  char message[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", message);
}

/* Reads argument `i` as an integer in [min, max]; throws and returns false otherwise. */
static bool get_integer(napi_env env, napi_value v, const char *fn, const char *field, double min, double max,
                        double *out) {
  napi_valuetype type;
  if (napi_typeof(env, v, &type) != napi_ok) return false;
  if (type != napi_number) {
    throw_type(env, "%s: %s must be a number", fn, field);
    return false;
  }
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return false;
  if (!(d >= min && d <= max) || d != (double)(int64_t)d) {
    throw_range(env, "%s: %s must be an integer in [%.0f, %.0f], got %g", fn, field, min, max, d);
    return false;
  }
  *out = d;
  return true;
}

static bool get_fd(napi_env env, napi_value v, const char *fn, int *fd) {
  double d;
  if (!get_integer(env, v, fn, "fd", 0, INT32_MAX, &d)) return false;
  *fd = (int)d;
  return true;
}

/* Accepts a Buffer or any Uint8Array (also subarray views). */
static bool get_bytes(napi_env env, napi_value v, const char *fn, void **data, size_t *len) {
  bool is_typed = false;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok) return false;
  if (is_typed) {
    napi_typedarray_type t;
    napi_value ab;
    size_t offset;
    if (napi_get_typedarray_info(env, v, &t, len, data, &ab, &offset) != napi_ok) return false;
    if (t == napi_uint8_array || t == napi_uint8_clamped_array) return true;
  }
  bool is_buffer = false;
  if (napi_is_buffer(env, v, &is_buffer) != napi_ok) return false;
  if (is_buffer) return napi_get_buffer_info(env, v, data, len) == napi_ok;
  throw_type(env, "%s: packet must be a Buffer or Uint8Array", fn);
  return false;
}

static bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, const char *fn) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return false;
  if (argc < want) {
    throw_type(env, "%s: expected %zu arguments, got %zu", fn, want, argc);
    return false;
  }
  return true;
}

/* An optional trailing boolean argument: absent or undefined is false. */
static bool optional_bool(napi_env env, napi_callback_info info, size_t index) {
  napi_value argv[8];
  size_t argc = 8;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc <= index) return false;
  bool v = false;
  if (napi_get_value_bool(env, argv[index], &v) != napi_ok) return false;
  return v;
}

static napi_value make_int(napi_env env, int64_t n) {
  napi_value v = NULL;
  napi_create_int64(env, n, &v);
  return v;
}

static napi_value undefined_value(napi_env env) {
  napi_value v = NULL;
  napi_get_undefined(env, &v);
  return v;
}

/* ---------------------------------------------------------------- TUN open / name / flags */

static napi_value tun_open(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv, "tunOpen")) return NULL;
  char name[IFNAMSIZ + 8];
  size_t name_len = 0;
  napi_valuetype type;
  NAPI_OK_OR_RETURN(env, napi_typeof(env, argv[0], &type), NULL);
  if (type != napi_string) {
    throw_type(env, "tunOpen: name must be a string");
    return NULL;
  }
  NAPI_OK_OR_RETURN(env, napi_get_value_string_utf8(env, argv[0], name, sizeof name, &name_len), NULL);
  if (name_len >= IFNAMSIZ) {
    throw_range(env, "tunOpen: interface name \"%s\" is longer than %d bytes", name, IFNAMSIZ - 1);
    return NULL;
  }

  int fd = open(TUN_DEVICE_PATH, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    throw_errno(env, errno, "open", "tunOpen %s: open " TUN_DEVICE_PATH, name);
    return NULL;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  bool vnet = optional_bool(env, info, 1);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0);
  memcpy(ifr.ifr_name, name, name_len);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    throw_errno(env, err, "ioctl", "tunOpen %s: ioctl TUNSETIFF", name);
    return NULL;
  }
  /* with a virtio header on every frame, let the kernel hand over TSO frames and partial checksums */
  if (vnet && ioctl(fd, TUNSETOFFLOAD, (unsigned long)(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)) < 0) {
    int err = errno;
    close(fd);
    throw_errno(env, err, "ioctl", "tunOpen %s: ioctl TUNSETOFFLOAD", name);
    return NULL;
  }

  napi_value result, fd_v, name_v;
  NAPI_OK_OR_RETURN(env, napi_create_object(env, &result), NULL);
  NAPI_OK_OR_RETURN(env, napi_create_int32(env, fd, &fd_v), NULL);
  ifr.ifr_name[IFNAMSIZ - 1] = '\0';
  NAPI_OK_OR_RETURN(env, napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &name_v), NULL);
  NAPI_OK_OR_RETURN(env, napi_set_named_property(env, result, "fd", fd_v), NULL);
  NAPI_OK_OR_RETURN(env, napi_set_named_property(env, result, "name", name_v), NULL);
  return result;
}

static napi_value tun_get_name(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!get_args(env, info, 1, argv, "tunGetName") || !get_fd(env, argv[0], "tunGetName", &fd)) return NULL;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  if (ioctl(fd, TUNGETIFF, &ifr) < 0) {
    throw_errno(env, errno, "ioctl", "tunGetName fd %d: ioctl TUNGETIFF", fd);
    return NULL;
  }
  ifr.ifr_name[IFNAMSIZ - 1] = '\0';
  napi_value name_v;
  NAPI_OK_OR_RETURN(env, napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &name_v), NULL);
  return name_v;
}

static napi_value set_non_blocking(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!get_args(env, info, 1, argv, "setNonBlocking") || !get_fd(env, argv[0], "setNonBlocking", &fd)) return NULL;
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    throw_errno(env, errno, "fcntl", "setNonBlocking fd %d: fcntl O_NONBLOCK", fd);
    return NULL;
  }
  return undefined_value(env);
}

static napi_value close_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!get_args(env, info, 1, argv, "closeFd") || !get_fd(env, argv[0], "closeFd", &fd)) return NULL;
  /* Linux always releases the descriptor, even when close() reports EINTR: never retry */
  if (close(fd) < 0 && errno != EINTR) {
    throw_errno(env, errno, "close", "closeFd fd %d: close", fd);
    return NULL;
  }
  return undefined_value(env);
}

/* ---------------------------------------------------------------- TUN writes */

static ssize_t write_packet(int fd, const void *data, size_t len) {
  for (;;) {
    ssize_t n = write(fd, data, len);
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

/* One packet behind an empty virtio header (no GSO, checksum already complete). */
static ssize_t write_vnet_packet(int fd, const void *data, size_t len) {
  static const uint8_t empty[VNET_HDR_LEN];
  struct iovec iov[2] = {{(void *)empty, VNET_HDR_LEN}, {(void *)data, len}};
  for (;;) {
    ssize_t n = writev(fd, iov, 2);
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

static napi_value tun_write(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  void *data;
  size_t len;
  if (!get_args(env, info, 2, argv, "tunWrite") || !get_fd(env, argv[0], "tunWrite", &fd) ||
      !get_bytes(env, argv[1], "tunWrite", &data, &len))
    return NULL;
  if (optional_bool(env, info, 2)) return make_int(env, write_vnet_packet(fd, data, len));
  return make_int(env, write_packet(fd, data, len));
}

/* Coalescing writer for IFF_VNET_HDR TUNs: consecutive segments of one TCP flow become one GSO frame. */
static int64_t write_batch_vnet(int fd, const uint8_t **ptrs, const size_t *lens, uint32_t count) {
  static uint8_t frame[VNET_HDR_LEN + 65535];
  int64_t written = 0;
  uint32_t i = 0;
  while (i < count) {
    int k = offload_group(ptrs + i, lens + i, (int)(count - i));
    size_t flen = offload_build(ptrs + i, lens + i, k, frame);
    ssize_t n = write_packet(fd, frame, flen);
    if (n == -EAGAIN || n == -EWOULDBLOCK) break;
    if (n >= 0) written += k;
    i += (uint32_t)k;
  }
  return written;
}

static napi_value tun_write_batch(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  if (!get_args(env, info, 2, argv, "tunWriteBatch") || !get_fd(env, argv[0], "tunWriteBatch", &fd)) return NULL;
  bool is_array = false;
  NAPI_OK_OR_RETURN(env, napi_is_array(env, argv[1], &is_array), NULL);
  if (!is_array) {
    throw_type(env, "tunWriteBatch: packets must be an array");
    return NULL;
  }
  uint32_t count = 0;
  NAPI_OK_OR_RETURN(env, napi_get_array_length(env, argv[1], &count), NULL);
  if (optional_bool(env, info, 2)) {
    const uint8_t **ptrs = malloc(sizeof(*ptrs) * (count ? count : 1));
    size_t *lens = malloc(sizeof(*lens) * (count ? count : 1));
    if (!ptrs || !lens) {
      free(ptrs);
      free(lens);
      throw_errno(env, ENOMEM, "malloc", "tunWriteBatch: %u packets", count);
      return NULL;
    }
    uint32_t usable = 0;
    for (uint32_t i = 0; i < count; i++) {
      napi_value item;
      void *data;
      size_t len;
      if (napi_get_element(env, argv[1], i, &item) != napi_ok || !get_bytes(env, item, "tunWriteBatch", &data, &len)) {
        free(ptrs);
        free(lens);
        return NULL;
      }
      if (len == 0 || len > 65535) continue;
      ptrs[usable] = data;
      lens[usable++] = len;
    }
    int64_t written = write_batch_vnet(fd, ptrs, lens, usable);
    free(ptrs);
    free(lens);
    return make_int(env, written);
  }
  int64_t written = 0;
  for (uint32_t i = 0; i < count; i++) {
    napi_value item;
    void *data;
    size_t len;
    NAPI_OK_OR_RETURN(env, napi_get_element(env, argv[1], i, &item), NULL);
    if (!get_bytes(env, item, "tunWriteBatch", &data, &len)) return NULL;
    ssize_t n = write_packet(fd, data, len);
    if (n >= 0) {
      written++;
    } else if (n == -EAGAIN || n == -EWOULDBLOCK) {
      break;
    }
    /* any other error rejects this packet only (e.g. EINVAL for a malformed header): go on */
  }
  return make_int(env, written);
}

/*
 * offloadSplit(frame) -> Uint8Array[] and offloadCoalesce(packets) -> Uint8Array[] (frames with virtio
 * headers): the reader's and writer's offload steps without a TUN, for tests.
 */
/*
 * Everything the readers hand to JavaScript is a plain Uint8Array, never a Buffer: one object map on
 * the whole data path, so the code V8 optimised on the start-up warm-up's packets is not thrown away
 * ("wrong map" deopt) by the first live packet, and subarray() is V8's builtin instead of Buffer's JS
 * override. The memory comes from napi_create_buffer, which does not zero it (napi_create_arraybuffer
 * does: for a 64-datagram batch that is ~90 KiB of zeroes written just to be overwritten); the Buffer
 * is only a wrapper, and the Uint8Array views its whole ArrayBuffer.
 */
static napi_status make_u8(napi_env env, size_t len, void **data, napi_value *out) {
  napi_value buf, ab;
  size_t off = 0;
  napi_status st = napi_create_buffer(env, len > 0 ? len : 1, data, &buf);
  if (st != napi_ok) return st;
  st = napi_get_typedarray_info(env, buf, NULL, NULL, NULL, &ab, &off);
  if (st != napi_ok) return st;
  return napi_create_typedarray(env, napi_uint8_array, len, ab, off, out);
}

/* A plain Uint8Array holding a copy of src. */
static napi_status make_u8_copy(napi_env env, const uint8_t *src, size_t len, napi_value *out) {
  void *data = NULL;
  napi_status st = make_u8(env, len, &data, out);
  if (st == napi_ok && len > 0) memcpy(data, src, len);
  return st;
}

typedef struct {
  napi_env env;
  napi_value arr;
  uint32_t n;
} collect_ctx;

static int collect_emit(void *arg, const uint8_t *packet, size_t len) {
  collect_ctx *c = (collect_ctx *)arg;
  napi_value b;
  if (make_u8_copy(c->env, packet, len, &b) != napi_ok) return 1;
  return napi_set_element(c->env, c->arr, c->n++, b) != napi_ok;
}

static napi_value offload_split_js(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  void *data;
  size_t len;
  if (!get_args(env, info, 1, argv, "offloadSplit") || !get_bytes(env, argv[0], "offloadSplit", &data, &len)) return NULL;
  static uint8_t scratch[65536];
  collect_ctx c = {env, NULL, 0};
  NAPI_OK_OR_RETURN(env, napi_create_array(env, &c.arr), NULL);
  if (offload_split(data, len, scratch, collect_emit, &c) < 0) {
    napi_value nul;
    napi_get_null(env, &nul);
    return nul;
  }
  return c.arr;
}

static napi_value offload_coalesce_js(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv, "offloadCoalesce")) return NULL;
  uint32_t count = 0;
  NAPI_OK_OR_RETURN(env, napi_get_array_length(env, argv[0], &count), NULL);
  if (count > 4096) {
    throw_range(env, "offloadCoalesce: at most 4096 packets");
    return NULL;
  }
  const uint8_t *ptrs[4096];
  size_t lens[4096];
  for (uint32_t i = 0; i < count; i++) {
    napi_value item;
    void *data;
    size_t len;
    NAPI_OK_OR_RETURN(env, napi_get_element(env, argv[0], i, &item), NULL);
    if (!get_bytes(env, item, "offloadCoalesce", &data, &len)) return NULL;
    if (len == 0 || len > 65535) {
      throw_range(env, "offloadCoalesce: packet %u has %zu bytes", i, len);
      return NULL;
    }
    ptrs[i] = data;
    lens[i] = len;
  }
  static uint8_t frame[VNET_HDR_LEN + 65535];
  napi_value out;
  NAPI_OK_OR_RETURN(env, napi_create_array(env, &out), NULL);
  uint32_t i = 0, n = 0;
  while (i < count) {
    int k = offload_group(ptrs + i, lens + i, (int)(count - i));
    size_t flen = offload_build(ptrs + i, lens + i, k, frame);
    napi_value b;
    NAPI_OK_OR_RETURN(env, make_u8_copy(env, frame, flen, &b), NULL);
    NAPI_OK_OR_RETURN(env, napi_set_element(env, out, n++, b), NULL);
    i += (uint32_t)k;
  }
  return out;
}

/* ---------------------------------------------------------------- socket mark */

static napi_value set_socket_mark(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  double mark_d;
  if (!get_args(env, info, 2, argv, "setSocketMark") || !get_fd(env, argv[0], "setSocketMark", &fd) ||
      !get_integer(env, argv[1], "setSocketMark", "mark", 0, 4294967295.0, &mark_d))
    return NULL;
  uint32_t mark = (uint32_t)mark_d;
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) < 0) {
    throw_errno(env, errno, "setsockopt", "setSocketMark fd %d: setsockopt SO_MARK=0x%x", fd, mark);
    return NULL;
  }
  return undefined_value(env);
}

static napi_value get_socket_mark(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!get_args(env, info, 1, argv, "getSocketMark") || !get_fd(env, argv[0], "getSocketMark", &fd)) return NULL;
  uint32_t mark = 0;
  socklen_t len = sizeof mark;
  if (getsockopt(fd, SOL_SOCKET, SO_MARK, &mark, &len) < 0) {
    throw_errno(env, errno, "getsockopt", "getSocketMark fd %d: getsockopt SO_MARK", fd);
    return NULL;
  }
  napi_value v;
  NAPI_OK_OR_RETURN(env, napi_create_uint32(env, mark, &v), NULL);
  return v;
}

static napi_value set_socket_buffers(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  double size_d;
  if (!get_args(env, info, 2, argv, "setSocketBuffers") || !get_fd(env, argv[0], "setSocketBuffers", &fd) ||
      !get_integer(env, argv[1], "setSocketBuffers", "bytes", 1024, INT32_MAX / 2, &size_d))
    return NULL;
  int size = (int)size_d;
  static const int options[2][2] = {{SO_RCVBUFFORCE, SO_RCVBUF}, {SO_SNDBUFFORCE, SO_SNDBUF}};
  int result[2];
  for (int i = 0; i < 2; i++) {
    /* the FORCE variant needs CAP_NET_ADMIN; without it the plain one is capped by [rw]mem_max */
    if (setsockopt(fd, SOL_SOCKET, options[i][0], &size, sizeof size) < 0 &&
        setsockopt(fd, SOL_SOCKET, options[i][1], &size, sizeof size) < 0) {
      throw_errno(env, errno, "setsockopt", "setSocketBuffers fd %d: setsockopt %s=%d", fd, i == 0 ? "SO_RCVBUF" : "SO_SNDBUF",
                  size);
      return NULL;
    }
    socklen_t len = sizeof result[i];
    if (getsockopt(fd, SOL_SOCKET, options[i][1], &result[i], &len) < 0) {
      throw_errno(env, errno, "getsockopt", "setSocketBuffers fd %d: getsockopt", fd);
      return NULL;
    }
  }
  napi_value out, recv_v, send_v;
  NAPI_OK_OR_RETURN(env, napi_create_object(env, &out), NULL);
  NAPI_OK_OR_RETURN(env, napi_create_int32(env, result[0], &recv_v), NULL);
  NAPI_OK_OR_RETURN(env, napi_create_int32(env, result[1], &send_v), NULL);
  NAPI_OK_OR_RETURN(env, napi_set_named_property(env, out, "recv", recv_v), NULL);
  NAPI_OK_OR_RETURN(env, napi_set_named_property(env, out, "send", send_v), NULL);
  return out;
}

/* ---------------------------------------------------------------- poll-driven TUN reader */

enum reader_state { READER_ACTIVE, READER_CLOSING, READER_CLOSED };

typedef struct tun_reader {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context async_context;
  int fd;
  uint32_t max_batch;
  size_t buf_size;
  uint8_t *buf;
  bool vnet;          /* frames carry a virtio header: split TSO frames, complete checksums */
  uint8_t *scratch;   /* 64 KiB for offload_split */
  bool udp;           /* a UDP reader: recvmmsg into slots, fd is our own dup */
  bool room;          /* TUN packets as views with zeroed room around them for sealing in place */
  struct mmsghdr *msgs;
  struct iovec *iovs;
  struct sockaddr_storage *addrs;
  uint8_t *keep;      /* per slot: delivered in this batch */
  uint32_t *ports;
  enum reader_state state;
  bool handle_collected; /* the JS handle was garbage-collected */
} tun_reader;

static void env_cleanup(void *arg);

/* Frees what the reader owns (buffers, its dup of a UDP fd); the struct itself stays. */
static void reader_release(tun_reader *r) {
  free(r->buf);
  r->buf = NULL;
  free(r->scratch);
  r->scratch = NULL;
  free(r->msgs);
  free(r->iovs);
  free(r->addrs);
  free(r->keep);
  free(r->ports);
  r->msgs = NULL;
  r->iovs = NULL;
  r->addrs = NULL;
  r->keep = NULL;
  r->ports = NULL;
  if (r->udp && r->fd >= 0) close(r->fd);
  if (r->udp) r->fd = -1;
}

static void reader_on_closed(uv_handle_t *handle) {
  tun_reader *r = (tun_reader *)handle->data;
  r->state = READER_CLOSED;
  reader_release(r);
  if (r->handle_collected) free(r);
}

/*
 * Closes the poll handle. A UDP reader's own fd is closed right after uv_close returns: libuv has
 * dropped it from epoll by then, and the port must be free when the caller's socket closes (a rebind
 * to the same port, or another process, may take it at once).
 */
static void reader_close_handle(tun_reader *r) {
  uv_close((uv_handle_t *)&r->poll, reader_on_closed);
  if (r->udp && r->fd >= 0) {
    close(r->fd);
    r->fd = -1;
  }
}

static void reader_stop(tun_reader *r, bool from_cleanup_hook) {
  if (r->state != READER_ACTIVE) return;
  r->state = READER_CLOSING;
  uv_poll_stop(&r->poll);
  if (r->callback != NULL) napi_delete_reference(r->env, r->callback);
  r->callback = NULL;
  if (r->async_context != NULL) napi_async_destroy(r->env, r->async_context);
  r->async_context = NULL;
  if (!from_cleanup_hook) napi_remove_env_cleanup_hook(r->env, env_cleanup, r);
  reader_close_handle(r);
}

static void env_cleanup(void *arg) { reader_stop((tun_reader *)arg, true); }

static void reader_finalize(napi_env env, void *data, void *hint) {
  tun_reader *r = (tun_reader *)data;
  r->handle_collected = true;
  if (r->state == READER_CLOSED) free(r);
  /* still active: the reader keeps running (it holds its callback); it is freed once closed */
}

/* Calls cb(args...) within the reader's async context; an exception thrown by cb becomes uncaught. */
static void invoke(napi_env env, napi_async_context context, napi_ref callback, size_t argc, napi_value *argv) {
  napi_value cb = NULL, recv, result;
  if (callback == NULL || napi_get_reference_value(env, callback, &cb) != napi_ok || cb == NULL) return;
  /* napi_make_callback converts the receiver to an object: undefined would throw, so pass the global */
  napi_get_global(env, &recv);
  napi_make_callback(env, context, recv, cb, argc, argv, &result);
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    napi_value exception;
    if (napi_get_and_clear_last_exception(env, &exception) == napi_ok) napi_fatal_exception(env, exception);
  }
}

/*
 * One packet for JS. Plain: a Buffer copy. With room: a Uint8Array view of `len` bytes at offset
 * PACKET_HEADROOM of its own zeroed ArrayBuffer of len + PACKET_HEADROOM + PACKET_TAILROOM bytes, so the
 * device can write the 16-byte transport header before it, zero padding and the 16-byte tag after it,
 * and seal in place: no second allocation and no copy per packet on the send path.
 */
#define PACKET_HEADROOM 16
#define PACKET_TAILROOM 31 /* padding to a multiple of 16 (at most 15) + the 16-byte tag */

static napi_status make_packet(napi_env env, bool room, const uint8_t *src, size_t len, napi_value *out) {
  if (!room) return make_u8_copy(env, src, len, out);
  void *data = NULL;
  napi_value ab;
  size_t total = len + PACKET_HEADROOM + PACKET_TAILROOM;
  napi_status st = napi_create_arraybuffer(env, total, &data, &ab);
  if (st != napi_ok) return st;
  uint8_t *p = (uint8_t *)data;
  memset(p, 0, PACKET_HEADROOM);
  memcpy(p + PACKET_HEADROOM, src, len);
  memset(p + PACKET_HEADROOM + len, 0, PACKET_TAILROOM);
  return napi_create_typedarray(env, napi_uint8_array, len, ab, PACKET_HEADROOM, out);
}

typedef struct {
  napi_env env;
  napi_value packets;
  uint32_t *count;
  bool room;
} split_ctx;

static int split_emit(void *arg, const uint8_t *packet, size_t len) {
  split_ctx *c = (split_ctx *)arg;
  napi_value b;
  if (make_packet(c->env, c->room, packet, len, &b) != napi_ok) return 1;
  if (napi_set_element(c->env, c->packets, *c->count, b) != napi_ok) return 1;
  (*c->count)++;
  return 0;
}

/*
 * Reports err to the callback once and stops the reader (the fd is gone). Polling stops before the call:
 * the callback may close the fd, and the poll must not outlive it.
 */
static void reader_fail(tun_reader *r, int err, const char *what) {
  napi_env env = r->env;
  napi_value argv[2];
  napi_get_null(env, &argv[0]);
  argv[1] = make_errno_error(env, err, r->udp ? "recvmmsg" : "read", what);
  if (argv[1] == NULL) argv[1] = undefined_value(env);
  napi_ref callback = r->callback;
  napi_async_context context = r->async_context;
  r->callback = NULL;
  r->async_context = NULL;
  r->state = READER_CLOSING;
  uv_poll_stop(&r->poll);
  napi_remove_env_cleanup_hook(env, env_cleanup, r);
  invoke(env, context, callback, 2, argv);
  napi_delete_reference(env, callback);
  napi_async_destroy(env, context);
  reader_close_handle(r);
}

static void udp_reader_on_poll(tun_reader *r, int status);

static void reader_on_poll(uv_poll_t *handle, int status, int events) {
  tun_reader *r = (tun_reader *)handle->data;
  if (r->state != READER_ACTIVE) return;
  if (r->udp) {
    udp_reader_on_poll(r, status);
    return;
  }
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;

  /* read until EAGAIN or a full batch */
  napi_value packets;
  uint32_t count = 0;
  int read_error = 0;
  if (napi_create_array(env, &packets) != napi_ok) goto out;
  uint32_t frames = 0;
  while (frames < r->max_batch && count < r->max_batch) {
    ssize_t n = read(r->fd, r->buf, r->buf_size);
    if (n > 0 && r->vnet) {
      split_ctx ctx = {env, packets, &count, r->room};
      offload_split(r->buf, (size_t)n, r->scratch, split_emit, &ctx); /* a malformed frame is dropped */
      frames++;
      continue;
    }
    if (n > 0) {
      frames++;
      napi_value packet;
      if (make_packet(env, r->room, r->buf, (size_t)n, &packet) != napi_ok) break;
      if (napi_set_element(env, packets, count, packet) != napi_ok) break;
      count++;
      continue;
    }
    if (n == 0) {
      read_error = EIO; /* a TUN fd never reads 0 bytes while the interface lives */
      break;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) read_error = errno;
    break;
  }
  /* libuv reports POLLERR as a status and stops the watcher; the read above found the real errno */
  if (read_error == 0 && status < 0) read_error = -status;

  if (count > 0) {
    napi_value argv[1] = {packets};
    invoke(env, r->async_context, r->callback, 1, argv);
  }
  if (read_error != 0 && r->state == READER_ACTIVE) {
    char what[96];
    snprintf(what, sizeof what, "TUN fd %d read failed", r->fd);
    reader_fail(r, read_error, what);
  }
out:
  napi_close_handle_scope(env, scope);
}

/* Errors of one datagram (or of the network, reported through ICMP) that leave the socket usable. */
static bool udp_transient(int err) {
  switch (err) {
  case ECONNREFUSED: case EHOSTUNREACH: case ENETUNREACH: case ENETDOWN: case EHOSTDOWN:
  case ECONNRESET: case EMSGSIZE: case ENOMEM: case ENOBUFS: case EPROTO: case EIO: case EPERM:
  case ETIMEDOUT: case ENOPROTOOPT: case EOPNOTSUPP:
    return true;
  default:
    return false;
  }
}

static void udp_reader_on_poll(tun_reader *r, int status) {
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  int fatal = 0;
  int n;
  for (;;) {
    for (uint32_t i = 0; i < r->max_batch; i++) {
      r->msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
      r->msgs[i].msg_hdr.msg_flags = 0;
      r->msgs[i].msg_len = 0;
    }
    n = recvmmsg(r->fd, r->msgs, r->max_batch, MSG_DONTWAIT, NULL);
    if (n >= 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    if (udp_transient(errno)) continue; /* the error was consumed; the next datagram may be fine */
    fatal = errno;
    break;
  }
  if (n > 0) {
    /* one Buffer for the whole batch (payloads back to back) and one Uint32Array of [length, port]
       pairs: two allocations per wake-up instead of one Buffer per datagram */
    size_t total = 0;
    uint32_t keep = 0;
    char text[INET6_ADDRSTRLEN + IFNAMSIZ + 1];
    napi_value addresses, data, meta_ab, meta;
    if (napi_create_array_with_length(env, (size_t)n, &addresses) != napi_ok) goto out;
    for (int i = 0; i < n; i++) {
      struct msghdr *h = &r->msgs[i].msg_hdr;
      r->keep[i] = 0;
      if (h->msg_flags & MSG_TRUNC) continue; /* larger than any WireGuard datagram: dropped */
      const struct sockaddr_storage *ss = &r->addrs[i];
      int port;
      if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        if (inet_ntop(AF_INET, &a->sin_addr, text, sizeof text) == NULL) continue;
        port = ntohs(a->sin_port);
      } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
          if (inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], text, sizeof text) == NULL) continue;
        } else if (inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text) == NULL) {
          continue;
        } else if (a->sin6_scope_id != 0) {
          /* a link-local source: name its zone as node's dgram does (interface name, else the index) */
          char zone[IFNAMSIZ];
          size_t used = strlen(text);
          if (if_indextoname(a->sin6_scope_id, zone) != NULL) snprintf(text + used, sizeof text - used, "%%%s", zone);
          else snprintf(text + used, sizeof text - used, "%%%u", (unsigned)a->sin6_scope_id);
        }
        port = ntohs(a->sin6_port);
      } else {
        continue;
      }
      napi_value address;
      if (napi_create_string_latin1(env, text, NAPI_AUTO_LENGTH, &address) != napi_ok ||
          napi_set_element(env, addresses, keep, address) != napi_ok)
        goto out;
      r->keep[i] = 1;
      r->ports[i] = (uint32_t)port;
      total += r->msgs[i].msg_len;
      keep++;
    }
    if (keep > 0) {
      void *dst = NULL, *meta_p = NULL;
      if (make_u8(env, total, &dst, &data) != napi_ok ||
          napi_create_arraybuffer(env, (size_t)keep * 2 * sizeof(uint32_t), &meta_p, &meta_ab) != napi_ok ||
          napi_create_typedarray(env, napi_uint32_array, (size_t)keep * 2, meta_ab, 0, &meta) != napi_ok)
        goto out;
      uint8_t *w = (uint8_t *)dst;
      uint32_t *m = (uint32_t *)meta_p;
      for (int i = 0; i < n; i++) {
        if (!r->keep[i]) continue;
        memcpy(w, r->iovs[i].iov_base, r->msgs[i].msg_len);
        w += r->msgs[i].msg_len;
        *m++ = r->msgs[i].msg_len;
        *m++ = r->ports[i];
      }
      napi_value argv[3] = {data, meta, addresses};
      invoke(env, r->async_context, r->callback, 3, argv);
    }
  }
  if (fatal == 0 && status < 0 && r->state == READER_ACTIVE) {
    /* POLLERR: a pending socket error (ICMP) is consumed by the next recvmmsg; only a dead fd is fatal */
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) fatal = errno;
    else if (uv_poll_start(&r->poll, UV_READABLE, reader_on_poll) < 0) fatal = EBADF;
  }
  if (fatal != 0 && r->state == READER_ACTIVE) {
    char what[96];
    snprintf(what, sizeof what, "UDP fd %d read failed", r->fd);
    reader_fail(r, fatal, what);
  }
out:
  napi_close_handle_scope(env, scope);
}

/* Shared tail of the reader constructors: poll start, JS handle, cleanup hook. Frees r on failure. */
static napi_value reader_begin(napi_env env, tun_reader *r, napi_value cb, const char *fn, const char *resource_text) {
  uv_loop_t *loop = NULL;
  if (napi_get_uv_event_loop(env, (struct uv_loop_s **)&loop) != napi_ok) {
    reader_release(r);
    free(r);
    return NULL;
  }
  int rc = uv_poll_init(loop, &r->poll, r->fd);
  if (rc < 0) {
    int fd = r->fd;
    reader_release(r);
    free(r);
    throw_errno(env, -rc, "uv_poll_init", "%s fd %d: uv_poll_init", fn, fd);
    return NULL;
  }
  r->poll.data = r;
  rc = uv_poll_start(&r->poll, UV_READABLE, reader_on_poll);
  if (rc < 0) {
    r->state = READER_CLOSING;
    r->handle_collected = true; /* no JS handle will exist: free on close */
    throw_errno(env, -rc, "uv_poll_start", "%s fd %d: uv_poll_start", fn, r->fd);
    uv_close((uv_handle_t *)&r->poll, reader_on_closed);
    return NULL;
  }
  napi_value resource, resource_name, handle;
  if (napi_create_reference(env, cb, 1, &r->callback) != napi_ok ||
      napi_create_object(env, &resource) != napi_ok ||
      napi_create_string_utf8(env, resource_text, NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
      napi_async_init(env, resource, resource_name, &r->async_context) != napi_ok ||
      napi_create_external(env, r, reader_finalize, NULL, &handle) != napi_ok) {
    r->handle_collected = true;
    if (r->callback != NULL) napi_delete_reference(env, r->callback);
    if (r->async_context != NULL) napi_async_destroy(env, r->async_context);
    r->callback = NULL;
    r->async_context = NULL;
    r->state = READER_CLOSING;
    uv_poll_stop(&r->poll);
    uv_close((uv_handle_t *)&r->poll, reader_on_closed);
    return NULL;
  }
  napi_add_env_cleanup_hook(env, env_cleanup, r);
  return handle;
}

static napi_value udp_reader_start(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  double max_batch;
  if (!get_args(env, info, 3, argv, "udpReaderStart") || !get_fd(env, argv[0], "udpReaderStart", &fd) ||
      !get_integer(env, argv[1], "udpReaderStart", "maxBatch", 1, UDP_MAX_BATCH, &max_batch))
    return NULL;
  napi_valuetype type;
  NAPI_OK_OR_RETURN(env, napi_typeof(env, argv[2], &type), NULL);
  if (type != napi_function) {
    throw_type(env, "udpReaderStart: callback must be a function");
    return NULL;
  }
  int sock_type = 0;
  socklen_t len = sizeof sock_type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &sock_type, &len) < 0) {
    throw_errno(env, errno, "getsockopt", "udpReaderStart fd %d: not a socket", fd);
    return NULL;
  }
  if (sock_type != SOCK_DGRAM) {
    throw_type(env, "udpReaderStart: fd %d is not a datagram socket (SO_TYPE %d)", fd, sock_type);
    return NULL;
  }
  size_t batch = (size_t)max_batch;
  tun_reader *r = (tun_reader *)calloc(1, sizeof *r);
  if (r == NULL) {
    throw_errno(env, ENOMEM, "calloc", "udpReaderStart fd %d: allocating reader", fd);
    return NULL;
  }
  r->udp = true;
  r->fd = -1;
  r->env = env;
  r->max_batch = (uint32_t)batch;
  r->buf_size = batch * UDP_SLOT_SIZE;
  r->buf = (uint8_t *)malloc(r->buf_size);
  r->msgs = (struct mmsghdr *)calloc(batch, sizeof *r->msgs);
  r->iovs = (struct iovec *)calloc(batch, sizeof *r->iovs);
  r->addrs = (struct sockaddr_storage *)calloc(batch, sizeof *r->addrs);
  r->keep = (uint8_t *)calloc(batch, 1);
  r->ports = (uint32_t *)calloc(batch, sizeof *r->ports);
  if (r->buf == NULL || r->msgs == NULL || r->iovs == NULL || r->addrs == NULL || r->keep == NULL || r->ports == NULL) {
    reader_release(r);
    free(r);
    throw_errno(env, ENOMEM, "malloc", "udpReaderStart fd %d: allocating %zu receive slots", fd, batch);
    return NULL;
  }
  for (size_t i = 0; i < batch; i++) {
    r->iovs[i].iov_base = r->buf + i * UDP_SLOT_SIZE;
    r->iovs[i].iov_len = UDP_SLOT_SIZE;
    r->msgs[i].msg_hdr.msg_iov = &r->iovs[i];
    r->msgs[i].msg_hdr.msg_iovlen = 1;
    r->msgs[i].msg_hdr.msg_name = &r->addrs[i];
  }
  /* our own fd: closing it never touches the caller's socket handle, and its epoll entry is separate */
  r->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (r->fd < 0) {
    int err = errno;
    reader_release(r);
    free(r);
    throw_errno(env, err, "fcntl", "udpReaderStart fd %d: F_DUPFD_CLOEXEC", fd);
    return NULL;
  }
  r->state = READER_ACTIVE;
  return reader_begin(env, r, argv[2], "udpReaderStart", "kubespand:UdpReader");
}

static napi_value tun_reader_start(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int fd;
  double max_batch, buf_size;
  if (!get_args(env, info, 4, argv, "tunReaderStart") || !get_fd(env, argv[0], "tunReaderStart", &fd) ||
      !get_integer(env, argv[1], "tunReaderStart", "maxBatch", 1, MAX_BATCH_LIMIT, &max_batch) ||
      !get_integer(env, argv[2], "tunReaderStart", "bufSize", 64, MAX_BUF_SIZE, &buf_size))
    return NULL;
  napi_valuetype type;
  NAPI_OK_OR_RETURN(env, napi_typeof(env, argv[3], &type), NULL);
  if (type != napi_function) {
    throw_type(env, "tunReaderStart: callback must be a function");
    return NULL;
  }

  tun_reader *r = (tun_reader *)calloc(1, sizeof *r);
  if (r == NULL) {
    throw_errno(env, ENOMEM, "calloc", "tunReaderStart fd %d: allocating reader", fd);
    return NULL;
  }
  r->buf = (uint8_t *)malloc((size_t)buf_size);
  if (r->buf == NULL) {
    free(r);
    throw_errno(env, ENOMEM, "malloc", "tunReaderStart fd %d: allocating %.0f-byte buffer", fd, buf_size);
    return NULL;
  }
  r->vnet = optional_bool(env, info, 4);
  r->room = optional_bool(env, info, 5);
  if (r->vnet) {
    r->scratch = (uint8_t *)malloc(65536);
    if (r->scratch == NULL) {
      free(r->buf);
      free(r);
      throw_errno(env, ENOMEM, "malloc", "tunReaderStart fd %d: allocating the offload buffer", fd);
      return NULL;
    }
  }
  r->env = env;
  r->fd = fd;
  r->max_batch = (uint32_t)max_batch;
  r->buf_size = (size_t)buf_size;
  r->state = READER_ACTIVE;

  return reader_begin(env, r, argv[3], "tunReaderStart", "kubespand:TunReader");
}

static napi_value tun_reader_stop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv, "tunReaderStop")) return NULL;
  napi_valuetype type;
  NAPI_OK_OR_RETURN(env, napi_typeof(env, argv[0], &type), NULL);
  if (type != napi_external) {
    throw_type(env, "tunReaderStop: handle must come from tunReaderStart");
    return NULL;
  }
  void *data = NULL;
  NAPI_OK_OR_RETURN(env, napi_get_value_external(env, argv[0], &data), NULL);
  reader_stop((tun_reader *)data, false);
  return undefined_value(env);
}

/* ---------------------------------------------------------------- systemd notify */

#define SD_NOTIFY_MAX_TEXT 4096

/* Reads a string argument into a malloc'd buffer (NUL-terminated); *len excludes the NUL. */
static char *get_string(napi_env env, napi_value v, const char *fn, const char *field, size_t max, size_t *len) {
  napi_valuetype type;
  if (napi_typeof(env, v, &type) != napi_ok) return NULL;
  if (type != napi_string) {
    throw_type(env, "%s: %s must be a string", fn, field);
    return NULL;
  }
  if (napi_get_value_string_utf8(env, v, NULL, 0, len) != napi_ok) return NULL;
  if (*len > max) {
    throw_range(env, "%s: %s is %zu bytes, at most %zu allowed", fn, field, *len, max);
    return NULL;
  }
  char *out = malloc(*len + 1);
  if (out == NULL) {
    throw_errno(env, ENOMEM, "malloc", "%s: %s", fn, field);
    return NULL;
  }
  if (napi_get_value_string_utf8(env, v, out, *len + 1, len) != napi_ok) {
    free(out);
    return NULL;
  }
  return out;
}

static napi_value sd_notify(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv, "sdNotify")) return NULL;
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  size_t path_len = 0;
  char *path = get_string(env, argv[0], "sdNotify", "path", sizeof addr.sun_path - 1, &path_len);
  if (path == NULL) return NULL;
  if (path_len < 2 || (path[0] != '/' && path[0] != '@')) {
    throw_range(env, "sdNotify: path must be absolute or start with @ for an abstract socket, got \"%s\"", path);
    free(path);
    return NULL;
  }
  size_t text_len = 0;
  char *text = get_string(env, argv[1], "sdNotify", "text", SD_NOTIFY_MAX_TEXT, &text_len);
  if (text == NULL) {
    free(path);
    return NULL;
  }
  memcpy(addr.sun_path, path, path_len);
  /* an abstract address has no terminating NUL: its length is exactly the name's */
  socklen_t addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len + (path[0] == '@' ? 0 : 1));
  if (path[0] == '@') addr.sun_path[0] = '\0';

  napi_value result = NULL;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw_errno(env, errno, "socket", "sdNotify %s: socket(AF_UNIX, SOCK_DGRAM)", path);
  } else {
    ssize_t n = sendto(fd, text, text_len, MSG_NOSIGNAL, (struct sockaddr *)&addr, addr_len);
    int err = errno;
    close(fd);
    if (n < 0) throw_errno(env, err, "sendto", "sdNotify %s: sendto", path);
    else result = make_int(env, n);
  }
  free(path);
  free(text);
  return result;
}

/* ---------------------------------------------------------------- module */

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"tunOpen", NULL, tun_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tunGetName", NULL, tun_get_name, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setNonBlocking", NULL, set_non_blocking, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tunReaderStart", NULL, tun_reader_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tunReaderStop", NULL, tun_reader_stop, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpReaderStart", NULL, udp_reader_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tunWrite", NULL, tun_write, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tunWriteBatch", NULL, tun_write_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"closeFd", NULL, close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setSocketMark", NULL, set_socket_mark, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getSocketMark", NULL, get_socket_mark, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setSocketBuffers", NULL, set_socket_buffers, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sdNotify", NULL, sd_notify, NULL, NULL, NULL, napi_enumerable, NULL},
      {"offloadSplit", NULL, offload_split_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"offloadCoalesce", NULL, offload_coalesce_js, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
