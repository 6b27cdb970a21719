/*
  The part of mariadbd a test host needs to load aws_key_management.so the
  way the server does, shared by tests/abi/host.c and bench/bench.c:
  dlopen and the plugin's data symbols, the my_print_error service
  handshake (with a fake service), and sysvars found by name in the plugin
  declaration and set as the server sets them.

  Include it once per program (it has static state: plugin, enc). The
  program defines what becomes of the plugin's messages:
    static void akm_host_message(unsigned long flags, const char *fmt, va_list ap);
*/
#ifndef AKM_HOST_H
#define AKM_HOST_H

#include <dlfcn.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <mysql/plugin.h>
#include <mysql/plugin_encryption.h>

/* The server's service_versions.h is not shipped with the dev package;
   10.11 expects this version of my_print_error (see the shared NOTES). */
#define VERSION_my_print_error 0x0100

/* ---- the my_print_error service ----------------------------------------- */

static void akm_host_message(unsigned long flags, const char *fmt, va_list ap);

static void akm_host_messagef(unsigned long flags, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  akm_host_message(flags, fmt, ap);
  va_end(ap);
}
static void akm_host_my_error(unsigned int nr, unsigned long flags, ...)
{
  akm_host_messagef(flags, "my_error(%u)", nr);
}
static void akm_host_my_printf_error(unsigned int nr, const char *fmt, unsigned long flags, ...)
{
  va_list ap;
  (void)nr;
  va_start(ap, flags);
  akm_host_message(flags, fmt, ap);
  va_end(ap);
}
static void akm_host_my_printv_error(unsigned int nr, const char *fmt, unsigned long flags,
                                     va_list ap)
{
  (void)nr;
  akm_host_message(flags, fmt, ap);
}
static struct my_print_error_service_st akm_host_print_error = {
  akm_host_my_error, akm_host_my_printf_error, akm_host_my_printv_error};

/* ---- loading, as the server does ---------------------------------------- */

static struct st_maria_plugin *plugin;     /* the first declaration */
static struct st_mariadb_encryption *enc; /* its encryption table */

struct akm_host_lib {
  void *handle;
  const int *interface_version; /* _maria_plugin_interface_version_ */
  const int *sizeof_struct;     /* _maria_sizeof_struct_st_plugin_ */
  struct st_maria_plugin *decl; /* _maria_plugin_declarations_ */
  void **print_error_service;   /* my_print_error_service */
};

/* dlopen as the server does and look the symbols up (NULL when missing).
   Returns 0, or -1 if dlopen failed (dlerror() says why). */
static int akm_host_dlopen(const char *so, struct akm_host_lib *lib)
{
  memset(lib, 0, sizeof *lib);
  lib->handle = dlopen(so, RTLD_NOW | RTLD_LOCAL);
  if (!lib->handle)
    return -1;
  lib->interface_version = dlsym(lib->handle, "_maria_plugin_interface_version_");
  lib->sizeof_struct = dlsym(lib->handle, "_maria_sizeof_struct_st_plugin_");
  lib->decl = dlsym(lib->handle, "_maria_plugin_declarations_");
  lib->print_error_service = dlsym(lib->handle, "my_print_error_service");
  return 0;
}

/* What the server checks before it calls init: NULL if the library is an
   encryption plugin of this server's interfaces, else the reason. */
static const char *akm_host_check(const struct akm_host_lib *lib)
{
  if (!lib->interface_version || *lib->interface_version != MARIA_PLUGIN_INTERFACE_VERSION)
    return "_maria_plugin_interface_version_ missing or of another version";
  if (!lib->sizeof_struct || *lib->sizeof_struct != (int)sizeof(struct st_maria_plugin))
    return "_maria_sizeof_struct_st_plugin_ missing or of another size";
  if (!lib->decl)
    return "no _maria_plugin_declarations_";
  if (lib->decl[0].type != MariaDB_ENCRYPTION_PLUGIN || !lib->decl[0].info)
    return "not an encryption plugin";
  if (((struct st_mariadb_encryption *)lib->decl[0].info)->interface_version !=
      MariaDB_ENCRYPTION_INTERFACE_VERSION)
    return "encryption interface of another version";
  if (!lib->print_error_service || *lib->print_error_service != (void *)VERSION_my_print_error)
    return "my_print_error_service missing or of another version";
  return NULL;
}

