/*
  Loaded keys, readable from C without entering Go (the hot path).

  The server calls get_latest_key_version about once per page write, from
  many threads. Entering Go costs ~55 ns per call and needs a Go P (calls
  from several threads queue); a lookup here costs a few ns and takes no
  lock. Go is entered only on a miss: a key not loaded yet, a rotation, a
  new key id, or a race with a writer, a table growth or a close. A miss
  is always safe: Go serves every key itself.

  Layout: two open-addressing tables (key versions by (id, version), and
  the latest version by id), each in its own anonymous mapping that is
  mlock()ed (never swapped), MADV_DONTDUMP (not in core dumps) and
  MADV_DONTFORK. Slots are found by Fibonacci hashing (the top bits of a
  64-bit multiplicative hash) and linear probing. A table grows (doubles)
  before it is half full, so a lookup probes a few slots at any size. A
  locked key table grows only into memory that mlock accepts; a table
  that cannot grow fills to three quarters, then refuses puts (Go serves
  those keys). Readers find each table through one published word (the
  page-aligned address of its slots | log2 of their number).

  Writers (Go, rarely) hold a mutex. Readers take none; each slot carries a
  sequence counter (a seqlock):
    - seq 0: empty; odd: being written or wiped; even and non-zero:
      published.
    - A writer makes seq odd, writes the fields, makes seq even (release).
    - A reader loads seq (acquire), reads the fields and the key bytes with
      relaxed atomic loads into a local copy, then (acquire fence) loads
      seq again; 0, odd or changed is a miss. The key reaches the caller's
      buffer only after that check, so a caller never gets torn bytes.
  A key version is put before its id's latest version names it.

  A table is never reused once retired and never unmapped (a reader may
  still be inside it): on growth the entries are copied into a new
  mapping whose word is then published with a release store; on close
  the words are set to 0 (readers miss) and the next open maps new tables. A retired table is wiped slot by slot with the
  seqlock protocol (its slots end at seq 0, so readers still inside miss),
  then munlock()ed and MADV_DONTNEED (its memory is returned; reads see
  zeros, i.e. empty slots). Since a slot's seq only grows until the final
  wipe to 0, a reader cannot mistake a wiped-and-refilled slot for the one
  it started reading.

  After akm_cache_close the cache refuses puts until the next
  akm_cache_open (a late writer cannot re-publish a key); readers miss.
*/
#ifndef AKM_KEYCACHE_H
#define AKM_KEYCACHE_H

/* Open the cache with fresh, empty tables (or keep the open ones); returns
   0, or -1 if a mapping failed (errno set). *locked tells whether mlock
   succeeded (it can fail on RLIMIT_MEMLOCK). */
int akm_cache_open(int *locked);
/* Wipe every key and refuse writes until the next akm_cache_open (plugin
   deinit). */
void akm_cache_close(void);
/* Publish a loaded key (length 1..AKM_MAX_KEY_LENGTH); returns 0, or -1
   if refused (closed, bad arguments, no memory): Go then serves it. */
int akm_cache_put(unsigned int id, unsigned int version, const unsigned char *key,
                  unsigned int length);
/* Publish the latest version of id; its key must have been put first.
   Returns 0, or -1 if refused as akm_cache_put. */
int akm_cache_set_latest(unsigned int id, unsigned int version);

/* Readers. 0 when not cached (a miss). */
unsigned int akm_cache_latest(unsigned int id);
/* Returns 1 if (id, version) is cached: copies the key as get_key does
   (dst NULL or *length too small: sets *length) and sets *code (0 or
   AKM_BUFFER_TOO_SMALL); 0 on a miss (nothing written). */
int akm_cache_get(unsigned int id, unsigned int version, unsigned char *dst,
                  unsigned int *length, unsigned int *code);

/* How full the tables are (SHOW GLOBAL STATUS): entries and slots of the
   key-version table and of the key-id table; all 0 when closed. */
void akm_cache_fill(unsigned long long *keys, unsigned long long *key_slots,
                    unsigned long long *ids, unsigned long long *id_slots);

#ifdef AKM_KEYCACHE_TEST
/* For tests/keycache only: the shape of one table. probe_max is the most
   slots a lookup of a present entry reads, probe_sum / entries the mean;
   run_max the longest run of occupied slots (what a miss may read). */
struct akm_cache_stats {
  unsigned long slots, entries, probe_max, probe_sum, run_max;
};
/* Fills the stats of the key-version table (which = 0) or of the latest
   table (which = 1); returns -1 if closed. */
int akm_cache_stats(int which, struct akm_cache_stats *out);
#endif

#endif
