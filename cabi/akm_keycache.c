/* See akm_keycache.h for the layout and the concurrency contract. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "cabi.h"
#include "akm_keycache.h"

#define KEY_BITS_INIT 12 /* 4096 key-version slots at open */
#define ID_BITS_INIT 10  /* 1024 key-id slots at open */
#define BITS_MAX 24      /* at most 16M slots per table */
#define KEY_WORDS (AKM_MAX_KEY_LENGTH / 8)

_Static_assert(AKM_MAX_KEY_LENGTH % 8 == 0, "keys are stored as 64-bit words");

/* Every field is read by readers with atomic loads and written by writers
   with atomic stores, inside the seqlock of seq. */
struct key_slot {
  unsigned int seq; /* 0 empty, odd being written or wiped, even published */
  unsigned int id, version, length;
  uint64_t key[KEY_WORDS];
};

struct id_slot {
  unsigned int seq;
  unsigned int id, latest, unused;
};

/* A table as the writers know it (under write_lock). Readers see only
   the published word: the slots' address (page-aligned) | log2(slots),
   one load, no header to chase on the hot path. */
struct table {
  void *slots;
  unsigned int bits; /* log2(number of slots) */
  size_t mask;       /* number of slots - 1 */
  size_t bytes;      /* of the mapping */
  int locked;        /* mlock succeeded */
};
#define PUB_BITS 63u /* low bits of a published word: bits (<= BITS_MAX) */
_Static_assert(BITS_MAX <= PUB_BITS, "bits fit below the page-aligned address");

/* The current tables: published with release, loaded by readers with
   acquire; 0 when closed. Everything else is guarded by write_lock. */
static uintptr_t key_pub, id_pub;
static struct table *key_table, *id_table;
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;
static int is_open;
static size_t key_count, id_count; /* entries in the current tables */

static inline uintptr_t pub_word(const struct table *t)
{
  return t ? (uintptr_t)t->slots | t->bits : 0;
}

/* Fibonacci hashing: the top bits of the product depend on every bit of
   x, so ids equal modulo a power of two spread over the table. */
static inline size_t hash_bits(uint64_t x, unsigned int bits)
{
  return (size_t)((x * 0x9E3779B97F4A7C15ull) >> (64 - bits));
}
static inline size_t home_slot(uint64_t x, const struct table *t)
{
  return hash_bits(x, t->bits);
}
static inline uint64_t kv(unsigned int id, unsigned int version)
{
  return (uint64_t)id << 32 | version;
}

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

/* Writer side of a slot's seqlock (write_lock held): seq_begin makes seq
   odd before any field changes; seq_end publishes (even) or empties (0). */
static inline unsigned int seq_begin(unsigned int *seq)
{
  unsigned int s = LOAD(seq);
  STORE(seq, s | 1);
  __atomic_thread_fence(__ATOMIC_RELEASE);
  return s;
}
static inline void seq_end(unsigned int *seq, unsigned int s)
{
  __atomic_store_n(seq, s, __ATOMIC_RELEASE);
}
/* The next published value after s (even): seq only grows in a table,
   so a reader never sees the same value for two different contents. */
static inline unsigned int seq_next(unsigned int s)
{
  s = (s | 1) + 1;
  return s ? s : 2;
}

/* ---- tables ------------------------------------------------------------ */

static struct table *table_new(unsigned int bits, size_t slot_size)
{
  struct table *t = calloc(1, sizeof *t);
  if (!t)
    return NULL;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  t->bytes = ((slot_size << bits) + page - 1) & ~(page - 1);
  void *p = mmap(NULL, t->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    int e = errno;
    free(t);
    errno = e;
    return NULL;
  }
  madvise(p, t->bytes, MADV_DONTDUMP);
  madvise(p, t->bytes, MADV_DONTFORK);
  t->locked = mlock(p, t->bytes) == 0;
  t->slots = p;
  t->bits = bits;
  t->mask = ((size_t)1 << bits) - 1;
  return t;
}

/* Only for a table that was never published. */
static void table_free(struct table *t)
{
  if (t) {
    munmap(t->slots, t->bytes);
    free(t);
  }
}

/* After the table is unpublished and wiped: give its memory back. Reads
   of it now see zeros (empty slots, a miss). The mapping is never
   unmapped (a reader may still be inside it) nor reused. */
static void table_retire(struct table *t)
{
  munlock(t->slots, t->bytes);
  madvise(t->slots, t->bytes, MADV_DONTNEED);
  free(t);
}

