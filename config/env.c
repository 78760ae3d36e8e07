/*
 * Environment front end of the configuration: BERTH_<SECTION>_<KEY> variables,
 * named after the rows of the key table (internal.h), applied over whatever the
 * file set. Cross-field checks are left to br_config_validate, because the file
 * may hold one half of a pair (tls.certificate) and the environment the other.
 */
#include <stdio.h>
#include <string.h>
#include "config/internal.h"

#define ENV_PREFIX "BERTH_"

/* Names berth reads from the environment for something other than a key:
 * BERTH_CONFIG is the path of the file itself. */
static const char *const reserved[] = {"BERTH_CONFIG"};

static int is_reserved(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (strlen(reserved[i]) == len && memcmp(reserved[i], name, len) == 0)
            return 1;
    return 0;
}

static const br_config_key_t *find_env(const char *name, size_t len)
{
    char buf[128];
    for (const br_config_key_t *k = br_config_keys; k->name != NULL; k++) {
        br_config__env_name(k, buf, sizeof(buf));
        if (strlen(buf) == len && memcmp(buf, name, len) == 0)
            return k;
    }
    return NULL;
}

int br_config_load_env(br_config_t *c, char **envp, char *err, size_t errsize)
{
    br_config_t work, old;
    char msg[512];
    int ret = 0;

    err[0] = '\0';
    if (envp == NULL)
        return 0;
    /* Work on a copy so that a failed load leaves c exactly as it was. */
    br_config__copy(&work, c);

    for (char **e = envp; *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        if (strncmp(*e, ENV_PREFIX, strlen(ENV_PREFIX)) != 0 || eq == NULL)
            continue;
        size_t namelen = (size_t)(eq - *e);
        if (is_reserved(*e, namelen))
            continue;
        const br_config_key_t *k = find_env(*e, namelen);
        if (k == NULL) {
            /* A misspelt variable would otherwise be ignored without a trace. */
            snprintf(err, errsize, "%.*s: unknown variable (berth reads BERTH_<SECTION>_<KEY>, e.g. BERTH_STORAGE_ROOT)",
                     (int)namelen, *e);
            ret = BR_E_CONFIG;
            goto Exit;
        }
        if (br_config__set(&work, k, eq + 1, strlen(eq + 1), 0, msg, sizeof(msg)) != 0) {
            snprintf(err, errsize, "%.*s: %s", (int)namelen, *e, msg);
            ret = BR_E_CONFIG;
            goto Exit;
        }
        work.origin[k - br_config_keys] = (br_config_origin_t){BR_CONFIG_FROM_ENV, 0, 0};
    }

    old = *c;
    *c = work;
    work = old; /* the replaced values are disposed below */
Exit:
    br_config_dispose(&work);
    return ret;
}
