/*
  MariaDB plugin ABI of aws_key_management: system variables, the
  st_mariadb_encryption table and the plugin declaration. Each callback is
  a one-line call into Go (exports.go); no logic lives here.

  Threading: the server calls get_latest_key_version/get_key from many
  threads at once, and the sysvar update functions with
  LOCK_global_system_variables held. Memory: key bytes are written into the
  caller's buffer; strings passed to Go are copied there; no Go pointer is
  kept on the C side.
*/
#include <my_global.h>
#include <mysql_version.h>
#include <typelib.h>
#include <mysql/plugin_encryption.h>
#include <mysqld_error.h>
#include <my_pthread.h>
#include <mysql/psi/mysql_thread.h>
#include <mysql/service_thd_alloc.h>
#include <stdio.h>
#include <string.h>
#include "cabi.h"
#include "akm_keycache.h"
#include "_cgo_export.h"

/* cabi.h carries the server's values without its headers (cgo compiles it
   into Go); here they are tied to the headers of the server we build for. */
_Static_assert(AKM_BUFFER_TOO_SMALL == ENCRYPTION_KEY_BUFFER_TOO_SMALL,
               "AKM_BUFFER_TOO_SMALL differs from the server's");
_Static_assert(AKM_KEY_VERSION_INVALID == ENCRYPTION_KEY_VERSION_INVALID,
               "AKM_KEY_VERSION_INVALID differs from the server's");
_Static_assert(AKM_MAX_KEY_LENGTH == MY_AES_MAX_KEY_LENGTH,
               "AKM_MAX_KEY_LENGTH differs from the server's");

#define AKM_EXPORT __attribute__((visibility("default")))

/* ---- system variables (names, types, defaults and flags as upstream) -- */

static char *master_key_id;
static char *region;
static char *endpoint_url;
static char *keyfile_dir;
static char *recovery_bundle;
static char *recovery_identity;
static unsigned long key_spec;
static unsigned long log_level;
static int rotate_key;
static int request_timeout;
static my_bool fallback_to_older_version;

static const char *key_spec_names[] = {"AES_128", "AES_256", 0};
static TYPELIB key_spec_typelib = {array_elements(key_spec_names) - 1, "",
                                   key_spec_names, NULL};

static const char *log_level_names[] = {"Off",  "Fatal", "Error", "Warn",
                                        "Info", "Debug", "Trace", 0};
static TYPELIB log_level_typelib = {array_elements(log_level_names) - 1, "",
                                    log_level_names, NULL};

/*
  master_key_id is dynamic as upstream. The value lives in a static buffer
  (not PLUGIN_VAR_MEMALLOC, whose memory only the server's allocator may
  free); the update hands Go its own copy, so Go never reads the buffer
  while a SET changes it.
*/
#define AKM_MASTER_KEY_ID_MAX 2048 /* KMS KeyId limit */
static char master_key_id_buf[AKM_MASTER_KEY_ID_MAX + 1];

/* Refuse a value KMS would refuse, before anything changes: the SET fails
   (ER_WRONG_VALUE_FOR_VAR) with a warning saying why. */
static int check_master_key_id(MYSQL_THD thd, struct st_mysql_sys_var *var,
                               void *save, struct st_mysql_value *value)
{
  char buf[256];
  int len = sizeof(buf);
  const char *s = value->val_str(value, buf, &len);
  if (s && len > AKM_MASTER_KEY_ID_MAX) {
    char msg[200];
    snprintf(msg, sizeof msg,
             "aws_key_management_master_key_id is %d characters long; "
             "the limit is %d (the KMS KeyId limit)", len, AKM_MASTER_KEY_ID_MAX);
    akm_log(AKM_LOG_CLIENT_WARNING, msg);
    return 1;
  }
  *(const char **)save = s ? thd_strmake(thd, s, len) : NULL;
  return 0;
}