/* The service handshake (the server overwrites the version with its
   function table), and plugin/enc for the calls that follow. */
static void akm_host_attach(struct akm_host_lib *lib)
{
  plugin = &lib->decl[0];
  enc = plugin->info;
  *lib->print_error_service = &akm_host_print_error;
}

/* ---- sysvars, looked up by name as the server does ----------------------- */

/* Every MYSQL_SYSVAR_* struct starts with MYSQL_PLUGIN_VAR_HEADER and the
   pointer to the value. */
struct any_sysvar {
  MYSQL_PLUGIN_VAR_HEADER;
  void *value;
};

/* Real sysvars made by the server's macros, of the kinds the plugin has,
   to check that layout at compile time. */
static char *akm_host_probe_str;
static int akm_host_probe_int;
static my_bool akm_host_probe_bool;
static __attribute__((unused)) MYSQL_SYSVAR_STR(akm_host_probe_str, akm_host_probe_str,
  PLUGIN_VAR_RQCMDARG, "", NULL, NULL, "");
static __attribute__((unused)) MYSQL_SYSVAR_INT(akm_host_probe_int, akm_host_probe_int,
  PLUGIN_VAR_RQCMDARG, "", NULL, NULL, 0, 0, 1, 1);
static __attribute__((unused)) MYSQL_SYSVAR_BOOL(akm_host_probe_bool, akm_host_probe_bool,
  PLUGIN_VAR_RQCMDARG, "", NULL, NULL, 0);
#define AKM_HOST_SAME_FIELD(kind, field)                                      \
  _Static_assert(offsetof(struct any_sysvar, field) ==                        \
                     offsetof(__typeof__(MYSQL_SYSVAR_NAME(akm_host_probe_##kind)), field), \
                 "struct any_sysvar: " #field " is not where the server's macros put it in a " #kind " sysvar")
AKM_HOST_SAME_FIELD(str, flags);
AKM_HOST_SAME_FIELD(str, name);
AKM_HOST_SAME_FIELD(str, update);
AKM_HOST_SAME_FIELD(str, value);
AKM_HOST_SAME_FIELD(int, value);
AKM_HOST_SAME_FIELD(bool, value);

/* The plugin's sysvar of that name (without the plugin's prefix), or NULL. */
static struct any_sysvar *sysvar(const char *name)
{
  for (struct st_mysql_sys_var **v = plugin->system_vars; v && *v; v++) {
    struct any_sysvar *s = (struct any_sysvar *)*v;
    if (strcmp(s->name, name) == 0)
      return s;
  }
  return NULL;
}

/* Set the way the server does before init (command line). */
static inline void set_str(const char *name, const char *val)
{
  *(const char **)sysvar(name)->value = val;
}
static inline void set_int(const char *name, int val) { *(int *)sysvar(name)->value = val; }
static inline void set_bool(const char *name, int val)
{
  *(my_bool *)sysvar(name)->value = (my_bool)(val != 0);
}

/* Set the way SET GLOBAL does after a check: through the update function. */
static inline void set_global_str(const char *name, const char *val)
{
  struct any_sysvar *v = sysvar(name);
  v->update(NULL, (struct st_mysql_sys_var *)v, v->value, &val);
}
static inline void set_global_int(const char *name, int val)
{
  struct any_sysvar *v = sysvar(name);
  v->update(NULL, (struct st_mysql_sys_var *)v, v->value, &val);
}

#endif
