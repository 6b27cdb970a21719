/*
  The C key table (cabi/akm_keycache.c) by itself, under ThreadSanitizer.

  Built with -fsanitize=thread -DAKM_KEYCACHE_TEST together with
  cabi/akm_keycache.c (make build/keycache-test); scripts/test.sh keycache
  runs it. Every key's bytes and length are derived from (id, version),
  so a torn or misplaced key is detected. A ThreadSanitizer report stops
  the program with exit code 66 (halt_on_error), before the summary line.

  usage: keycache-test [seconds per concurrent phase, default 2]
  Prints one line per check and "N passed, N failed"; exits 1 on failure.
*/
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cabi.h"
#include "akm_keycache.h"

/* Any data race ThreadSanitizer sees fails the run (TSAN_OPTIONS, when
   set, overrides this). */
const char *__tsan_default_options(void) { return "halt_on_error=1 exitcode=66"; }

#include "akm_check.h"

static double phase_seconds = 2;

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- keys derived from (id, version) ------------------------------------ */

static uint64_t mix(uint64_t x) /* splitmix64's finalizer */
{
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/* AES-128 or AES-256, and a few odd lengths (the plugin never has them,
   the table must still copy them whole). */
static unsigned int key_len(unsigned int id, unsigned int version)
{
  static const unsigned int lens[] = {16, 32, 16, 32, 16, 32, 24, 7};
  return lens[mix((uint64_t)id * 31 + version) & 7];
}

static void key_bytes(unsigned int id, unsigned int version, unsigned char *out)
{
  for (int w = 0; w < AKM_MAX_KEY_LENGTH / 8; w++) {
    uint64_t v = mix(((uint64_t)id << 32 | version) ^ ((uint64_t)w << 60)) | 1; /* no zero word */
    memcpy(out + 8 * w, &v, 8);
  }
}

static int put(unsigned int id, unsigned int version)
{
  unsigned char k[AKM_MAX_KEY_LENGTH];
  key_bytes(id, version, k);
  return akm_cache_put(id, version, k, key_len(id, version));
}

enum answer { MISS, EXACT, WRONG };

/* Looks (id, version) up as get_key does; a hit must be the whole key. */
static enum answer get(unsigned int id, unsigned int version)
{
  unsigned char buf[AKM_MAX_KEY_LENGTH + 8], want[AKM_MAX_KEY_LENGTH];
  unsigned int len = AKM_MAX_KEY_LENGTH, code = 12345;
  memset(buf, 0xEE, sizeof buf);
  if (!akm_cache_get(id, version, buf, &len, &code))
    return len == AKM_MAX_KEY_LENGTH && code == 12345 && buf[0] == 0xEE ? MISS : WRONG;
  key_bytes(id, version, want);
  if (code != 0 || len != key_len(id, version) || memcmp(buf, want, len) != 0 ||
      buf[len] != 0xEE)
    return WRONG;
  return EXACT;
}

/* ---- building blocks ------------------------------------------------------ */

static int open_cache(void)
{
  int locked;
  return akm_cache_open(&locked);
}

/* Puts versions 1..nver of each id, then sets its latest to nver. */
static int put_all(const unsigned int *ids, int n, unsigned int nver)
{
  int bad = 0;
  for (int i = 0; i < n; i++) {
    for (unsigned int v = 1; v <= nver; v++)
      bad += put(ids[i], v) != 0;
    bad += akm_cache_set_latest(ids[i], nver) != 0;
  }
  return bad;
}

/* Counts the (id, version) of ids x 1..nver that are not served exactly,
   and the ids whose latest is not nver. */
static int missing(const unsigned int *ids, int n, unsigned int nver)
{
  int bad = 0;
  for (int i = 0; i < n; i++) {
    for (unsigned int v = 1; v <= nver; v++)
      bad += get(ids[i], v) != EXACT;
    bad += akm_cache_latest(ids[i]) != nver;
  }
  return bad;
}

/* Probe-length bounds: with Fibonacci hashing and at most half the slots
   in use, a lookup reads a few slots; with the low bits of the id as the
   hash, ids equal modulo the table size pile up in one chain. */
#define PROBE_MAX 48
#define PROBE_MEAN 3.0
#define RUN_MAX 128

static void check_shape(const char *what, int which, unsigned long want_entries)
{
  struct akm_cache_stats st;
  int rc = akm_cache_stats(which, &st);
  double mean = st.entries ? (double)st.probe_sum / (double)st.entries : 0;
  CHECK(rc == 0 && st.entries == want_entries && st.entries * 2 <= st.slots &&
            st.probe_max <= PROBE_MAX && mean <= PROBE_MEAN && st.run_max <= RUN_MAX,
        "%s: %s table %lu entries in %lu slots; probes per hit max %lu (<= %d), mean %.2f "
        "(<= %.1f); longest occupied run %lu (<= %d)",
        what, which ? "latest" : "key-version", st.entries, st.slots, st.probe_max, PROBE_MAX,
        mean, PROBE_MEAN, st.run_max, RUN_MAX);
}

/* ---- single-threaded checks --------------------------------------------- */

static void basics(void)
{
  unsigned char k[AKM_MAX_KEY_LENGTH], buf[AKM_MAX_KEY_LENGTH];
  unsigned int len, code;
  CHECK(open_cache() == 0, "akm_cache_open");
  CHECK(get(1, 1) == MISS && akm_cache_latest(1) == 0, "an empty table misses");
  CHECK(put(1, 1) == 0 && akm_cache_set_latest(1, 1) == 0, "put (1,1), set its latest");
  CHECK(get(1, 1) == EXACT && akm_cache_latest(1) == 1, "(1,1) is served whole; latest 1");
  CHECK(get(1, 2) == MISS && get(2, 1) == MISS, "absent (1,2) and (2,1) miss");
  len = 0;
  CHECK(akm_cache_get(1, 1, NULL, &len, &code) == 1 && code == AKM_BUFFER_TOO_SMALL &&
            len == key_len(1, 1),
        "dst NULL asks the length: BUFFER_TOO_SMALL, %u", len);
  len = key_len(1, 1) - 1;
  memset(buf, 0xEE, sizeof buf);
  CHECK(akm_cache_get(1, 1, buf, &len, &code) == 1 && code == AKM_BUFFER_TOO_SMALL &&
            len == key_len(1, 1) && buf[0] == 0xEE,
        "a short buffer: BUFFER_TOO_SMALL, the length, nothing written");
  key_bytes(1, 1, k);
  k[0] ^= 0xFF;
  CHECK(akm_cache_put(1, 1, k, key_len(1, 1)) == 0 && get(1, 1) == EXACT,
        "a second put of (1,1) changes nothing (a version's key never changes)");
  CHECK(akm_cache_put(0, 1, k, 16) == -1 && akm_cache_put(3, 1, k, 0) == -1 &&
            akm_cache_put(3, 1, k, AKM_MAX_KEY_LENGTH + 1) == -1 &&
            akm_cache_put(3, 1, NULL, 16) == -1 && akm_cache_set_latest(0, 1) == -1,
        "id 0, length 0, length > %d and a NULL key are refused", AKM_MAX_KEY_LENGTH);
  CHECK(get(0, 1) == MISS && akm_cache_latest(0) == 0, "id 0 misses");
  CHECK(put(1, 2) == 0 && akm_cache_set_latest(1, 2) == 0 && akm_cache_latest(1) == 2 &&
            get(1, 1) == EXACT && get(1, 2) == EXACT,
        "a new version becomes the latest; both versions served");
  CHECK(open_cache() == 0 && get(1, 2) == EXACT, "a second open keeps an open cache as it is");
  akm_cache_close();
}

static void collisions(void)
{
  static unsigned int ids[4000];
  const struct {
    const char *what;
    unsigned int step, first, n, nver;
  } cases[] = {
    {"2000 ids equal modulo 1024 (k*1024+7)", 1024, 7, 2000, 1},
    {"2000 ids equal modulo 4096 (k*4096)", 4096, 4096, 2000, 1},
    {"4000 ids equal modulo 65536 (k*65536+1)", 65536, 1, 4000, 2},
    {"one id (42), 20000 versions", 0, 42, 1, 20000},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    for (unsigned int i = 0; i < cases[c].n; i++)
      ids[i] = cases[c].first + i * cases[c].step;
    CHECK(open_cache() == 0, "%s: open", cases[c].what);
    int bad = put_all(ids, (int)cases[c].n, cases[c].nver);
    CHECK(bad == 0, "%s: every put accepted (%d refused)", cases[c].what, bad);
    bad = missing(ids, (int)cases[c].n, cases[c].nver);
    CHECK(bad == 0, "%s: every key served whole, every latest right (%d not)", cases[c].what, bad);
    check_shape(cases[c].what, 0, (unsigned long)cases[c].n * cases[c].nver);
    check_shape(cases[c].what, 1, cases[c].n);
    akm_cache_close();
  }
}

/* ---- concurrent checks ---------------------------------------------------- */

struct reader {
  pthread_t t;
  unsigned long seed;
  unsigned long hits, misses, wrong, latest_hits, latest_wrong;
};

static uint64_t rnd(unsigned long *s)
{
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return *s >> 33;
}

/* read_one looks up a random version of id (of nver) and id's latest,
   and counts what came back: the exact key, a miss, or anything else. */
static void read_one(struct reader *r, unsigned int id, unsigned int nver)
{
  switch (get(id, 1 + (unsigned int)(rnd(&r->seed) % nver))) {
  case EXACT: r->hits++; break;
  case MISS: r->misses++; break;
  default: r->wrong++;
  }
  unsigned int l = akm_cache_latest(id);
  if (l == nver)
    r->latest_hits++;
  else if (l != 0)
    r->latest_wrong++;
}

/* Growth: a writer puts 10,000 ids x 5 versions while readers read what
   it has published so far. */
#define GROW_IDS 10000
#define GROW_VERS 5
#define READER_OPS 20000000ul /* upper bound per reader, with the time bound */
static unsigned int grow_ids[GROW_IDS];
static unsigned int grow_done; /* ids fully published (atomic) */
static int stop;               /* readers stop (atomic) */

static void *grow_reader(void *arg)
{
  struct reader *r = arg;
  for (unsigned long n = 0; n < READER_OPS && !__atomic_load_n(&stop, __ATOMIC_ACQUIRE); n++) {
    unsigned int done = __atomic_load_n(&grow_done, __ATOMIC_ACQUIRE);
    if (!done)
      continue;
    unsigned int id = grow_ids[rnd(&r->seed) % done];
    read_one(r, id, GROW_VERS); /* a miss during a growth is safe: Go serves */
  }
  return NULL;
}

static double ns_per_lookup(const unsigned int *ids, int n, unsigned int nver, long lookups)
{
  double best = 1e9;
  unsigned long s = 7, bad = 0;
  for (int rep = 0; rep < 3; rep++) {
    double t0 = now_s();
    for (long i = 0; i < lookups; i++)
      bad += get(ids[rnd(&s) % (unsigned)n], 1 + (unsigned int)(rnd(&s) % nver)) != EXACT;
    double t = (now_s() - t0) / (double)lookups * 1e9;
    if (t < best)
      best = t;
  }
  return bad ? -1 : best;
}

static void growth(void)
{
  struct reader r[3];
  for (int i = 0; i < GROW_IDS; i++)
    grow_ids[i] = (unsigned int)i * 1024 + 1; /* equal modulo 1024, too */
  CHECK(open_cache() == 0, "growth: open");
  /* The lookup cost with 8 keys, for comparison at 50,000. */
  put_all(grow_ids, 8, GROW_VERS);
  double small = ns_per_lookup(grow_ids, 8, GROW_VERS, 200000);
  struct akm_cache_stats st0;
  akm_cache_stats(0, &st0);

  __atomic_store_n(&grow_done, 8, __ATOMIC_RELEASE);
  __atomic_store_n(&stop, 0, __ATOMIC_RELEASE);
  for (int i = 0; i < 3; i++) {
    r[i] = (struct reader){.seed = 1000 + (unsigned long)i};
    pthread_create(&r[i].t, NULL, grow_reader, &r[i]);
  }
  int bad = 0;
  double t0 = now_s();
  for (int i = 8; i < GROW_IDS; i++) {
    for (unsigned int v = 1; v <= GROW_VERS; v++) {
      bad += put(grow_ids[i], v) != 0;
      bad += akm_cache_set_latest(grow_ids[i], v) != 0; /* the latest moves up */
    }
    __atomic_store_n(&grow_done, (unsigned int)i + 1, __ATOMIC_RELEASE);
  }
  double put_s = now_s() - t0;
  /* Let the readers go on over the full table for a while. */
  while (now_s() - t0 < phase_seconds / 2)
    nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
  __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
  unsigned long hits = 0, misses = 0, wrong = 0, lhits = 0, lwrong = 0;
  for (int i = 0; i < 3; i++) {
    pthread_join(r[i].t, NULL);
    hits += r[i].hits, misses += r[i].misses, wrong += r[i].wrong;
    lhits += r[i].latest_hits, lwrong += r[i].latest_wrong;
  }
  CHECK(bad == 0, "growth: %d ids x %d versions put in %.2f s, every put accepted (%d refused)",
        GROW_IDS, GROW_VERS, put_s, bad);
  struct akm_cache_stats st;
  akm_cache_stats(0, &st);
  CHECK(st.slots > st0.slots, "growth: the key-version table grew from %lu to %lu slots", st0.slots,
        st.slots);
  CHECK(wrong == 0 && lwrong == 0 && hits > 0,
        "growth: 3 readers during the puts: %lu keys served whole, %lu misses, %lu wrong; "
        "latest %lu right, %lu wrong", hits, misses, wrong, lhits, lwrong);
  bad = missing(grow_ids, GROW_IDS, GROW_VERS);
  CHECK(bad == 0, "growth: afterwards all %d keys and %d latest versions are served (%d not)",
        GROW_IDS * GROW_VERS, GROW_IDS, bad);
  check_shape("growth: 10,000 ids x 5 versions", 0, GROW_IDS * GROW_VERS);
  check_shape("growth: 10,000 ids x 5 versions", 1, GROW_IDS);
  double big = ns_per_lookup(grow_ids, GROW_IDS, GROW_VERS, 200000);
  CHECK(small > 0 && big > 0 && big < 10 * small,
        "growth: a lookup takes %.0f ns among 50,000 keys, %.0f ns among 40 (under this "
        "sanitizer build): O(1), under 10x", big, small);
  unsigned long s = 3, absent = 0;
  double t1 = now_s();
  for (int i = 0; i < 200000; i++)
    absent += get(grow_ids[rnd(&s) % GROW_IDS], GROW_VERS + 1 + (unsigned int)(rnd(&s) % 100)) == MISS;
  double miss_ns = (now_s() - t1) / 200000 * 1e9;
  CHECK(absent == 200000 && miss_ns < 10 * small,
        "growth: a miss (absent version) takes %.0f ns among 50,000 keys: no scan of the table",
        miss_ns);
  akm_cache_close();
}

/* Close during reads: a thread opens, fills and closes the cache again and
   again while readers look keys up. Every answer must be a miss or the
   whole key. */
#define CLOSE_IDS 500
#define CLOSE_VERS 4
#define CLOSE_CYCLES 400
static unsigned int close_ids[CLOSE_IDS];

static void *close_reader(void *arg)
{
  struct reader *r = arg;
  for (unsigned long n = 0; n < READER_OPS && !__atomic_load_n(&stop, __ATOMIC_ACQUIRE); n++) {
    unsigned int id = close_ids[rnd(&r->seed) % CLOSE_IDS];
    read_one(r, id, CLOSE_VERS);
  }
  return NULL;
}

static void close_during_reads(void)
{
  struct reader r[3];
  for (int i = 0; i < CLOSE_IDS; i++)
    close_ids[i] = (unsigned int)i * 4096 + 3;
  __atomic_store_n(&stop, 0, __ATOMIC_RELEASE);
  for (int i = 0; i < 3; i++) {
    r[i] = (struct reader){.seed = 77 + (unsigned long)i};
    pthread_create(&r[i].t, NULL, close_reader, &r[i]);
  }
  int cycles = 0, bad = 0, late = 0;
  double t0 = now_s();
  for (; cycles < CLOSE_CYCLES && now_s() - t0 < phase_seconds; cycles++) {
    bad += open_cache() != 0;
    bad += put_all(close_ids, CLOSE_IDS, CLOSE_VERS);
    akm_cache_close();
    late += put(close_ids[0], 1) == 0; /* a late put after close */
  }
  __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
  unsigned long hits = 0, misses = 0, wrong = 0, lhits = 0, lwrong = 0;
  for (int i = 0; i < 3; i++) {
    pthread_join(r[i].t, NULL);
    hits += r[i].hits, misses += r[i].misses, wrong += r[i].wrong;
    lhits += r[i].latest_hits, lwrong += r[i].latest_wrong;
  }
  CHECK(bad == 0 && late == 0, "close during reads: %d open/fill/close cycles in %.1f s, %d "
        "failures, %d late puts accepted", cycles, now_s() - t0, bad, late);
  CHECK(wrong == 0 && lwrong == 0,
        "close during reads: 3 readers: every answer a miss or the whole key (%lu whole, "
        "%lu misses, %lu wrong; latest %lu right, %lu wrong)", hits, misses, wrong, lhits, lwrong);
  CHECK(hits > 0 && misses > 0, "close during reads: the readers met both open and closed tables");
}

static void closed_state(void)
{
  unsigned int ids[] = {5, 6};
  struct akm_cache_stats st;
  CHECK(open_cache() == 0 && put_all(ids, 2, 2) == 0 && missing(ids, 2, 2) == 0,
        "closed state: open, put (5,1..2) and (6,1..2)");
  akm_cache_close();
  CHECK(get(5, 1) == MISS && get(6, 2) == MISS && akm_cache_latest(5) == 0,
        "closed state: after close every key and latest version misses");
  CHECK(put(7, 1) == -1 && akm_cache_set_latest(7, 1) == -1 && put(5, 1) == -1,
        "closed state: put and set_latest are refused after close");
  CHECK(get(7, 1) == MISS && get(5, 1) == MISS && akm_cache_stats(0, &st) == -1,
        "closed state: a refused put publishes nothing");
  akm_cache_close();
  CHECK(put(7, 1) == -1, "closed state: a second close is harmless; puts still refused");
  CHECK(open_cache() == 0 && get(5, 1) == MISS && akm_cache_latest(5) == 0,
        "reopen: the new cache starts empty");
  CHECK(put(7, 1) == 0 && akm_cache_set_latest(7, 1) == 0 && get(7, 1) == EXACT &&
            akm_cache_latest(7) == 1,
        "reopen: put and set_latest work again");
  akm_cache_close();
}

int main(int argc, char **argv)
{
  if (argc > 1)
    phase_seconds = atof(argv[1]);
  if (!(phase_seconds > 0 && phase_seconds <= 60)) {
    fprintf(stderr, "usage: %s [seconds per concurrent phase, 0-60]\n", argv[0]);
    return 2;
  }
  basics();
  collisions();
  closed_state();
  growth();
  close_during_reads();
  return CHECK_SUMMARY();
}
