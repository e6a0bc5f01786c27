#ifndef CACHESYNC_CHIREDIS_SHIM_H
#define CACHESYNC_CHIREDIS_SHIM_H
#include <errno.h>
#include <hiredis/hiredis.h>

/* Swift sees redisContext.errstr as a tuple; these helpers read the error state directly. */

/* The hiredis error code of a context (REDIS_ERR_IO, REDIS_ERR_EOF, ...), 0 when there is none. */
static inline int cs_redis_err(const redisContext *c) { return c->err; }

/* The NUL-terminated error text of a context. */
static inline const char *cs_redis_errstr(const redisContext *c) { return c->errstr; }

/* The calling thread's errno, read right after a failed hiredis call. */
static inline int cs_errno(void) { return errno; }

#endif