/* A table is full enough to grow once it would pass half its slots.
   If growing fails (no memory, or mlock refused for a table that was
   locked), it takes entries up to three quarters, then refuses them. */
static int may_insert(size_t count, const struct table *t, int (*grow)(void))
{
  size_t slots = t->mask + 1;
  if ((count + 1) * 2 <= slots)
    return 1;
  if (t->bits < BITS_MAX && grow() == 0)
    return 1;
  return (count + 1) * 4 <= slots * 3;
}

/* ---- key versions (write_lock held) ------------------------------------ */

/* The slot of (id, version), or the empty slot where it would go. */
static struct key_slot *key_probe(const struct table *t, unsigned int id, unsigned int version)
{
  struct key_slot *slots = t->slots;
  for (size_t i = 0, h = home_slot(kv(id, version), t); i <= t->mask; i++, h++) {
    struct key_slot *s = &slots[h & t->mask];
    if (LOAD(&s->seq) == 0 || (LOAD(&s->id) == id && LOAD(&s->version) == version))
      return s;
  }
  return NULL; /* full: may_insert keeps a table from getting there */
}

static void key_write(struct key_slot *s, unsigned int id, unsigned int version,
                      unsigned int length, const uint64_t *words)
{
  unsigned int seq = seq_begin(&s->seq);
  STORE(&s->id, id);
  STORE(&s->version, version);
  STORE(&s->length, length);
  for (int w = 0; w < KEY_WORDS; w++)
    STORE(&s->key[w], words[w]);
  seq_end(&s->seq, seq_next(seq));
}

static void key_wipe(struct table *t)
{
  struct key_slot *slots = t->slots;
  for (size_t i = 0; i <= t->mask; i++) {
    struct key_slot *s = &slots[i];
    if (LOAD(&s->seq) == 0)
      continue;
    seq_begin(&s->seq);
    STORE(&s->id, 0);
    STORE(&s->version, 0);
    STORE(&s->length, 0);
    for (int w = 0; w < KEY_WORDS; w++)
      STORE(&s->key[w], 0);
    seq_end(&s->seq, 0);
  }
}

/* Copies every entry into a table twice the size, publishes it, then
   wipes and retires the old one (readers still inside it miss). */
static int key_grow(void)
{
  struct table *old = key_table;
  struct table *t = table_new(old->bits + 1, sizeof(struct key_slot));
  if (!t)
    return -1;
  if (old->locked && !t->locked) { /* never move keys to memory that can be swapped */
    table_free(t);
    return -1;
  }
  struct key_slot *slots = old->slots;
  for (size_t i = 0; i <= old->mask; i++) {
    struct key_slot *s = &slots[i];
    if (LOAD(&s->seq) == 0)
      continue;
    uint64_t words[KEY_WORDS];
    for (int w = 0; w < KEY_WORDS; w++)
      words[w] = LOAD(&s->key[w]);
    unsigned int id = LOAD(&s->id), version = LOAD(&s->version);
    key_write(key_probe(t, id, version), id, version, LOAD(&s->length), words);
    explicit_bzero(words, sizeof words);
  }
  key_table = t;
  __atomic_store_n(&key_pub, pub_word(t), __ATOMIC_RELEASE);
  key_wipe(old);
  table_retire(old);
  return 0;
}

/* ---- latest versions (write_lock held) --------------------------------- */

static struct id_slot *id_probe(const struct table *t, unsigned int id)
{
  struct id_slot *slots = t->slots;
  for (size_t i = 0, h = home_slot(id, t); i <= t->mask; i++, h++) {
    struct id_slot *s = &slots[h & t->mask];
    if (LOAD(&s->seq) == 0 || LOAD(&s->id) == id)
      return s;
  }
  return NULL;
}

static void id_write(struct id_slot *s, unsigned int id, unsigned int latest)
{
  unsigned int seq = seq_begin(&s->seq);
  STORE(&s->id, id);
  STORE(&s->latest, latest);
  seq_end(&s->seq, seq_next(seq));
}

static void id_wipe(struct table *t)
{
  struct id_slot *slots = t->slots;
  for (size_t i = 0; i <= t->mask; i++) {
    struct id_slot *s = &slots[i];
    if (LOAD(&s->seq) == 0)
      continue;
    seq_begin(&s->seq);
    STORE(&s->id, 0);
    STORE(&s->latest, 0);
    seq_end(&s->seq, 0);
  }
}

