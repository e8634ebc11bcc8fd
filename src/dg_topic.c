/* dg_topic - the shadow topic names under a root template. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg_log.h"
#include "dg_topic.h"

struct dg_topic {
	char *prefix; /* before {id} */
	char *suffix; /* after {id}, "" or "/..." */
};

int
dg_topic_id_valid(const char *id)
{
	size_t n;

	if (!id)
		return 0;
	n = strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_:.-");
	return n > 0 && n <= DG_TOPIC_ID_MAX && id[n] == '\0' &&
	    strcmp(id, ".") != 0 && strcmp(id, "..") != 0;
}

dg_topic *
dg_topic_new(const char *tmpl, dg_err *err)
{
	const char *at, *after;
	dg_topic *t;

	if (tmpl && strcmp(tmpl, "aws") == 0)
		tmpl = DG_TOPIC_AWS_ROOT;
	if (!tmpl || !(at = strstr(tmpl, "{id}")) || strstr(at + 4, "{id}") ||
	    strpbrk(tmpl, "+#") || (at != tmpl && at[-1] != '/') ||
	    (at[4] != '\0' && at[4] != '/') || tmpl[strlen(tmpl) - 1] == '/') {
		dg_log_err("topic root '%s': must hold {id} once as a whole level, no wildcards, no trailing '/'",
		    tmpl ? tmpl : "");
		*err = DG_ERR_CONFIG_VALUE;
		return NULL;
	}
	after = at + 4;
	if (!(t = calloc(1, sizeof(*t))) ||
	    !(t->prefix = strndup(tmpl, (size_t)(at - tmpl))) ||
	    !(t->suffix = strdup(after))) {
		dg_topic_free(t);
		*err = DG_ERR_NOMEM;
		return NULL;
	}
	*err = DG_OK;
	return t;
}

void
dg_topic_free(dg_topic *t)
{
	if (!t)
		return;
	free(t->prefix);
	free(t->suffix);
	free(t);
}

dg_err
dg_topic_build(const dg_topic *t, const char *id, const char *leaf, char *buf, size_t size)
{
	int n;

	if (!dg_topic_id_valid(id))
		return DG_ERR_INVAL;
	n = snprintf(buf, size, "%s%s%s%s%s", t->prefix, id, t->suffix,
	    leaf && *leaf ? "/" : "", leaf ? leaf : "");
	return n < 0 || (size_t)n >= size ? DG_ERR_RANGE : DG_OK;
}

dg_err
dg_topic_filter(const dg_topic *t, const char *leaf, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s+%s%s%s", t->prefix, t->suffix,
	    leaf && *leaf ? "/" : "", leaf ? leaf : "");

	return n < 0 || (size_t)n >= size ? DG_ERR_RANGE : DG_OK;
}

int
dg_topic_match(const dg_topic *t, const char *topic, char *id, const char **leaf)
{
	size_t plen = strlen(t->prefix), slen = strlen(t->suffix), idlen;
	const char *p, *end;

	if (strncmp(topic, t->prefix, plen) != 0)
		return 0;
	p = topic + plen;
	end = strchr(p, '/');
	if (!end)
		return 0;
	idlen = (size_t)(end - p);
	if (idlen == 0 || idlen > DG_TOPIC_ID_MAX)
		return 0;
	if (strncmp(end, t->suffix, slen) != 0 || end[slen] != '/')
		return 0;
	memcpy(id, p, idlen);
	id[idlen] = '\0';
	*leaf = end + slen + 1;
	return 1;
}
