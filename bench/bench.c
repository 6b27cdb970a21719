/*
  Benchmark harness for aws_key_management.so (make bench; see bench/run.sh).

  It loads the library the way mariadbd does (dlopen, the my_print_error
  service handshake, sysvars found by name in the plugin declaration) and
  calls it only through the plugin's st_mariadb_encryption struct, exactly
  as the server does. Results are printed as lines
      RESULT <name> <value>
  one per measured run; bench/run.sh turns them into median/min/max.
  Everything else goes to stderr (progress, and the plugin's log lines
  prefixed "plugin-log:"). Loading is shared with tests/abi/host.c
  (tests/include/akm_host.h).

  usage:
    bench cached      <mock .so>    <empty dir>
        cached calls: 8 keys, get_latest_key_version and get_key, 1 and 2
        threads (env BENCH_CALLS per thread and run, default 5000000;
        BENCH_WARMUP, default 500000; BENCH_RUNS, default 7)
    bench kms-create  <release .so> <empty dir> <n>
        init, create keys 1..n (get_latest_key_version), deinit
    bench kms-startup <release .so> <dir> <n>
        one timed start: init, then get_latest_key_version + get_key for
        1..n; time from the start of init to the last key served
    bench keys        <mock .so>    <empty dir> <ids> <versions>
        many keys: ids x versions key files (copies of one), a timed init
        that unwraps them all, RSS before and after, then cached calls
        cycling over every id (BENCH_CALLS per run, BENCH_RUNS runs)
    bench kms-rotate  <release .so> <dir> <n>
        init, then SET GLOBAL rotate_key=-1 timed; every key 1..n must
        then be at version 2
    bench kms-single  <release .so> <dir with aws-kms-key.1.1> <empty dir> <runs>
        one Decrypt round trip through the plugin, <runs> times: init with
        no key files, then copy the wrapped key in under a new id and time
        the first get_latest_key_version + get_key of that id
  The kms-* modes read BENCH_ENDPOINT, BENCH_MASTER_KEY_ID, BENCH_REGION and
  BENCH_TIMEOUT_MS (request_timeout) and set the sysvars of the same names;
  credentials come from the environment (the AWS SDK's chain).
*/
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "akm_host.h"

static void die(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "bench: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(1);
}

static double now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static long env_long(const char *name, long def)
{
  const char *s = getenv(name);
  if (!s || !*s)
    return def;
  char *end;
  long v = strtol(s, &end, 10);
  if (*end || v <= 0)
    die("%s=%s: want a positive integer", name, s);
  return v;
}

static const char *env_str(const char *name)
{
  const char *s = getenv(name);
  if (!s || !*s)
    die("%s is not set", name);
  return s;
}