static void update_master_key_id(MYSQL_THD thd, struct st_mysql_sys_var *var,
                                 void *var_ptr, const void *save)
{
  const char *v = *(const char *const *)save;
  if (!v)
    v = "";
  if (strlen(v) > AKM_MASTER_KEY_ID_MAX) /* refused by check_master_key_id */
    return;
  strcpy(master_key_id_buf, v);
  *(char **)var_ptr = master_key_id_buf;
  akmGoSetMasterKeyID(master_key_id_buf);
}

/*
  The server calls sysvar updates with LOCK_global_system_variables held;
  new connections, SHOW VARIABLES and every SET GLOBAL wait on it.
  Rotation makes KMS calls that can take seconds, so it releases the lock
  around them, as InnoDB's own update functions do. Weak references: the
  library also loads outside mariadbd (the ABI test host, the benchmark),
  where there is no such lock.
*/
#pragma weak LOCK_global_system_variables
#pragma weak PSI_server
#pragma weak psi_mutex_lock
extern mysql_mutex_t LOCK_global_system_variables;

static void update_rotate(MYSQL_THD thd, struct st_mysql_sys_var *var,
                          void *var_ptr, const void *save)
{
  int n = *(const int *)save;
  int in_server = &LOCK_global_system_variables != NULL;
  *(int *)var_ptr = 0; /* reads back 0, as upstream */
  if (in_server)
    mysql_mutex_unlock(&LOCK_global_system_variables);
  akmGoRotateKey(n);
  if (in_server)
    mysql_mutex_lock(&LOCK_global_system_variables);
}

static MYSQL_SYSVAR_STR(master_key_id, master_key_id, PLUGIN_VAR_RQCMDARG,
  "KMS key (key id, key ARN, alias/name or alias ARN) that wraps new data "
  "keys. If empty, no new keys are created.",
  check_master_key_id, update_master_key_id, "");

static MYSQL_SYSVAR_ENUM(key_spec, key_spec, PLUGIN_VAR_RQCMDARG,
  "Length of new data keys: AES_128 or AES_256.",
  NULL, NULL, 0, &key_spec_typelib);

static MYSQL_SYSVAR_ENUM(log_level, log_level, PLUGIN_VAR_RQCMDARG,
  "Logging of KMS requests to the error log: Off, Fatal, Error, Warn, Info, "
  "Debug or Trace.",
  NULL, NULL, 0, &log_level_typelib);

static MYSQL_SYSVAR_INT(rotate_key, rotate_key, PLUGIN_VAR_RQCMDARG,
  "Set to a key id to add a new version of that key; -1 rotates all keys.",
  NULL, update_rotate, 0, -1, INT_MAX, 1);

/* Not in the C++ plugin. Dynamic: Go reads it at each lookup (akm_fallback). */
static MYSQL_SYSVAR_BOOL(fallback_to_older_version, fallback_to_older_version,
  PLUGIN_VAR_RQCMDARG,
  "While the latest version of a key cannot be unwrapped, encrypt new data "
  "with the highest older version that can (ON keeps the server writing). "
  "OFF: the latest version or nothing (after rotating away from a "
  "compromised version).",
  NULL, NULL, 1);

static MYSQL_SYSVAR_INT(request_timeout, request_timeout,
  PLUGIN_VAR_RQCMDARG | PLUGIN_VAR_READONLY,
  "Timeout in milliseconds for connecting to KMS and for each request. "
  "0 uses the SDK default.",
  NULL, NULL, 0, 0, INT_MAX, 1);

static MYSQL_SYSVAR_STR(region, region, PLUGIN_VAR_RQCMDARG | PLUGIN_VAR_READONLY,
  "AWS region, for example us-east-1. If empty, the SDK's configuration "
  "is used, then us-east-1.",
  NULL, NULL, "");

