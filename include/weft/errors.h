/* weft error codes: every weft function returns 0 or one of these negative values.
 * One table, shared by libweft, the router, the controller and the CLI. */
#ifndef WEFT_ERRORS_H
#define WEFT_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

/* XX(name, value, message). Values are stable: they cross process boundaries in
 * error frames and JSON error bodies, so never renumber, only append. */
#define WEFT_ERRNO_MAP(XX)                                                        \
    XX(INVAL, -1001, "invalid argument")                                          \
    XX(NOMEM, -1002, "out of memory")                                             \
    XX(AGAIN, -1003, "need more data")                                            \
    XX(PROTO, -1004, "malformed message")                                         \
    XX(MAGIC, -1005, "bad frame magic: the peer is not speaking the weft protocol") \
    XX(VERSION, -1006, "unsupported protocol version")                            \
    XX(TOOBIG, -1007, "message exceeds the maximum size")                         \
    XX(IO, -1008, "I/O error")                                                    \
    XX(TLS, -1009, "TLS error")                                                   \
    XX(CERT, -1010, "certificate verification failed")                            \
    XX(CERTEXPIRED, -1011, "certificate expired or not yet valid")                \
    XX(UNTRUSTED, -1012, "certificate not issued by the network CA")              \
    XX(NOCERT, -1013, "peer presented no certificate")                            \
    XX(TIMEDOUT, -1014, "timed out")                                              \
    XX(CLOSED, -1015, "connection closed")                                        \
    XX(RESET, -1016, "connection reset by peer")                                  \
    XX(REFUSED, -1017, "connection refused")                                      \
    XX(NOTFOUND, -1018, "not found")                                              \
    XX(EXISTS, -1019, "already exists")                                           \
    XX(DENIED, -1020, "permission denied")                                        \
    XX(TOKEN, -1021, "invalid token")                                             \
    XX(TOKENEXPIRED, -1022, "token expired")                                      \
    XX(TOKENUSED, -1023, "token already used")                                    \
    XX(FINGERPRINT, -1024, "CA fingerprint does not match the token")             \
    XX(STORE, -1025, "store error")                                               \
    XX(JSON, -1026, "malformed JSON")                                             \
    XX(HTTP, -1027, "HTTP error")                                                 \
    XX(NOBUFS, -1028, "write queue full")                                         \
    XX(CANCELED, -1029, "operation canceled")                                     \
    XX(DISABLED, -1030, "identity disabled")                                      \
    XX(UNSUPPORTED, -1031, "not supported")                                       \
    XX(CONFLICT, -1032, "conflicts with existing state")                          \
    XX(ADDR, -1033, "invalid address: expected HOST:PORT")                        \
    XX(CRYPTO, -1034, "cryptographic failure")                                    \
    XX(BINDING, -1035, "device hardware ids do not match the identity's binding") \
    XX(NOPOLICY, -1036, "no policy allows this")                                  \
    XX(BUSY, -1037, "busy: admission limit reached, retry later")

typedef enum {
#define WEFT_XX_ENUM(name, val, msg) WEFT_E##name = (val),
    WEFT_ERRNO_MAP(WEFT_XX_ENUM)
#undef WEFT_XX_ENUM
} weft_errno_t;

/* Human message for an error code; never NULL. */
const char *weft_strerror(int err);
/* Stable short name ("EPROTO"), for logs and JSON; never NULL. */
const char *weft_err_name(int err);

#ifdef __cplusplus
}
#endif
#endif
