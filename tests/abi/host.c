/*
  ABI test host: loads aws_key_management.so the way mariadbd does and
  calls it only through what the server sees (exported data symbols, the
  service pointer, the plugin declaration, its sysvars and the
  st_mariadb_encryption table).

  usage: host <path/to/aws_key_management.so> <empty scratch dir>
  The library must be a mock build (it sets aws_key_management_mock=ON).
  Prints one line per check and "N passed, N failed"; exits 1 on failure.
  The loading, the service handshake and the sysvar lookup are shared with
  bench/bench.c (tests/include/akm_host.h).
*/
#define _GNU_SOURCE
#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "akm_host.h"

#include "akm_check.h"

/* ---- the plugin's messages, captured -------------------------------- */

#define MSGS 64
static char msgs[MSGS][600];
static unsigned long msg_flags[MSGS];
static int nmsgs;
static pthread_mutex_t msg_lock = PTHREAD_MUTEX_INITIALIZER;

/* The plugin's messages are captured for the checks below. */
static void akm_host_message(unsigned long flags, const char *fmt, va_list ap)
{
  pthread_mutex_lock(&msg_lock);
  int i = nmsgs < MSGS ? nmsgs++ : MSGS - 1;
  vsnprintf(msgs[i], sizeof msgs[i], fmt, ap);
  msg_flags[i] = flags;
  pthread_mutex_unlock(&msg_lock);
}

/* Index of the first captured message containing s, or -1. */
static int find_msg(const char *s)
{
  pthread_mutex_lock(&msg_lock);
  int r = -1;
  for (int i = 0; i < nmsgs && r < 0; i++)
    if (strstr(msgs[i], s))
      r = i;
  pthread_mutex_unlock(&msg_lock);
  return r;
}
static void clear_msgs(void)
{
  pthread_mutex_lock(&msg_lock);
  nmsgs = 0;
  pthread_mutex_unlock(&msg_lock);
}

/* ---- NODELETE ----------------------------------------------------- */

static int has_nodelete(void *handle)
{
  struct link_map *lm;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &lm) != 0)
    return 0;
  for (ElfW(Dyn) *d = lm->l_ld; d->d_tag != DT_NULL; d++)
    if (d->d_tag == DT_FLAGS_1 && (d->d_un.d_val & DF_1_NODELETE))
      return 1;
  return 0;
}

static int file_mode(const char *dir, const char *name)
{
  char p[4096];
  struct stat st;
  snprintf(p, sizeof p, "%s/%s", dir, name);
  if (stat(p, &st) != 0)
    return -1;
  return st.st_mode & 07777;
}

/* ---- key memory ---------------------------------------------------- */

/* Counts this process's mappings whose VmFlags have both "dd"
   (MADV_DONTDUMP) and "lo" (mlock), and of at least min_kb. */
static int locked_dontdump_mappings(unsigned long min_kb)
{
  FILE *f = fopen("/proc/self/smaps", "r");
  char line[512];
  unsigned long size_kb = 0;
  int n = 0;
  if (!f)
    return -1;
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "Size: %lu kB", &size_kb) == 1)
      continue;
    if (strncmp(line, "VmFlags:", 8) == 0 && strstr(line, " dd") && strstr(line, " lo") &&
        size_kb >= min_kb)
      n++;
  }
  fclose(f);
  return n;
}

/* ---- concurrency -------------------------------------------------- */

static void *hammer(void *arg)
{
  /* key ids and their lengths: 1 and 100000 are AES_128, 4 is AES_256 */
  static const unsigned int ids[] = {1, 100000, 4}, lens[] = {16, 16, 32};
  unsigned int bad = 0;
  for (int i = 0; i < 20000; i++) {
    int j = i % 3;
    unsigned int v = enc->get_latest_key_version(ids[j]);
    unsigned char k[32];
    unsigned int len = sizeof k;
    if (v == ENCRYPTION_KEY_VERSION_INVALID ||
        enc->get_key(ids[j], v, k, &len) != 0 || len != lens[j])
      bad++;
  }
  *(unsigned int *)arg = bad;
  return NULL;
}

