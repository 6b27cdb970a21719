/*
  Loaded keys, readable from C without entering Go (the hot path).

  The server calls get_latest_key_version about once per page write, from
  many threads. Entering Go costs ~55 ns per call and needs a Go P (calls
  from several threads queue); a lookup here costs a few ns and takes no
  lock. Go is entered only on a miss: a key not loaded yet, a rotation, a
  new key id.

  Layout: two open-addressing tables in one anonymous mapping that is
  mlock()ed (never swapped) and MADV_DONTDUMP (not in core dumps), wiped
  with explicit_bzero when the plugin stops.

  Concurrency: writers (Go, rarely) hold a mutex; readers take none.
  Entries are only added, never changed or removed while the plugin runs,
  so a reader sees an entry either absent or complete: fields are written
  first, then published with a release store that readers load with
  acquire. A key version is published before its id's "latest" points to
  it, so a reader that sees latest=V finds version V.
*/
#ifndef AKM_KEYCACHE_H
#define AKM_KEYCACHE_H

/* Open the cache; returns 0, or -1 if the mapping failed (errno set).
   *locked tells whether mlock succeeded (it can fail on RLIMIT_MEMLOCK). */
int akm_cache_open(int *locked);
/* Wipe every key and forget everything (plugin deinit). */
void akm_cache_close(void);
/* Publish a loaded key; returns 0, or -1 if the table is full (the key is
   then served by Go). */
int akm_cache_put(unsigned int id, unsigned int version, const unsigned char *key,
                  unsigned int length);
/* Publish the latest version of id; its key must have been put first. */
int akm_cache_set_latest(unsigned int id, unsigned int version);

/* Readers. 0 / -1 when not cached. */
unsigned int akm_cache_latest(unsigned int id);
/* Returns 1 if (id, version) is cached: copies the key as get_key does
   and sets *code (0 or AKM_BUFFER_TOO_SMALL); 0 if not cached. */
int akm_cache_get(unsigned int id, unsigned int version, unsigned char *dst,
                  unsigned int *length, unsigned int *code);
/* Size of the mapping in bytes, and its address (for tests). */
unsigned long akm_cache_bytes(void);
void *akm_cache_addr(void);

#endif
