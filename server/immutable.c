/*
 * Immutable tags (config 'immutable'): for a repository, the rule with the
 * most specific matching repository glob decides, as in the access rules
 * (auth/acl.c): most literal characters, then a glob without '**' over one
 * with it. A tag one of its tag globs matches may be pushed once and pushed
 * again with the same manifest (clients retry), never moved or deleted.
 * Storage makes the decisions that race (br_manifest_put's tag_immutable,
 * br_manifest_delete_unless) inside its write transactions. The same
 * lookup (br_rule_for) picks the retention rule of a repository (gc.c).
 */
#include <string.h>
#include "server/server.h"

static void specificity(const char *glob, size_t *literal, int *dstar)
{
    *literal = 0;
    for (const char *p = glob; *p != '\0'; p++)
        *literal += *p != '*';
    *dstar = strstr(glob, "**") != NULL;
}

const br_config_rule_t *br_immutable_rule(const br_config_t *c, br_str_t repo)
{
    return br_rule_for(c->immutable, c->num_immutable, repo);
}

const br_config_rule_t *br_rule_for(const br_config_rule_t *rules, size_t n, br_str_t repo)
{
    const br_config_rule_t *best = NULL;
    size_t best_lit = 0;
    int best_dstar = 0;
    for (size_t i = 0; i < n; i++) {
        const br_config_rule_t *r = &rules[i];
        size_t lit;
        int dstar;
        specificity(r->repository, &lit, &dstar);
        if (best != NULL && (lit < best_lit || (lit == best_lit && dstar >= best_dstar)))
            continue;
        if (br_glob_match(r->repository, strlen(r->repository), repo.base, repo.len)) {
            best = r;
            best_lit = lit;
            best_dstar = dstar;
        }
    }
    return best;
}

const char *br_immutable_glob(const br_config_rule_t *r, br_str_t tag)
{
    for (size_t i = 0; r != NULL && i < r->num_tags; i++)
        if (br_glob_match(r->tags[i], strlen(r->tags[i]), tag.base, tag.len))
            return r->tags[i];
    return NULL;
}
