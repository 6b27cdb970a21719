/*
  The C side of the plugin ABI, shared by plugin.c and the Go exports.
  Keep this header free of server headers: cgo compiles it into Go code.
*/
#ifndef AKM_CABI_H
#define AKM_CABI_H

/* The server's values (plugin.c checks each against the server's headers
   with _Static_assert; Go reads them through cgo). */
#define AKM_BUFFER_TOO_SMALL 100       /* ENCRYPTION_KEY_BUFFER_TOO_SMALL */
#define AKM_KEY_VERSION_INVALID (~0u)  /* ENCRYPTION_KEY_VERSION_INVALID */
#define AKM_MAX_KEY_LENGTH 32          /* MY_AES_MAX_KEY_LENGTH */

/* Where a message goes; plugin.c maps each to my_printf_error flags. */
enum akm_log_kind {
  AKM_LOG_NOTE = 0,           /* error log, note */
  AKM_LOG_WARNING = 1,        /* error log, warning */
  AKM_LOG_ERROR = 2,          /* error log, error */
  AKM_LOG_CLIENT_ERROR = 3,   /* the statement's error (upstream's MYF(0)) */
  AKM_LOG_CLIENT_WARNING = 4  /* a warning to the client */
};

/* Values of the system variables at plugin init. Strings are owned by
   the server and valid during the call only: Go copies them. */
struct akm_settings {
  const char *master_key_id;
  const char *region;
  const char *endpoint_url;
  const char *keyfile_dir;
  const char *recovery_bundle;
  const char *recovery_identity;
  const char *mock_faults; /* NULL in a release build */
  unsigned long key_spec;  /* 0 AES_128, 1 AES_256 */
  unsigned long log_level; /* 0 Off .. 6 Trace */
  int request_timeout;     /* milliseconds, 0 = SDK default */
  int mock;                /* -1 in a release build (no such variable) */
};

/* SHOW GLOBAL STATUS LIKE 'Aws_key_management%': Go fills the first
   part (akmGoStatus), the key cache the last four (akm_cache_fill).
   Times are Unix seconds, 0 for never. */
struct akm_status {
  long long keys_loaded, versions_loaded, versions_failed;
  long long decrypt_calls, decrypt_errors, decrypt_retries, decrypt_throttled;
  long long generate_calls, generate_errors, generate_retries, generate_throttled;
  long long last_kms_success, last_kms_failure;
  long long start_unwrap_ms, start_versions, start_failed;
  long long cache_keys, cache_key_slots, cache_ids, cache_id_slots;
};

void akm_log(int kind, const char *msg);
void akm_get_settings(struct akm_settings *out);
unsigned long akm_key_spec(void);
unsigned long akm_log_level(void);
int akm_fallback(void);
const char *akm_set_description(const char *build);

#endif