static int id_grow(void)
{
  struct table *old = id_table;
  struct table *t = table_new(old->bits + 1, sizeof(struct id_slot));
  if (!t)
    return -1;
  struct id_slot *slots = old->slots;
  for (size_t i = 0; i <= old->mask; i++) {
    struct id_slot *s = &slots[i];
    if (LOAD(&s->seq) == 0)
      continue;
    unsigned int id = LOAD(&s->id);
    id_write(id_probe(t, id), id, LOAD(&s->latest));
  }
  id_table = t;
  __atomic_store_n(&id_pub, pub_word(t), __ATOMIC_RELEASE);
  id_wipe(old);
  table_retire(old);
  return 0;
}

/* ---- the writers' API -------------------------------------------------- */

int akm_cache_open(int *locked)
{
  int rc = 0;
  *locked = 0;
  pthread_mutex_lock(&write_lock);
  if (!is_open) {
    /* Fresh tables each time: a closed table is never reused. */
    struct table *k = table_new(KEY_BITS_INIT, sizeof(struct key_slot));
    struct table *i = k ? table_new(ID_BITS_INIT, sizeof(struct id_slot)) : NULL;
    if (!i) {
      int e = errno;
      table_free(k);
      errno = e;
      rc = -1;
    } else {
      key_count = id_count = 0;
      key_table = k;
      id_table = i;
      __atomic_store_n(&key_pub, pub_word(k), __ATOMIC_RELEASE);
      __atomic_store_n(&id_pub, pub_word(i), __ATOMIC_RELEASE);
      is_open = 1;
    }
  }
  if (is_open)
    *locked = key_table->locked && id_table->locked;
  pthread_mutex_unlock(&write_lock);
  return rc;
}

void akm_cache_close(void)
{
  pthread_mutex_lock(&write_lock);
  if (is_open) {
    struct table *k = key_table, *i = id_table;
    /* Readers that start now miss; readers still inside a table miss
       once its slots are wiped. */
    __atomic_store_n(&id_pub, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&key_pub, 0, __ATOMIC_RELEASE);
    key_table = id_table = NULL;
    id_wipe(i);
    key_wipe(k);
    table_retire(i);
    table_retire(k);
    key_count = id_count = 0;
    is_open = 0;
  }
  pthread_mutex_unlock(&write_lock);
}

int akm_cache_put(unsigned int id, unsigned int version, const unsigned char *key,
                  unsigned int length)
{
  int rc = -1;
  if (id == 0 || !key || length == 0 || length > AKM_MAX_KEY_LENGTH)
    return -1;
  pthread_mutex_lock(&write_lock);
  if (is_open) {
    struct key_slot *s = key_probe(key_table, id, version);
    if (s && LOAD(&s->seq) != 0) {
      rc = 0; /* already there: a key version never changes */
    } else if (may_insert(key_count, key_table, key_grow) &&
               (s = key_probe(key_table, id, version)) != NULL) {
      uint64_t words[KEY_WORDS] = {0};
      memcpy(words, key, length);
      key_write(s, id, version, length, words);
      explicit_bzero(words, sizeof words);
      key_count++;
      rc = 0;
    }
  }
  pthread_mutex_unlock(&write_lock);
  return rc;
}

int akm_cache_set_latest(unsigned int id, unsigned int version)
{
  int rc = -1;
  if (id == 0)
    return -1;
  pthread_mutex_lock(&write_lock);
  if (is_open) {
    struct id_slot *s = id_probe(id_table, id);
    if (s && LOAD(&s->seq) != 0) {
      if (LOAD(&s->latest) != version)
        id_write(s, id, version);
      rc = 0;
    } else if (may_insert(id_count, id_table, id_grow) &&
               (s = id_probe(id_table, id)) != NULL) {
      id_write(s, id, version);
      id_count++;
      rc = 0;
    }
  }
  pthread_mutex_unlock(&write_lock);
  return rc;
}

/* ---- readers: no lock, no store to shared memory ----------------------- */

_Static_assert(KEY_WORDS == 4, "akm_cache_get reads 4 words");

unsigned int akm_cache_latest(unsigned int id)
{
  uintptr_t pub = __atomic_load_n(&id_pub, __ATOMIC_ACQUIRE);
  if (!pub || id == 0)
    return 0;
  const struct id_slot *slots = (const struct id_slot *)(pub & ~(uintptr_t)PUB_BITS);
  const unsigned int bits = pub & PUB_BITS;
  const size_t mask = ((size_t)1 << bits) - 1;
  for (size_t i = 0, h = hash_bits(id, bits); i <= mask; i++, h++) {
    const struct id_slot *s = &slots[h & mask];
    unsigned int seq = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
    if (seq == 0 || (seq & 1))
      return 0; /* the end of the chain, or a writer here: ask Go */
    if (LOAD(&s->id) != id)
      continue;
    unsigned int latest = LOAD(&s->latest);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return LOAD(&s->seq) == seq ? latest : 0;
  }
  return 0;
}

