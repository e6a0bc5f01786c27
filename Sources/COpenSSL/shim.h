#ifndef CACHESYNC_COPENSSL_SHIM_H
#define CACHESYNC_COPENSSL_SHIM_H
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* OpenSSL's macros, which Swift does not import, as functions. */

/* Refuses anything older than TLS 1.2. */
static inline int cs_ssl_ctx_min_tls12(SSL_CTX *ctx) { return (int)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION); }

/* Sends `name` as the server name indication. */
static inline int cs_ssl_set_sni(SSL *ssl, const char *name) { return (int)SSL_set_tlsext_host_name(ssl, name); }

/* A read on the blocking socket goes on by itself past records that hold no application data (TLS 1.3 session
   tickets); OpenSSL's default since 1.1.1, set to be sure. */
static inline void cs_ssl_set_auto_retry(SSL *ssl) { SSL_set_mode(ssl, SSL_MODE_AUTO_RETRY); }

/* The calling thread's errno, read right after a failed call. */
static inline int cs_ssl_errno(void) { return errno; }

#endif