/* ---- the my_print_error service: the plugin's log goes to stderr ------ */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void akm_host_message(unsigned long flags, const char *fmt, va_list ap)
{
  (void)flags;
  pthread_mutex_lock(&log_lock);
  fprintf(stderr, "plugin-log: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  pthread_mutex_unlock(&log_lock);
}

/* ---- loading, as the server does -------------------------------------- */

static void load(const char *so)
{
  struct akm_host_lib lib;
  if (akm_host_dlopen(so, &lib) != 0)
    die("dlopen: %s", dlerror());
  const char *why = akm_host_check(&lib);
  if (why)
    die("%s: %s", so, why);
  akm_host_attach(&lib);
  static const char *used[] = {"master_key_id", "keyfile_dir", "endpoint_url", "region",
                               "request_timeout"};
  for (size_t i = 0; i < sizeof used / sizeof *used; i++)
    if (!sysvar(used[i]))
      die("the library has no sysvar %s", used[i]);
}

static void init_or_die(void)
{
  if (plugin->init(NULL) != 0)
    die("plugin init failed (see the plugin-log lines above)");
}

static void deinit(void)
{
  if (plugin->deinit(NULL) != 0)
    die("plugin deinit failed");
}

/* ---- cached calls --------------------------------------------------- */

#define NKEYS 8 /* key ids 1..8, rotated through as the server does */
static unsigned int key_ids[NKEYS] = {1, 2, 3, 4, 5, 6, 7, 8};
static unsigned int key_vers[NKEYS];

enum fn { FN_NOOP, FN_LATEST, FN_GETKEY };
static const char *fn_name[] = {"noop", "latest", "getkey"};

/* The harness's own cost: the same loop through a function pointer to a C
   function that does nothing useful. */
__attribute__((noinline)) static unsigned int noop_latest(unsigned int id) { return id; }
static unsigned int (*volatile noop_fp)(unsigned int) = noop_latest;

static volatile unsigned long sink;

/* Runs n calls and returns the number of unexpected results. */
static unsigned long run_calls(enum fn f, long n)
{
  unsigned long bad = 0;
  unsigned char buf[32];
  switch (f) {
  case FN_NOOP: {
    unsigned int (*fp)(unsigned int) = noop_fp;
    for (long i = 0; i < n; i++)
      bad += fp(key_ids[i & (NKEYS - 1)]) == ENCRYPTION_KEY_VERSION_INVALID;
    break;
  }
  case FN_LATEST:
    for (long i = 0; i < n; i++)
      bad += enc->get_latest_key_version(key_ids[i & (NKEYS - 1)]) != key_vers[i & (NKEYS - 1)];
    break;
  case FN_GETKEY:
    for (long i = 0; i < n; i++) {
      unsigned int len = sizeof buf;
      int j = i & (NKEYS - 1);
      bad += enc->get_key(key_ids[j], key_vers[j], buf, &len) != 0 || len != 16;
    }
    sink += buf[0];
    break;
  }
  return bad;
}

struct worker {
  pthread_t t;
  enum fn f;
  long calls, warmup;
  pthread_barrier_t *start;
  double ns; /* elapsed in the measured part */
  double t0, t1;
  unsigned long bad;
};

static void *worker_main(void *arg)
{
  struct worker *w = arg;
  w->bad = run_calls(w->f, w->warmup); /* also the first call on this thread */
  pthread_barrier_wait(w->start);
  w->t0 = now_ns();
  w->bad += run_calls(w->f, w->calls);
  w->t1 = now_ns();
  w->ns = w->t1 - w->t0;
  return NULL;
}

/* One measured run with nthreads threads started together: prints the
   mean per-call ns over the threads, and the throughput of all threads. */
static void measure(enum fn f, int nthreads, long calls, long warmup, int run)
{
  struct worker w[2];
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, nthreads);
  for (int i = 0; i < nthreads; i++) {
    w[i] = (struct worker){.f = f, .calls = calls, .warmup = warmup, .start = &start};
    if (pthread_create(&w[i].t, NULL, worker_main, &w[i]) != 0)
      die("pthread_create failed");
  }
  double sum = 0, first = 0, last = 0;
  unsigned long bad = 0;
  for (int i = 0; i < nthreads; i++) {
    pthread_join(w[i].t, NULL);
    sum += w[i].ns;
    bad += w[i].bad;
    if (i == 0 || w[i].t0 < first)
      first = w[i].t0;
    if (w[i].t1 > last)
      last = w[i].t1;
  }
  pthread_barrier_destroy(&start);
  if (bad)
    die("%s, %d threads: %lu calls did not return the loaded key", fn_name[f], nthreads, bad);
  double per_call = sum / nthreads / (double)calls;
  double mcalls_s = (double)calls * nthreads / (last - first) * 1e3;
  printf("RESULT cached.%s.t%d %.2f\n", fn_name[f], nthreads, per_call);
  printf("RESULT cached.%s.t%d.mcps %.2f\n", fn_name[f], nthreads, mcalls_s);
  fflush(stdout);
  fprintf(stderr, "  %-7s %d thread%s run %d: %7.2f ns per call, %6.2f M calls/s in all\n",
          fn_name[f], nthreads, nthreads > 1 ? "s" : " ", run, per_call, mcalls_s);
}

