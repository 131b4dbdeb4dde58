{
  # The kubespand native addon: TUN open/read/write and SO_MARK, nothing else. Plain C against
  # Node-API version 8, so one build loads on every supported Node major (20, 22, 24).
  "targets": [
    {
      "target_name": "kubespand_native",
      "sources": ["native/kubespand.c", "native/offload.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"]
    },
    {
      # Data-path accelerators (in-place ChaCha20-Poly1305 through Node's own OpenSSL or libsodium, X25519, sendmmsg).
      # A separate addon so that a Node without visible OpenSSL symbols only loses these.
      "target_name": "kubespand_datapath",
      "sources": ["native/datapath.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      # libsodium is opened with dlopen when present (no build dependency): see datapath.c
      "libraries": ["-ldl", "-lpthread"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"]
    }
  ]
}
