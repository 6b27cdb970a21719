/* See akm_keycache.h. */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include "cabi.h"
#include "akm_keycache.h"

#define KEY_SLOTS 4096    /* key versions; power of two */
#define LATEST_SLOTS 1024 /* key ids; power of two */

struct key_slot {
  unsigned int ready; /* 0 empty, 1 published (release/acquire) */
  unsigned int id, version, length;
  unsigned char key[AKM_MAX_KEY_LENGTH];
};

struct latest_slot {
  unsigned int id;     /* 0 empty; published with release */
  unsigned int latest; /* updated with release */
};

struct cache {
  struct key_slot keys[KEY_SLOTS];
  struct latest_slot latest[LATEST_SLOTS];
};

static struct cache *cache; /* published with release after setup */
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;

static inline unsigned int hash_id(unsigned int id)
{
  return id * 0x9E3779B1u;
}
static inline unsigned int hash_kv(unsigned int id, unsigned int v)
{
  return (id * 0x9E3779B1u) ^ (v * 0x85EBCA77u) ^ ((id ^ v) >> 15);
}

int akm_cache_open(int *locked)
{
  int rc = 0;
  *locked = 0;
  pthread_mutex_lock(&write_lock);
  if (!cache) {
    void *p = mmap(NULL, sizeof(struct cache), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      rc = -1;
    } else {
      madvise(p, sizeof(struct cache), MADV_DONTDUMP);
      madvise(p, sizeof(struct cache), MADV_DONTFORK);
      __atomic_store_n(&cache, (struct cache *)p, __ATOMIC_RELEASE);
    }
  }
  if (cache)
    *locked = mlock(cache, sizeof(struct cache)) == 0;
  pthread_mutex_unlock(&write_lock);
  return rc;
}

void akm_cache_close(void)
{
  pthread_mutex_lock(&write_lock);
  /* The mapping stays (a late reader must not fault); its content goes.
     Unpublish every entry first, so a reader that starts now misses and
     asks Go (which has closed too), then wipe. The server calls deinit
     after its engines have stopped asking for keys. */
  if (cache) {
    for (unsigned int i = 0; i < LATEST_SLOTS; i++)
      __atomic_store_n(&cache->latest[i].latest, 0, __ATOMIC_RELEASE);
    for (unsigned int i = 0; i < KEY_SLOTS; i++)
      __atomic_store_n(&cache->keys[i].ready, 0, __ATOMIC_RELEASE);
    explicit_bzero(cache, sizeof(struct cache));
  }
  pthread_mutex_unlock(&write_lock);
}

int akm_cache_put(unsigned int id, unsigned int version, const unsigned char *key,
                  unsigned int length)
{
  int rc = -1;
  if (!cache || id == 0 || length == 0 || length > AKM_MAX_KEY_LENGTH)
    return -1;
  pthread_mutex_lock(&write_lock);
  for (unsigned int i = 0, h = hash_kv(id, version); i < KEY_SLOTS; i++, h++) {
    struct key_slot *s = &cache->keys[h & (KEY_SLOTS - 1)];
    if (s->ready) {
      if (s->id == id && s->version == version) {
        rc = 0; /* already there: entries never change */
        break;
      }
      continue;
    }
    s->id = id;
    s->version = version;
    s->length = length;
    memcpy(s->key, key, length);
    __atomic_store_n(&s->ready, 1, __ATOMIC_RELEASE);
    rc = 0;
    break;
  }
  pthread_mutex_unlock(&write_lock);
  return rc;
}

int akm_cache_set_latest(unsigned int id, unsigned int version)
{
  int rc = -1;
  if (!cache || id == 0)
    return -1;
  pthread_mutex_lock(&write_lock);
  for (unsigned int i = 0, h = hash_id(id); i < LATEST_SLOTS; i++, h++) {
    struct latest_slot *s = &cache->latest[h & (LATEST_SLOTS - 1)];
    if (s->id == id) {
      __atomic_store_n(&s->latest, version, __ATOMIC_RELEASE);
      rc = 0;
      break;
    }
    if (s->id == 0) {
      s->latest = version;
      __atomic_store_n(&s->id, id, __ATOMIC_RELEASE);
      rc = 0;
      break;
    }
  }
  pthread_mutex_unlock(&write_lock);
  return rc;
}

unsigned int akm_cache_latest(unsigned int id)
{
  struct cache *c = __atomic_load_n(&cache, __ATOMIC_ACQUIRE);
  if (!c || id == 0)
    return 0;
  for (unsigned int i = 0, h = hash_id(id); i < LATEST_SLOTS; i++, h++) {
    struct latest_slot *s = &c->latest[h & (LATEST_SLOTS - 1)];
    unsigned int sid = __atomic_load_n(&s->id, __ATOMIC_ACQUIRE);
    if (sid == id)
      return __atomic_load_n(&s->latest, __ATOMIC_ACQUIRE);
    if (sid == 0)
      return 0;
  }
  return 0;
}

int akm_cache_get(unsigned int id, unsigned int version, unsigned char *dst,
                  unsigned int *length, unsigned int *code)
{
  struct cache *c = __atomic_load_n(&cache, __ATOMIC_ACQUIRE);
  if (!c || id == 0)
    return 0;
  for (unsigned int i = 0, h = hash_kv(id, version); i < KEY_SLOTS; i++, h++) {
    struct key_slot *s = &c->keys[h & (KEY_SLOTS - 1)];
    if (!__atomic_load_n(&s->ready, __ATOMIC_ACQUIRE))
      return 0;
    if (s->id != id || s->version != version)
      continue;
    if (!dst || *length < s->length) {
      *length = s->length;
      *code = AKM_BUFFER_TOO_SMALL;
      return 1;
    }
    memcpy(dst, s->key, s->length);
    *length = s->length;
    *code = 0;
    return 1;
  }
  return 0;
}

unsigned long akm_cache_bytes(void) { return sizeof(struct cache); }
void *akm_cache_addr(void) { return __atomic_load_n(&cache, __ATOMIC_ACQUIRE); }
