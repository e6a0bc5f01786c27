#ifndef CACHESYNC_CMONGOC_SHIM_H
#define CACHESYNC_CMONGOC_SHIM_H
#include <mongoc/mongoc.h>
#include <bson/bson.h>

/* bson_t is 128-byte aligned in Debian's libbson, so Swift only sees it as an
   opaque pointer. These helpers read what Swift cannot reach directly. */

/* The bytes of a document and their length. */
static inline const uint8_t *cs_bson_data(const bson_t *b, uint32_t *len) {
    *len = b->len;
    return bson_get_data(b);
}

/* A heap copy of a document that mongoc owns (e.g. a change event). */
static inline bson_t *cs_bson_copy(const bson_t *b) { return bson_copy(b); }

/* Whether an error document carries an error label, e.g. "ResumableChangeStreamError". */
static inline bool cs_bson_has_label(const bson_t *reply, const char *label) {
    bson_iter_t iter, arr;
    if (!reply || !bson_iter_init_find(&iter, reply, "errorLabels") || !BSON_ITER_HOLDS_ARRAY(&iter)) return false;
    if (!bson_iter_recurse(&iter, &arr)) return false;
    while (bson_iter_next(&arr)) {
        if (BSON_ITER_HOLDS_UTF8(&arr) && strcmp(bson_iter_utf8(&arr, NULL), label) == 0) return true;
    }
    return false;
}

/* "host:port" of one entry of a URI's host list (a char array Swift sees as a tuple). */
static inline const char *cs_host_and_port(const mongoc_host_list_t *host) { return host->host_and_port; }

#endif