int akm_cache_get(unsigned int id, unsigned int version, unsigned char *dst,
                  unsigned int *length, unsigned int *code)
{
  uintptr_t pub = __atomic_load_n(&key_pub, __ATOMIC_ACQUIRE);
  if (!pub || id == 0)
    return 0;
  const struct key_slot *slots = (const struct key_slot *)(pub & ~(uintptr_t)PUB_BITS);
  const unsigned int bits = pub & PUB_BITS;
  const size_t mask = ((size_t)1 << bits) - 1;
  for (size_t i = 0, h = hash_bits(kv(id, version), bits); i <= mask; i++, h++) {
    const struct key_slot *s = &slots[h & mask];
    unsigned int seq = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
    if (seq == 0 || (seq & 1))
      return 0;
    if (LOAD(&s->id) != id || LOAD(&s->version) != version)
      continue;
    /* Copy, then check that no writer or wipe came in between; only
       then does the caller see any byte. The local copy is four words in
       registers (never in memory, nothing to wipe) for the usual 16 and
       32 bytes; other lengths go through a stack buffer that is wiped. */
    uint64_t w0, w1, w2, w3;
    unsigned int len = LOAD(&s->length);
    w0 = LOAD(&s->key[0]);
    w1 = LOAD(&s->key[1]);
    w2 = LOAD(&s->key[2]);
    w3 = LOAD(&s->key[3]);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    int hit = LOAD(&s->seq) == seq && len > 0 && len <= AKM_MAX_KEY_LENGTH;
    if (hit) {
      if (!dst || *length < len) {
        *code = AKM_BUFFER_TOO_SMALL;
      } else if (len == 16) {
        memcpy(dst, &w0, 8);
        memcpy(dst + 8, &w1, 8);
        *code = 0;
      } else if (len == 32) {
        memcpy(dst, &w0, 8);
        memcpy(dst + 8, &w1, 8);
        memcpy(dst + 16, &w2, 8);
        memcpy(dst + 24, &w3, 8);
        *code = 0;
      } else {
        uint64_t words[KEY_WORDS] = {w0, w1, w2, w3};
        memcpy(dst, words, len);
        explicit_bzero(words, sizeof words);
        *code = 0;
      }
      *length = len;
    }
    return hit;
  }
  return 0;
}

void akm_cache_fill(unsigned long long *keys, unsigned long long *key_slots,
                    unsigned long long *ids, unsigned long long *id_slots)
{
  pthread_mutex_lock(&write_lock);
  int open = is_open && key_table && id_table;
  *keys = open ? key_count : 0;
  *key_slots = open ? key_table->mask + 1 : 0;
  *ids = open ? id_count : 0;
  *id_slots = open ? id_table->mask + 1 : 0;
  pthread_mutex_unlock(&write_lock);
}

/* ---- for tests/keycache ------------------------------------------------ */

#ifdef AKM_KEYCACHE_TEST
int akm_cache_stats(int which, struct akm_cache_stats *out)
{
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&write_lock);
  if (!is_open) {
    pthread_mutex_unlock(&write_lock);
    return -1;
  }
  const struct table *t = which ? id_table : key_table;
  size_t slots = t->mask + 1, run = 0;
  out->slots = slots;
  for (size_t i = 0; i < 2 * slots; i++) { /* twice round: runs that wrap */
    size_t j = i & t->mask;
    unsigned int seq, id;
    uint64_t x;
    if (which) {
      const struct id_slot *s = (const struct id_slot *)t->slots + j;
      seq = LOAD(&s->seq), id = LOAD(&s->id), x = id;
    } else {
      const struct key_slot *s = (const struct key_slot *)t->slots + j;
      seq = LOAD(&s->seq), id = LOAD(&s->id), x = kv(id, LOAD(&s->version));
    }
    run = seq ? run + 1 : 0;
    if (run > out->run_max)
      out->run_max = run < slots ? run : slots;
    if (!seq || i >= slots)
      continue;
    size_t probes = ((j - home_slot(x, t)) & t->mask) + 1;
    out->entries++;
    out->probe_sum += probes;
    if (probes > out->probe_max)
      out->probe_max = probes;
  }
  pthread_mutex_unlock(&write_lock);
  return 0;
}
#endif