static MYSQL_SYSVAR_STR(endpoint_url, endpoint_url,
  PLUGIN_VAR_RQCMDARG | PLUGIN_VAR_READONLY,
  "KMS endpoint to use instead of the region's default (VPC or FIPS "
  "endpoints, tests).",
  NULL, NULL, "");

static MYSQL_SYSVAR_STR(keyfile_dir, keyfile_dir,
  PLUGIN_VAR_RQCMDARG | PLUGIN_VAR_READONLY,
  "Directory of the aws-kms-key.<id>.<version> files. If empty, the datadir.",
  NULL, NULL, "");

/* Recovery without KMS (not in the C++ plugin): a bundle made by
   `mariadb-aws-keys export` and the age identity that opens it. */
static MYSQL_SYSVAR_STR(recovery_bundle, recovery_bundle,
  PLUGIN_VAR_RQCMDARG | PLUGIN_VAR_READONLY,
  "Recovery without KMS: a bundle written by mariadb-aws-keys export. If set, "
  "keys come from it and no KMS call is made; new keys and rotation are refused.",
  NULL, NULL, "");

static MYSQL_SYSVAR_STR(recovery_identity, recovery_identity,
  PLUGIN_VAR_RQCMDARG | PLUGIN_VAR_READONLY,
  "The age identity file (recovery key) that opens aws_key_management_recovery_bundle.",
  NULL, NULL, "");

#ifdef AKM_MOCK
static my_bool mock;
#define AKM_MOCK_FAULTS_MAX 4096
static char *mock_faults;
static char mock_faults_buf[AKM_MOCK_FAULTS_MAX + 1];

static MYSQL_SYSVAR_BOOL(mock, mock, PLUGIN_VAR_RQCMDARG | PLUGIN_VAR_READONLY,
  "Use the in-process mock KMS instead of AWS (test builds only).",
  NULL, NULL, 0);

/* Reject a fault description Go cannot parse, before anything changes. */
static int check_mock_faults(MYSQL_THD thd, struct st_mysql_sys_var *var,
                             void *save, struct st_mysql_value *value)
{
  char buf[256];
  int len = sizeof(buf);
  const char *s = value->val_str(value, buf, &len);
  if (!s) {
    s = "";
    len = 0;
  }
  if (len > AKM_MOCK_FAULTS_MAX || akmGoMockFaults((char *)s, len, 0) != 0)
    return 1;
  *(const char **)save = thd_strmake(thd, s, len);
  return 0;
}

static void update_mock_faults(MYSQL_THD thd, struct st_mysql_sys_var *var,
                               void *var_ptr, const void *save)
{
  const char *v = *(const char *const *)save;
  if (!v)
    v = "";
  strcpy(mock_faults_buf, v); /* length checked in check_mock_faults */
  *(char **)var_ptr = mock_faults_buf;
  akmGoMockFaults(mock_faults_buf, (int)strlen(mock_faults_buf), 1);
}

static MYSQL_SYSVAR_STR(mock_faults, mock_faults, PLUGIN_VAR_RQCMDARG,
  "Faults of the mock KMS, for tests: disable=<key>; "
  "fail=<Op>:<Exception>[:<count>]; delay=<Op>:<ms>; datakey=<hex>.",
  check_mock_faults, update_mock_faults, "");
#endif

static struct st_mysql_sys_var *settings[] = {
  MYSQL_SYSVAR(master_key_id),
  MYSQL_SYSVAR(key_spec),
  MYSQL_SYSVAR(rotate_key),
  MYSQL_SYSVAR(log_level),
  MYSQL_SYSVAR(request_timeout),
  MYSQL_SYSVAR(region),
  MYSQL_SYSVAR(endpoint_url),
  MYSQL_SYSVAR(keyfile_dir),
  MYSQL_SYSVAR(recovery_bundle),
  MYSQL_SYSVAR(recovery_identity),
  MYSQL_SYSVAR(fallback_to_older_version),
#ifdef AKM_MOCK
  MYSQL_SYSVAR(mock),
  MYSQL_SYSVAR(mock_faults),
#endif
  NULL
};

