/*
 * watch_probe: opens a change stream with libmongoc exactly as cachesync does
 * (mongoc_collection_watch, fullDocument: updateLookup, optional resumeAfter /
 * startAfter) and prints one line per event or error, so selftest.py can prove
 * the scripted server is acceptable to libmongoc as well as to pymongo.
 *
 *   watch_probe URI DB COLL MAX_EVENTS SECONDS [resumeAfter|startAfter TOKEN_HEX]
 *
 * Output lines (stdout):
 *   EVENT <canonical extended JSON of the event>
 *   TOKEN <resume token _data after the event>
 *   ERROR <domain> <code> <message>
 *   DONE <events seen>
 */
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void print_token (mongoc_change_stream_t *stream)
{
   const bson_t *tok = mongoc_change_stream_get_resume_token (stream);
   bson_iter_t it;
   if (tok && bson_iter_init_find (&it, tok, "_data") && BSON_ITER_HOLDS_UTF8 (&it)) {
      printf ("TOKEN %s\n", bson_iter_utf8 (&it, NULL));
   }
}

int main (int argc, char **argv)
{
   if (argc != 6 && argc != 8) {
      fprintf (stderr, "usage: %s URI DB COLL MAX_EVENTS SECONDS [resumeAfter|startAfter TOKEN]\n", argv[0]);
      return 2;
   }
   mongoc_init ();
   bson_error_t error;
   mongoc_uri_t *uri = mongoc_uri_new_with_error (argv[1], &error);
   if (!uri) {
      printf ("ERROR %u %u %s\n", error.domain, error.code, error.message);
      return 2;
   }
   mongoc_client_t *client = mongoc_client_new_from_uri (uri);
   mongoc_collection_t *coll = mongoc_client_get_collection (client, argv[2], argv[3]);
   long max_events = atol (argv[4]);
   long seconds = atol (argv[5]);

   bson_t opts = BSON_INITIALIZER;
   BSON_APPEND_UTF8 (&opts, "fullDocument", "updateLookup");
   BSON_APPEND_INT32 (&opts, "maxAwaitTimeMS", 150);
   if (argc == 8) {
      bson_t tok;
      BSON_APPEND_DOCUMENT_BEGIN (&opts, argv[6], &tok);
      BSON_APPEND_UTF8 (&tok, "_data", argv[7]);
      bson_append_document_end (&opts, &tok);
   }
   bson_t pipeline = BSON_INITIALIZER;
   mongoc_change_stream_t *stream = mongoc_collection_watch (coll, &pipeline, &opts);

   long seen = 0;
   time_t deadline = time (NULL) + seconds;
   const bson_t *doc;
   const bson_t *err_doc;
   while (seen < max_events && time (NULL) < deadline) {
      if (mongoc_change_stream_next (stream, &doc)) {
         char *json = bson_as_canonical_extended_json (doc, NULL);
         printf ("EVENT %s\n", json);
         bson_free (json);
         print_token (stream);
         seen++;
         fflush (stdout);
         bson_iter_t it;
         if (bson_iter_init_find (&it, doc, "operationType") && BSON_ITER_HOLDS_UTF8 (&it) &&
             strcmp (bson_iter_utf8 (&it, NULL), "invalidate") == 0) {
            break; /* the server closed the cursor after invalidate */
         }
         continue;
      }
      if (mongoc_change_stream_error_document (stream, &error, &err_doc)) {
         printf ("ERROR %u %u %s\n", error.domain, error.code, error.message);
         break;
      }
      struct timespec pause = {0, 10 * 1000 * 1000};
      nanosleep (&pause, NULL);
   }
   printf ("DONE %ld\n", seen);
   fflush (stdout);
   mongoc_change_stream_destroy (stream);
   bson_destroy (&pipeline);
   bson_destroy (&opts);
   mongoc_collection_destroy (coll);
   mongoc_client_destroy (client);
   mongoc_uri_destroy (uri);
   mongoc_cleanup ();
   return 0;
}
