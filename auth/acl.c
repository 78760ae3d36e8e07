/*
 * Access rules: repository globs and the "most specific glob decides" lookup
 * (auth.h describes the policy). The rules are copied out of the config at
 * start-up and never change, so lookups need no lock.
 */
#include <stdlib.h>
#include <string.h>
#include "auth/internal.h"

static char **copy_words(char *const *v, size_t n)
{
    char **out = br_calloc(n + 1, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = br_strndup(v[i], strlen(v[i]));
    return out;
}

static void free_words(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static br_auth_rule_t *compile(const br_config_rule_t *src, size_t n)
{
    br_auth_rule_t *out = br_calloc(n + 1, sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        br_auth_rule_t *r = &out[i];
        r->glob = br_strndup(src[i].repository, strlen(src[i].repository));
        for (const char *p = r->glob; *p != '\0'; p++)
            r->literal += *p != '*';
        r->dstar = strstr(r->glob, "**") != NULL;
        r->users = copy_words(src[i].users, src[i].num_users);
        r->num_users = src[i].num_users;
        r->groups = copy_words(src[i].groups, src[i].num_groups);
        r->num_groups = src[i].num_groups;
        r->actions = src[i].actions;
    }
    return out;
}

static void free_rules(br_auth_rule_t *rules, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rules[i].glob);
        free_words(rules[i].users, rules[i].num_users);
        free_words(rules[i].groups, rules[i].num_groups);
    }
    free(rules);
}

void br_auth__acl_init(br_auth_acl_t *acl, const br_config_t *cfg)
{
    memset(acl, 0, sizeof(*acl));
    acl->rules = compile(cfg->auth.rules, cfg->auth.num_rules);
    acl->num_rules = cfg->auth.num_rules;
    acl->anonymous = compile(cfg->auth.anonymous, cfg->auth.num_anonymous);
    acl->num_anonymous = cfg->auth.num_anonymous;
    acl->groups = br_calloc(cfg->auth.num_groups + 1, sizeof(*acl->groups));
    for (size_t i = 0; i < cfg->auth.num_groups; i++) {
        acl->groups[i].name = br_strndup(cfg->auth.groups[i].name, strlen(cfg->auth.groups[i].name));
        acl->groups[i].members = copy_words(cfg->auth.groups[i].members, cfg->auth.groups[i].num_members);
        acl->groups[i].num_members = cfg->auth.groups[i].num_members;
    }
    acl->num_groups = cfg->auth.num_groups;
    if (cfg->auth.admin_group != NULL)
        acl->admin_group = br_strndup(cfg->auth.admin_group, strlen(cfg->auth.admin_group));
}

void br_auth__acl_dispose(br_auth_acl_t *acl)
{
    free_rules(acl->rules, acl->num_rules);
    free_rules(acl->anonymous, acl->num_anonymous);
    for (size_t i = 0; i < acl->num_groups; i++) {
        free(acl->groups[i].name);
        free_words(acl->groups[i].members, acl->groups[i].num_members);
    }
    free(acl->groups);
    free(acl->admin_group);
    memset(acl, 0, sizeof(*acl));
}

static int in_list(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return 1;
    return 0;
}

static int in_group(const br_auth_acl_t *acl, const char *group, const char *user)
{
    for (size_t i = 0; i < acl->num_groups; i++)
        if (strcmp(acl->groups[i].name, group) == 0)
            return in_list(acl->groups[i].members, acl->groups[i].num_members, user);
    return 0;
}

static int applies(const br_auth_acl_t *acl, const br_auth_rule_t *r, const char *user)
{
    if (user == NULL) /* the anonymous list applies to everyone */
        return 1;
    if (in_list(r->users, r->num_users, user))
        return 1;
    for (size_t i = 0; i < r->num_groups; i++)
        if (in_group(acl, r->groups[i], user))
            return 1;
    return 0;
}

/* Union of the actions of the rules with the most specific glob matching repo. */
static unsigned lookup(const br_auth_acl_t *acl, const br_auth_rule_t *rules, size_t n, const char *user, br_str_t repo)
{
    const br_auth_rule_t *best = NULL;
    for (size_t i = 0; i < n; i++) {
        const br_auth_rule_t *r = &rules[i];
        if (best != NULL && (r->literal < best->literal || (r->literal == best->literal && r->dstar >= best->dstar)))
            continue;
        if (br_glob_match(r->glob, strlen(r->glob), repo.base, repo.len))
            best = r;
    }
    if (best == NULL)
        return 0;
    unsigned actions = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(rules[i].glob, best->glob) == 0 && applies(acl, &rules[i], user))
            actions |= rules[i].actions;
    return actions;
}

unsigned br_auth__acl_actions(const br_auth_acl_t *acl, const char *user, br_str_t repository)
{
    if (user != NULL && acl->admin_group != NULL && in_group(acl, acl->admin_group, user))
        return BR_ACTION_ALL;
    unsigned actions = lookup(acl, acl->anonymous, acl->num_anonymous, NULL, repository);
    if (user != NULL)
        actions |= lookup(acl, acl->rules, acl->num_rules, user, repository);
    return actions;
}

int br_auth__acl_catalog(const br_auth_acl_t *acl, const char *user)
{
    return user != NULL || acl->num_anonymous != 0;
}