static int cmd_cached(const char *so, const char *dir)
{
  long calls = env_long("BENCH_CALLS", 5000000);
  long warmup = env_long("BENCH_WARMUP", 500000);
  int runs = (int)env_long("BENCH_RUNS", 7);
  load(so);
  if (!sysvar("mock"))
    die("%s is not a mock build (no sysvar mock)", so);
  set_bool("mock", 1);
  set_str("master_key_id", "bench-cmk");
  set_str("keyfile_dir", dir);
  init_or_die();
  for (int j = 0; j < NKEYS; j++) {
    key_vers[j] = enc->get_latest_key_version(key_ids[j]);
    unsigned char buf[32];
    unsigned int len = sizeof buf;
    if (key_vers[j] != 1 || enc->get_key(key_ids[j], 1, buf, &len) != 0 || len != 16)
      die("could not create key %u", key_ids[j]);
  }
  fprintf(stderr, "cached calls: %d keys, %ld calls per thread and run after %ld warm-up calls, %d runs\n",
          NKEYS, calls, warmup, runs);
  static const enum fn fns[] = {FN_NOOP, FN_LATEST, FN_GETKEY};
  for (size_t k = 0; k < sizeof fns / sizeof *fns; k++)
    for (int threads = 1; threads <= 2; threads++)
      for (int r = 1; r <= runs; r++)
        measure(fns[k], threads, calls, warmup, r);
  deinit();
  return 0;
}

/* ---- against the KMS --------------------------------------------------- */

static void kms_settings(const char *so, const char *dir)
{
  load(so);
  set_str("endpoint_url", env_str("BENCH_ENDPOINT"));
  set_str("master_key_id", env_str("BENCH_MASTER_KEY_ID"));
  set_str("region", env_str("BENCH_REGION"));
  set_int("request_timeout", (int)env_long("BENCH_TIMEOUT_MS", 10000));
  set_str("keyfile_dir", dir);
}

static int cmd_kms_create(const char *so, const char *dir, int n)
{
  kms_settings(so, dir);
  init_or_die();
  double t0 = now_ns();
  for (int id = 1; id <= n; id++) {
    unsigned int v = enc->get_latest_key_version((unsigned int)id);
    if (v == ENCRYPTION_KEY_VERSION_INVALID)
      die("could not create key %d", id);
  }
  fprintf(stderr, "created %d keys in %.0f ms\n", n, (now_ns() - t0) / 1e6);
  deinit();
  return 0;
}

/* get_latest_key_version + get_key of one id; 0 when the key is served. */
static int serve(unsigned int id, unsigned int want_ver)
{
  unsigned char buf[32];
  unsigned int len = sizeof buf;
  unsigned int v = enc->get_latest_key_version(id);
  if (v == ENCRYPTION_KEY_VERSION_INVALID || (want_ver && v != want_ver))
    return 1;
  return enc->get_key(id, v, buf, &len) != 0 || len != 16;
}

static int cmd_kms_startup(const char *so, const char *dir, int n)
{
  kms_settings(so, dir);
  double t0 = now_ns();
  init_or_die();
  double t1 = now_ns();
  int failed = 0;
  for (int id = 1; id <= n; id++)
    failed += serve((unsigned int)id, 1);
  double t2 = now_ns();
  if (failed)
    die("%d of %d keys were not served", failed, n);
  printf("RESULT startup.init_ms %.1f\n", (t1 - t0) / 1e6);
  printf("RESULT startup.ready_ms %.1f\n", (t2 - t0) / 1e6);
  /* Wall-clock time of readiness, for a fleet of these started together. */
  struct timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  printf("RESULT startup.ready_epoch_ms %.1f\n", wall.tv_sec * 1e3 + wall.tv_nsec / 1e6);
  fflush(stdout);
  fprintf(stderr, "start: init %.1f ms, all %d keys served %.1f ms after the start of init\n",
          (t1 - t0) / 1e6, n, (t2 - t0) / 1e6);
  deinit();
  return 0;
}