/* ---- status variables ----------------------------------------------------- */

/* SHOW GLOBAL STATUS LIKE 'Aws_key_management%'. The values are taken at
   each SHOW: Go's counters (akmGoStatus) and the key cache's fill. The
   array and the values live in the buffer the server passes (one per
   call), so concurrent SHOWs do not share memory. */
#define STATUS_FIELD(f) {#f, offsetof(struct akm_status, f)}
static const struct {
  const char *name;
  size_t offset;
} status_fields[] = {
  STATUS_FIELD(keys_loaded),       STATUS_FIELD(versions_loaded),
  STATUS_FIELD(versions_failed),   STATUS_FIELD(decrypt_calls),
  STATUS_FIELD(decrypt_errors),    STATUS_FIELD(decrypt_retries),
  STATUS_FIELD(decrypt_throttled), STATUS_FIELD(generate_calls),
  STATUS_FIELD(generate_errors),   STATUS_FIELD(generate_retries),
  STATUS_FIELD(generate_throttled), STATUS_FIELD(last_kms_success),
  STATUS_FIELD(last_kms_failure),  STATUS_FIELD(start_unwrap_ms),
  STATUS_FIELD(start_versions),    STATUS_FIELD(start_failed),
  STATUS_FIELD(cache_keys),        STATUS_FIELD(cache_key_slots),
  STATUS_FIELD(cache_ids),         STATUS_FIELD(cache_id_slots),
};
#define STATUS_COUNT (sizeof status_fields / sizeof status_fields[0])
_Static_assert(STATUS_COUNT * sizeof(long long) == sizeof(struct akm_status),
               "every field of struct akm_status is shown");

struct status_buf {
  struct st_mysql_show_var vars[STATUS_COUNT + 1];
  struct akm_status values;
};
_Static_assert(sizeof(struct status_buf) <= SHOW_VAR_FUNC_BUFF_SIZE,
               "the status array fits the server's buffer");

static int show_status(MYSQL_THD thd, struct st_mysql_show_var *var, void *buff,
                       struct system_status_var *status, enum enum_var_type scope)
{
  struct status_buf *b = buff;
  unsigned long long keys, key_slots, ids, id_slots;
  memset(b, 0, sizeof *b);
  akmGoStatus(&b->values);
  akm_cache_fill(&keys, &key_slots, &ids, &id_slots);
  b->values.cache_keys = (long long)keys;
  b->values.cache_key_slots = (long long)key_slots;
  b->values.cache_ids = (long long)ids;
  b->values.cache_id_slots = (long long)id_slots;
  for (size_t i = 0; i < STATUS_COUNT; i++) {
    b->vars[i].name = status_fields[i].name;
    b->vars[i].value = (char *)&b->values + status_fields[i].offset;
    b->vars[i].type = SHOW_LONGLONG;
  }
  var->type = SHOW_ARRAY;
  var->value = b->vars;
  return 0;
}

static struct st_mysql_show_var status_vars[] = {
  {"Aws_key_management", (void *)show_status, SHOW_FUNC},
  {NULL, NULL, SHOW_UNDEF}
};

/* ---- calls from Go ----------------------------------------------------- */

void akm_log(int kind, const char *msg)
{
  static const unsigned long flags[] = {
    [AKM_LOG_NOTE] = ME_ERROR_LOG_ONLY | ME_NOTE,
    [AKM_LOG_WARNING] = ME_ERROR_LOG_ONLY | ME_WARNING,
    [AKM_LOG_ERROR] = ME_ERROR_LOG_ONLY,
    [AKM_LOG_CLIENT_ERROR] = 0,
    [AKM_LOG_CLIENT_WARNING] = ME_WARNING,
  };
  if (kind < 0 || kind > AKM_LOG_CLIENT_WARNING)
    kind = AKM_LOG_ERROR;
  my_printf_error(ER_UNKNOWN_ERROR, "%s", MYF(flags[kind]), msg);
}