int main(int argc, char **argv)
{
  if (argc != 3) {
    fprintf(stderr, "usage: %s <aws_key_management.so> <scratch dir>\n", argv[0]);
    return 2;
  }
  const char *so = argv[1], *dir = argv[2];

  struct akm_host_lib lib;
  if (akm_host_dlopen(so, &lib) != 0) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  CHECK(has_nodelete(lib.handle), "library is marked NODELETE (dlclose must never unmap the Go runtime)");

  const int *iv = lib.interface_version, *sz = lib.sizeof_struct;
  struct st_maria_plugin *decl = lib.decl;
  CHECK(iv && *iv == MARIA_PLUGIN_INTERFACE_VERSION,
        "_maria_plugin_interface_version_ = 0x%x", iv ? *iv : -1);
  CHECK(sz && *sz == (int)sizeof(struct st_maria_plugin),
        "_maria_sizeof_struct_st_plugin_ = %d", sz ? *sz : -1);
  if (!decl) {
    printf("FAIL - no _maria_plugin_declarations_\n");
    return 1;
  }
  plugin = &decl[0];
  CHECK(decl[1].type == 0 && decl[1].info == NULL, "declaration list is zero-terminated");
  CHECK(plugin->type == MariaDB_ENCRYPTION_PLUGIN, "type is encryption");
  CHECK(strcmp(plugin->name, "aws_key_management") == 0, "name is %s", plugin->name);
  CHECK(plugin->license == PLUGIN_LICENSE_GPL, "license GPL");
  CHECK(plugin->version == 0x0100 && strcmp(plugin->version_info, "1.0") == 0, "version 1.0");
  CHECK(plugin->maturity == MariaDB_PLUGIN_MATURITY_STABLE, "maturity stable");
  enc = plugin->info;
  CHECK(enc->interface_version == MariaDB_ENCRYPTION_INTERFACE_VERSION,
        "encryption interface 0x%x", enc->interface_version);
  CHECK(!enc->crypt_ctx_size && !enc->crypt_ctx_init && !enc->crypt_ctx_update &&
            !enc->crypt_ctx_finish && !enc->encrypted_length,
        "crypt_ctx_* and encrypted_length are NULL (server AES is used)");

  const char *want[] = {"master_key_id", "key_spec", "rotate_key", "log_level",
                        "request_timeout", "region", "endpoint_url", "keyfile_dir", "mock"};
  for (size_t i = 0; i < sizeof want / sizeof *want; i++)
    CHECK(sysvar(want[i]) != NULL, "sysvar %s declared", want[i]);
  CHECK((sysvar("rotate_key")->flags & PLUGIN_VAR_READONLY) == 0, "rotate_key is dynamic");
  CHECK((sysvar("region")->flags & PLUGIN_VAR_READONLY) != 0, "region is read-only");

  /* The server's service handshake: the initial value is the version. */
  void **svc = lib.print_error_service;
  CHECK(svc && *svc == (void *)VERSION_my_print_error,
        "my_print_error_service carries version 0x%x", VERSION_my_print_error);
  CHECK(akm_host_check(&lib) == NULL, "the library passes the server's load checks");
  if (!svc)
    return 1;
  akm_host_attach(&lib);

  /* Settings as from the command line, then init. */
  set_bool("mock", 1);
  set_str("master_key_id", "host-test-cmk");
  set_str("keyfile_dir", dir);
  CHECK(plugin->init(NULL) == 0, "init with mock=ON succeeds");
  CHECK(find_msg("AWS KMS plugin: plaintext keys are kept in locked memory (never swapped), "
                 "excluded from core dumps") >= 0,
        "init says keys are in locked memory excluded from core dumps");

  unsigned int v = enc->get_latest_key_version(1);
  CHECK(v == 1, "new key id 1 gets version 1 (got %u)", v);
  CHECK(file_mode(dir, "aws-kms-key.1.1") == 0400, "aws-kms-key.1.1 exists, mode 0400 (got %o)",
        file_mode(dir, "aws-kms-key.1.1"));
  CHECK(find_msg("AWS KMS plugin: generated encrypted datakey for key id=1, version=1") >= 0,
        "log: generated encrypted datakey for key id=1, version=1");
  int li = find_msg("AWS KMS plugin: loaded key 1, version 1, key length 128 bit");
  CHECK(li >= 0 && msg_flags[li] == (ME_ERROR_LOG_ONLY | ME_NOTE),
        "log: loaded key 1, version 1, key length 128 bit (error log, note)");

  unsigned int len = 0;
  CHECK(enc->get_key(1, 1, NULL, &len) == ENCRYPTION_KEY_BUFFER_TOO_SMALL && len == 16,
        "get_key(key=NULL) asks the length: BUFFER_TOO_SMALL, 16 (got %u)", len);
  unsigned char k1[32], k1b[32];
  memset(k1, 0xAA, sizeof k1);
  len = 8;
  CHECK(enc->get_key(1, 1, k1, &len) == ENCRYPTION_KEY_BUFFER_TOO_SMALL && len == 16,
        "get_key with 8-byte buffer: BUFFER_TOO_SMALL, 16");
  len = sizeof k1;
  CHECK(enc->get_key(1, 1, k1, &len) == 0 && len == 16, "get_key(1,1) returns a 16-byte key");
  static const unsigned char zero[16];
  CHECK(memcmp(k1, zero, 16) != 0, "key is not all zeros");

  len = sizeof k1b;
  CHECK(enc->get_key(1, 2, k1b, &len) == ENCRYPTION_KEY_VERSION_INVALID,
        "get_key of a missing version is VERSION_INVALID");
  CHECK(enc->get_latest_key_version(1) == 1,
        "a get_key for a missing version does not poison the latest version");
  CHECK(enc->get_key(0, 1, k1b, &len) == ENCRYPTION_KEY_VERSION_INVALID, "key id 0 is invalid");

  v = enc->get_latest_key_version(100000);
  CHECK(v == 1 && file_mode(dir, "aws-kms-key.100000.1") == 0400,
        "key id 100000 is stored in aws-kms-key.100000.1");

  /* Rotation through the sysvar's update function. */
  clear_msgs();
  set_global_int("rotate_key", 1);
  CHECK(*(int *)sysvar("rotate_key")->value == 0, "rotate_key reads back 0");
  CHECK(enc->get_latest_key_version(1) == 2, "rotate_key=1 makes version 2");
  CHECK(file_mode(dir, "aws-kms-key.1.2") == 0400, "aws-kms-key.1.2 written");
  len = sizeof k1b;
  CHECK(enc->get_key(1, 1, k1b, &len) == 0 && memcmp(k1, k1b, 16) == 0,
        "version 1 still returns the same key after rotation");

  clear_msgs();
  set_global_int("rotate_key", 5);
  int wi = find_msg("key 5 does not exist");
  CHECK(wi >= 0 && (msg_flags[wi] & ME_WARNING), "rotate_key=5: warning 'key 5 does not exist'");

  set_global_int("rotate_key", -1);
  CHECK(enc->get_latest_key_version(1) == 3 && enc->get_latest_key_version(100000) == 2,
        "rotate_key=-1 rotates every key");

  /* The length query must hold for AES_256 too. */
  *(unsigned long *)sysvar("key_spec")->value = 1;
  v = enc->get_latest_key_version(4);
  len = 0;
  CHECK(v == 1 && enc->get_key(4, 1, NULL, &len) == ENCRYPTION_KEY_BUFFER_TOO_SMALL && len == 32,
        "key_spec=AES_256 gives a 32-byte key (got %u)", len);
  *(unsigned long *)sysvar("key_spec")->value = 0;

  /* A failing KMS: clean error, nothing written, old version in use. */
  clear_msgs();
  set_global_str("mock_faults", "fail=Decrypt:KMSInternalException");
  set_global_int("rotate_key", 1);
  CHECK(find_msg("AWS KMS plugin : KMS Client API 'Decrypt' failed : KMSInternalException") >= 0,
        "failed Decrypt is logged in upstream's format");
  CHECK(enc->get_latest_key_version(1) == 3 && file_mode(dir, "aws-kms-key.1.4") == -1,
        "failed rotation writes no file and keeps version 3");
  set_global_str("mock_faults", "");

  /* A panic in Go (injected in the mock) is recovered at the boundary:
     an error code and one log line, and the next call works. */
  clear_msgs();
  set_global_str("mock_faults", "fail=GenerateDataKeyWithoutPlaintext:Panic:1");
  CHECK(enc->get_latest_key_version(55) == ENCRYPTION_KEY_VERSION_INVALID,
        "a panic inside get_latest_key_version returns VERSION_INVALID");
  int pi = find_msg("AWS KMS plugin: internal error in get_latest_key_version: mock KMS: injected panic");
  CHECK(pi >= 0, "the panic is logged once, naming the entry point");
  CHECK(pi >= 0 && strstr(msgs[pi], " at github.com/mariadb-go/aws_key_management/internal/mock.(*KMS).begin (mock/kms.go:") &&
            !strchr(msgs[pi], '\n') && strlen(msgs[pi]) < 400,
        "the panic line names the site that panicked, on one short line: %s", pi >= 0 ? msgs[pi] : "");
  set_global_str("mock_faults", "");
  CHECK(enc->get_latest_key_version(55) == 1, "after the panic key 55 is created normally");

  /* An empty master key id: no key, upstream's error. */
  clear_msgs();
  set_global_str("master_key_id", "");
  CHECK(enc->get_latest_key_version(9) == ENCRYPTION_KEY_VERSION_INVALID,
        "empty master key id: new key id 9 is VERSION_INVALID");
  CHECK(find_msg("Can't generate encryption key, because 'aws_key_management_master_key_id' "
                 "parameter is not set") >= 0,
        "empty master key id: upstream's error text");
  set_global_int("rotate_key", 1);
  CHECK(find_msg("aws_key_management_master_key_id must be set to generate new data keys") >= 0,
        "empty master key id: rotation warns");
  set_global_str("master_key_id", "host-test-cmk");

  /* Many threads at once on loaded keys. */
  pthread_t t[4];
  unsigned int bad[4];
  for (int i = 0; i < 4; i++)
    pthread_create(&t[i], NULL, hammer, &bad[i]);
  unsigned int total_bad = 0;
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    total_bad += bad[i];
  }
  CHECK(total_bad == 0, "4 threads x 20000 calls: all keys served (%u failures)", total_bad);

  /* Plaintext keys live in locked, undumped memory: the Go arena (64 KiB)
     and the C cache the hot path reads (about 200 KiB). */
  CHECK(locked_dontdump_mappings(64) >= 2,
        "key memory: %d mappings of >= 64 KiB are mlocked and MADV_DONTDUMP (want 2)",
        locked_dontdump_mappings(64));

  /* Deinit, then a second lifetime reads the same keys from disk. */
  CHECK(plugin->deinit(NULL) == 0, "deinit");
  CHECK(enc->get_latest_key_version(1) == ENCRYPTION_KEY_VERSION_INVALID,
        "after deinit no key is served, not even from the C cache");
  len = sizeof k1b;
  CHECK(enc->get_key(1, 1, k1b, &len) == ENCRYPTION_KEY_VERSION_INVALID,
        "after deinit get_key serves nothing");
  CHECK(plugin->init(NULL) == 0, "init again (INSTALL after UNINSTALL)");
  len = sizeof k1b;
  memset(k1b, 0, sizeof k1b);
  CHECK(enc->get_key(1, 1, k1b, &len) == 0 && len == 16 && memcmp(k1, k1b, 16) == 0,
        "after re-init, key 1 version 1 unwraps from its file to the same key");
  CHECK(enc->get_latest_key_version(1) == 3, "after re-init, latest version of key 1 is 3");
  CHECK(plugin->deinit(NULL) == 0, "deinit");

  /* A master_key_id longer than KMS takes, given at start (no check
     function runs for command-line values): init fails, saying why. */
  static char long_id[2050];
  memset(long_id, 'k', sizeof long_id - 1);
  long_id[sizeof long_id - 1] = 0;
  clear_msgs();
  set_str("master_key_id", long_id);
  CHECK(plugin->init(NULL) != 0, "init fails for a 2049-character master_key_id");
  CHECK(find_msg("aws_key_management_master_key_id has 2049 characters; a KMS key id, ARN or alias has at most 2048") >= 0,
        "the failure names the variable, its length and the limit");
  CHECK(plugin->deinit(NULL) == 0, "deinit after a failed init");
  set_str("master_key_id", "host-test-cmk");

  /* A failed init is followed by deinit, which must cope. */
  set_str("keyfile_dir", "/nonexistent/aws-kms-host-test");
  CHECK(plugin->init(NULL) != 0, "init fails for a missing keyfile_dir");
  CHECK(find_msg("aws_key_management_keyfile_dir") >= 0, "the failure names aws_key_management_keyfile_dir");
  CHECK(plugin->deinit(NULL) == 0, "deinit after a failed init");

  return CHECK_SUMMARY();
}