/* rotate_key=-1 of a directory with keys 1..n at version 1: init (which
   unwraps them), then the SET GLOBAL is timed, then every key must be at
   version 2 and served. */
static int cmd_kms_rotate(const char *so, const char *dir, int n)
{
  kms_settings(so, dir);
  init_or_die();
  for (int id = 1; id <= n; id++)
    if (serve((unsigned int)id, 1))
      die("key %d was not served at version 1 before the rotation", id);
  double t0 = now_ns();
  set_global_int("rotate_key", -1);
  double t1 = now_ns();
  int failed = 0;
  for (int id = 1; id <= n; id++)
    failed += serve((unsigned int)id, 2);
  if (failed)
    die("%d of %d keys are not at version 2 after rotate_key=-1", failed, n);
  printf("RESULT rotate.all_ms %.1f\n", (t1 - t0) / 1e6);
  fflush(stdout);
  fprintf(stderr, "rotate_key=-1 of %d keys: %.1f ms\n", n, (t1 - t0) / 1e6);
  deinit();
  return 0;
}

static void copy_file(const char *from, const char *to)
{
  char buf[8192];
  int in = open(from, O_RDONLY);
  if (in < 0)
    die("open %s: %s", from, strerror(errno));
  ssize_t n = read(in, buf, sizeof buf);
  close(in);
  if (n <= 0 || n == (ssize_t)sizeof buf)
    die("read %s: unexpected size", from);
  int out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0400);
  if (out < 0 || write(out, buf, (size_t)n) != n || close(out) != 0)
    die("write %s: %s", to, strerror(errno));
}

/* Anonymous resident memory of this process in kB (RssAnon: the Go heap,
   the key slots, the C table), -1 if unknown. Not VmRSS: init ends by
   dropping the library's clean file pages (internal/memtrim), which are
   not per-key state. */
static long rss_kb(void)
{
  char line[256];
  long kb = -1;
  FILE *f = fopen("/proc/self/status", "r");
  if (!f)
    return -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "RssAnon: %ld kB", &kb) == 1)
      break;
  fclose(f);
  return kb;
}

/* Many keys (mock build): key 1 is created through the plugin, then its
   file is copied to ids 1..ids, versions 1..versions; a second plugin
   lifetime is started on that directory (init unwraps every version) and
   timed, with the process's anonymous RSS before and after, then cached
   get_latest_key_version and get_key calls cycling over every id. */
