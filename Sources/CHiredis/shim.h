#ifndef CACHESYNC_CHIREDIS_SHIM_H
#define CACHESYNC_CHIREDIS_SHIM_H
#include <errno.h>
#include <string.h>
#include <hiredis/hiredis.h>

/* Swift sees redisContext.errstr as a tuple; these helpers read the error state directly. */

/* The hiredis error code of a context (REDIS_ERR_IO, REDIS_ERR_EOF, ...), 0 when there is none. */
static inline int cs_redis_err(const redisContext *c) { return c->err; }

/* The NUL-terminated error text of a context. */
static inline const char *cs_redis_errstr(const redisContext *c) { return c->errstr; }

/* The output buffer (commands appended, not yet written), for a transport that writes it itself (TLS). */
static inline const char *cs_obuf(const redisContext *c) { return c->obuf; }
static inline size_t cs_obuf_length(const redisContext *c) { return sdslen(c->obuf); }
/* Drops the first `written` bytes of the output buffer; once all is written it starts a fresh, empty buffer, as
   hiredis's own redisBufferWrite does, so a large batch's room is not kept for good. */
static inline void cs_obuf_consume(redisContext *c, size_t written) {
    if (written >= sdslen(c->obuf)) {
        sdsfree(c->obuf);
        c->obuf = sdsempty();
    } else {
        sdsrange(c->obuf, (int)written, -1);
    }
}

/* The NUL-terminated error text of a reader. */
static inline const char *cs_reader_errstr(const redisReader *r) { return r->errstr; }

/* The calling thread's errno, read right after a failed hiredis call. */
static inline int cs_errno(void) { return errno; }

/* A reply read without building reply objects (cs_summary_functions): its type, how many elements it has when it
   is an array, and how many error replies it holds (itself or its elements), with the first one's text. */
typedef struct {
    int type;
    long long elements;
    int errors;
    size_t errorLength;
    char error[512];
} cs_reply_summary;

/* Notes a reply of `type` in the summary the reader's privdata points to. What it returns stands for the reply and
   is never dereferenced; it is not NULL, which hiredis would take for "out of memory". */
static inline void *cs_summary_note(const redisReadTask *task, int type) {
    if (task->parent == NULL) ((cs_reply_summary *)task->privdata)->type = type;
    return (void *)(size_t)type;
}

static inline void *cs_summary_string(const redisReadTask *task, char *str, size_t len) {
    cs_reply_summary *summary = task->privdata;
    if (task->type == REDIS_REPLY_ERROR && summary->errors++ == 0) {
        summary->errorLength = len < sizeof summary->error ? len : sizeof summary->error;
        memcpy(summary->error, str, summary->errorLength);
    }
    return cs_summary_note(task, task->type);
}

static inline void *cs_summary_array(const redisReadTask *task, int elements) {
    if (task->parent == NULL) ((cs_reply_summary *)task->privdata)->elements = elements;
    return cs_summary_note(task, REDIS_REPLY_ARRAY);
}

static inline void *cs_summary_integer(const redisReadTask *task, long long value) {
    (void)value;
    return cs_summary_note(task, REDIS_REPLY_INTEGER);
}

static inline void *cs_summary_nil(const redisReadTask *task) { return cs_summary_note(task, REDIS_REPLY_NIL); }

static inline void cs_summary_free(void *reply) { (void)reply; }

/* Reply functions that summarize a reply into the reader's privdata (a cs_reply_summary) instead of building it. */
static inline redisReplyObjectFunctions *cs_summary_functions(void) {
    static redisReplyObjectFunctions functions = {
        cs_summary_string, cs_summary_array, cs_summary_integer, cs_summary_nil, cs_summary_free,
    };
    return &functions;
}

#endif