void akm_get_settings(struct akm_settings *out)
{
  out->master_key_id = master_key_id ? master_key_id : "";
  out->region = region ? region : "";
  out->endpoint_url = endpoint_url ? endpoint_url : "";
  out->keyfile_dir = keyfile_dir ? keyfile_dir : "";
  out->recovery_bundle = recovery_bundle ? recovery_bundle : "";
  out->recovery_identity = recovery_identity ? recovery_identity : "";
  out->key_spec = akm_key_spec();
  out->log_level = akm_log_level();
  out->request_timeout = request_timeout;
#ifdef AKM_MOCK
  out->mock = mock ? 1 : 0;
  out->mock_faults = mock_faults ? mock_faults : "";
#else
  out->mock = -1;
  out->mock_faults = NULL;
#endif
}

/* Go reads these dynamic variables on its own threads while a SET may
   change them: atomic loads (relaxed: each is a single word, read alone). */
unsigned long akm_key_spec(void) { return __atomic_load_n(&key_spec, __ATOMIC_RELAXED); }
unsigned long akm_log_level(void) { return __atomic_load_n(&log_level, __ATOMIC_RELAXED); }
int akm_fallback(void) { return __atomic_load_n(&fallback_to_older_version, __ATOMIC_RELAXED) != 0; }

/* PLUGIN_DESCRIPTION (information_schema.PLUGINS, SHOW PLUGINS SONAME):
   the server reads the declaration's pointer when it shows the row, so Go
   completes the text with this build's version and commit at plugin init
   (akm_set_description), before the plugin is ready. */
#define AKM_DESCRIPTION "AWS key management plugin"
static char description[256] = AKM_DESCRIPTION;

const char *akm_set_description(const char *build)
{
  snprintf(description, sizeof description, "%s (Go) %s, built for %s",
           AKM_DESCRIPTION, build, MARIADB_BASE_VERSION);
  return description;
}

/* ---- the encryption plugin --------------------------------------------- */

/* The hot path: loaded keys and latest versions come from the C cache
   (akm_keycache.c) without a lock or a call into Go; Go is entered on a miss
   only (a key not loaded yet, a new key id). */
static unsigned int akm_get_latest_key_version(unsigned int key_id)
{
  unsigned int v = akm_cache_latest(key_id);
  return v ? v : akmGoGetLatestKeyVersion(key_id);
}

static unsigned int akm_get_key(unsigned int key_id, unsigned int version,
                                unsigned char *key, unsigned int *key_length)
{
  unsigned int code;
  if (key_length && akm_cache_get(key_id, version, key, key_length, &code))
    return code;
  return akmGoGetKey(key_id, version, key, key_length);
}

static int akm_init(void *p) { return akmGoInit(); }
static int akm_deinit(void *p) { return akmGoDeinit(); }

/* crypt_ctx_* and encrypted_length stay NULL: the server's own AES is
   used, as upstream, so existing data stays readable. */
static struct st_mariadb_encryption akm_encryption = {
  MariaDB_ENCRYPTION_INTERFACE_VERSION,
  akm_get_latest_key_version,
  akm_get_key,
  NULL, NULL, NULL, NULL, NULL
};

/* The declaration macros define the three data symbols the server looks
   up; give them default visibility (everything else is hidden). */
#pragma GCC visibility push(default)
maria_declare_plugin(aws_key_management)
{
  MariaDB_ENCRYPTION_PLUGIN,
  &akm_encryption,
  "aws_key_management",
  "aws_key_management Go authors",
  description,
  PLUGIN_LICENSE_GPL,
  akm_init,
  akm_deinit,
  0x0100,
  status_vars,
  settings,
  "1.0",
  MariaDB_PLUGIN_MATURITY_STABLE
}
maria_declare_plugin_end;
#pragma GCC visibility pop