static int cmd_keys(const char *so, const char *dir, int ids, int versions)
{
  long calls = env_long("BENCH_CALLS", 5000000);
  int runs = (int)env_long("BENCH_RUNS", 7);
  char from[4096], to[4096];
  load(so);
  set_bool("mock", 1);
  set_str("master_key_id", "bench-cmk");
  set_str("keyfile_dir", dir);
  init_or_die();
  if (enc->get_latest_key_version(1) != 1)
    die("could not create key 1");
  deinit();
  snprintf(from, sizeof from, "%s/aws-kms-key.1.1", dir);
  for (int id = 1; id <= ids; id++)
    for (int v = 1; v <= versions; v++) {
      if (id == 1 && v == 1)
        continue;
      snprintf(to, sizeof to, "%s/aws-kms-key.%d.%d", dir, id, v);
      copy_file(from, to);
    }
  long rss0 = rss_kb();
  double t0 = now_ns();
  init_or_die();
  double t1 = now_ns();
  long rss1 = rss_kb();
  for (int id = 1; id <= ids; id++)
    if (enc->get_latest_key_version((unsigned int)id) != (unsigned int)versions)
      die("key %d is not at version %d after init", id, versions);
  printf("RESULT keys.%dx%d.init_ms %.1f\n", ids, versions, (t1 - t0) / 1e6);
  printf("RESULT keys.%dx%d.rss_before_kb %ld\n", ids, versions, rss0);
  printf("RESULT keys.%dx%d.rss_after_kb %ld\n", ids, versions, rss1);
  for (int r = 0; r < runs; r++) {
    unsigned int id = 1;
    double a = now_ns();
    for (long i = 0; i < calls; i++) {
      sink += enc->get_latest_key_version(id);
      id = id == (unsigned int)ids ? 1 : id + 1;
    }
    double b = now_ns();
    unsigned char buf[32];
    for (long i = 0; i < calls; i++) {
      unsigned int len = sizeof buf;
      sink += enc->get_key(id, (unsigned int)versions, buf, &len);
      id = id == (unsigned int)ids ? 1 : id + 1;
    }
    double c = now_ns();
    printf("RESULT keys.%dx%d.latest_ns %.2f\n", ids, versions, (b - a) / calls);
    printf("RESULT keys.%dx%d.getkey_ns %.2f\n", ids, versions, (c - b) / calls);
  }
  fprintf(stderr, "%d ids x %d versions: init %.0f ms, RSS %ld -> %ld kB\n", ids, versions,
          (t1 - t0) / 1e6, rss0, rss1);
  deinit();
  return 0;
}

static int cmd_kms_single(const char *so, const char *src, const char *dir, int runs)
{
  char from[4096], to[4096];
  snprintf(from, sizeof from, "%s/aws-kms-key.1.1", src);
  kms_settings(so, dir);
  init_or_die(); /* no key files: nothing to unwrap at init */
  /* Id 1000 is a warm-up (first connection); 1001.. are measured. */
  for (int r = 0; r <= runs; r++) {
    unsigned int id = 1000 + (unsigned int)r;
    snprintf(to, sizeof to, "%s/aws-kms-key.%u.1", dir, id);
    copy_file(from, to);
    double t0 = now_ns();
    if (serve(id, 1))
      die("key %u (a copy of key 1) was not served", id);
    double ms = (now_ns() - t0) / 1e6;
    if (r > 0) {
      printf("RESULT single.decrypt_ms %.1f\n", ms);
      fflush(stdout);
    }
    fprintf(stderr, "one unwrap%s: %.1f ms\n", r ? "" : " (warm-up, not counted)", ms);
  }
  deinit();
  return 0;
}

int main(int argc, char **argv)
{
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 4 && strcmp(argv[1], "cached") == 0)
    return cmd_cached(argv[2], argv[3]);
  if (argc == 5 && strcmp(argv[1], "kms-create") == 0)
    return cmd_kms_create(argv[2], argv[3], atoi(argv[4]));
  if (argc == 5 && strcmp(argv[1], "kms-startup") == 0)
    return cmd_kms_startup(argv[2], argv[3], atoi(argv[4]));
  if (argc == 6 && strcmp(argv[1], "keys") == 0)
    return cmd_keys(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
  if (argc == 5 && strcmp(argv[1], "kms-rotate") == 0)
    return cmd_kms_rotate(argv[2], argv[3], atoi(argv[4]));
  if (argc == 6 && strcmp(argv[1], "kms-single") == 0)
    return cmd_kms_single(argv[2], argv[3], argv[4], atoi(argv[5]));
  fprintf(stderr,
          "usage: %s cached <mock .so> <empty dir>\n"
          "       %s kms-create <release .so> <empty dir> <n>\n"
          "       %s kms-startup <release .so> <dir> <n>\n"
          "       %s keys <mock .so> <empty dir> <ids> <versions>\n"
          "       %s kms-rotate <release .so> <dir> <n>\n"
          "       %s kms-single <release .so> <dir with aws-kms-key.1.1> <empty dir> <runs>\n",
          argv[0], argv[0], argv[0], argv[0], argv[0], argv[0]);
  return 2;
}
