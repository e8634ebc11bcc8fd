/* dg_config - declarative configuration: one table row per option. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg_config.h"
#include "dg_log.h"
#include "dg_util.h"

#define LINE_MAX_LEN 4096

static const dg_option *
find(const dg_option *tab, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (tab[i].type != DG_OPT_GROUP && strcmp(tab[i].name, name) == 0)
			return &tab[i];
	return NULL;
}

static int
parse_bool(const char *v, int *out)
{
	static const char *yes[] = { "yes", "true", "on", "1" };
	static const char *no[] = { "no", "false", "off", "0" };
	int i;

	for (i = 0; i < 4; i++) {
		if (strcmp(v, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcmp(v, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

/* Parse and store one value; on error write why and return the error. */
static dg_err
set_value(const dg_option *o, void *cfg, const char *value, char *why, size_t whylen)
{
	char *field = (char *)cfg + o->offset;
	dg_err err;

	if (o->validate && o->validate(value, why, whylen) != 0)
		return DG_ERR_CONFIG_VALUE;
	switch (o->type) {
	case DG_OPT_STR: {
		char *copy = strdup(value);

		if (!copy)
			return DG_ERR_NOMEM;
		free(*(char **)field);
		*(char **)field = copy;
		return DG_OK;
	}
	case DG_OPT_INT: {
		int64_t v;

		err = dg_util_parse_i64(value, o->min, o->max ? o->max : INT64_MAX, &v);
		if (err != DG_OK) {
			if (err == DG_ERR_RANGE)
				snprintf(why, whylen, "'%s' is out of range [%" PRId64 ", %" PRId64 "]",
				    value, o->min, o->max ? o->max : INT64_MAX);
			else
				snprintf(why, whylen, "'%s' is not an integer", value);
			return DG_ERR_CONFIG_VALUE;
		}
		*(int64_t *)field = v;
		return DG_OK;
	}
	case DG_OPT_SIZE: {
		uint64_t v;

		err = dg_util_parse_size(value, o->max ? (uint64_t)o->max : UINT64_MAX, &v);
		if (err != DG_OK || v < (uint64_t)o->min) {
			snprintf(why, whylen, "'%s' is not a size in [%" PRId64 ", %" PRId64 "] (K/M/G suffixes allowed)",
			    value, o->min, o->max ? o->max : INT64_MAX);
			return DG_ERR_CONFIG_VALUE;
		}
		*(uint64_t *)field = v;
		return DG_OK;
	}
	case DG_OPT_BOOL: {
		int v;

		if (parse_bool(value, &v) != 0) {
			snprintf(why, whylen, "'%s' is not a boolean (yes/no)", value);
			return DG_ERR_CONFIG_VALUE;
		}
		*(int *)field = v;
		return DG_OK;
	}
	case DG_OPT_LIST: {
		dg_config_list *l = (dg_config_list *)field;
		char **items = realloc(l->items, (l->count + 2) * sizeof(*items));

		if (!items)
			return DG_ERR_NOMEM;
		l->items = items;
		if (!(items[l->count] = strdup(value)))
			return DG_ERR_NOMEM;
		items[++l->count] = NULL;
		return DG_OK;
	}
	case DG_OPT_GROUP:
		break;
	}
	return DG_ERR_INTERNAL;
}

dg_err
dg_config_set(const dg_option *tab, size_t n, void *cfg, const char *name,
    const char *value, const char *origin)
{
	const dg_option *o = find(tab, n, name);
	char why[256] = "";
	dg_err err;

	if (!o) {
		dg_log_err("%s: unknown option '%s'", origin, name);
		return DG_ERR_CONFIG_UNKNOWN;
	}
	if ((err = set_value(o, cfg, value, why, sizeof(why))) != DG_OK)
		dg_log_err("%s: %s: %s", origin, name, why[0] ? why : dg_strerror(err));
	return err;
}

int
dg_config_check_log_level(const char *v, char *why, size_t whylen)
{
	if (dg_log_level_parse(v) < 0) {
		snprintf(why, whylen, "'%s' is not one of err, warn, info, debug", v);
		return -1;
	}
	return 0;
}

void
dg_config_split_args(int argc, char **argv, dg_config_cli *cli, char **out, int *nout)
{
	int i, n = 0;

	memset(cli, 0, sizeof(*cli));
	out[n++] = argv[0];
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			cli->file = argv[++i];
		else if (strcmp(argv[i], "--test-config") == 0)
			cli->test_config = 1;
		else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			cli->help = 1;
		else if (strcmp(argv[i], "--version") == 0)
			cli->version = 1;
		else if (strcmp(argv[i], "--dump-config-example") == 0)
			cli->dump_example = 1;
		else if (strcmp(argv[i], "--dump-man-options") == 0)
			cli->dump_man = 1;
		else
			out[n++] = argv[i];
	}
	out[n] = NULL;
	*nout = n;
}

dg_err
dg_config_check_table(const dg_option *tab, size_t n)
{
	size_t i, k, groups = 0;

	for (i = 0; i < n; i++)
		groups += tab[i].type == DG_OPT_GROUP;
	if (groups && n && tab[0].type != DG_OPT_GROUP) {
		dg_log_err("option table: '%s' comes before the first group heading", tab[0].name);
		return DG_ERR_INTERNAL;
	}
	for (i = 0; i < n; i++) {
		if (tab[i].type == DG_OPT_GROUP)
			continue;
		for (k = i + 1; k < n; k++)
			if (tab[k].type != DG_OPT_GROUP && strcmp(tab[i].name, tab[k].name) == 0) {
				dg_log_err("option table: '%s' is defined twice (rows %zu and %zu)", tab[i].name, i, k);
				return DG_ERR_INTERNAL;
			}
	}
	return DG_OK;
}

dg_err
dg_config_defaults(const dg_option *tab, size_t n, void *cfg)
{
	size_t i;
	dg_err err;

	if ((err = dg_config_check_table(tab, n)) != DG_OK)
		return err;
	for (i = 0; i < n; i++) {
		if (!tab[i].defval)
			continue;
		if ((err = dg_config_set(tab, n, cfg, tab[i].name, tab[i].defval, "default")) != DG_OK)
			return err;
	}
	return DG_OK;
}

/* Split a line into name and value in place; returns 0 for a blank or
 * comment line, 1 for an option, -1 with why on a syntax error. */
static int
split_line(char *line, char **name, char **value, char *why, size_t whylen)
{
	char *p = line, *end;

	while (isspace((unsigned char)*p))
		p++;
	if (*p == '\0' || *p == '#')
		return 0;
	*name = p;
	while (*p && !isspace((unsigned char)*p))
		p++;
	if (*p)
		*p++ = '\0';
	while (isspace((unsigned char)*p))
		p++;
	end = p + strlen(p);
	while (end > p && isspace((unsigned char)end[-1]))
		*--end = '\0';
	if (*p == '"') {
		if (end - p < 2 || end[-1] != '"') {
			snprintf(why, whylen, "unterminated quoted value");
			return -1;
		}
		end[-1] = '\0';
		p++;
	}
	if (*p == '\0' && p[-1] != '"') {
		snprintf(why, whylen, "option '%s' has no value", *name);
		return -1;
	}
	*value = p;
	return 1;
}

dg_err
dg_config_load_file(const dg_option *tab, size_t n, void *cfg, const char *path)
{
	char line[LINE_MAX_LEN];
	char origin[512];
	FILE *f;
	unsigned lineno = 0;
	dg_err err = DG_OK;

	if (!(f = fopen(path, "r"))) {
		err = dg_err_from_errno(errno);
		dg_log_err("%s: cannot read: %s", path, strerror(errno));
		return err;
	}
	while (fgets(line, sizeof(line), f)) {
		char why[256], *name, *value;
		size_t len = strlen(line);
		int r;

		lineno++;
		snprintf(origin, sizeof(origin), "%s:%u", path, lineno);
		if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
			dg_log_err("%s: line longer than %d bytes", origin, LINE_MAX_LEN - 2);
			err = DG_ERR_CONFIG;
			break;
		}
		if (memchr(line, '\0', len) != NULL && strlen(line) != len) {
			dg_log_err("%s: NUL byte in line", origin);
			err = DG_ERR_CONFIG;
			break;
		}
		r = split_line(line, &name, &value, why, sizeof(why));
		if (r == 0)
			continue;
		if (r < 0) {
			dg_log_err("%s: %s", origin, why);
			err = DG_ERR_CONFIG;
			break;
		}
		if ((err = dg_config_set(tab, n, cfg, name, value, origin)) != DG_OK)
			break;
	}
	if (err == DG_OK && ferror(f)) {
		dg_log_err("%s: read error", path);
		err = DG_ERR_IO;
	}
	fclose(f);
	return err;
}

dg_err
dg_config_parse_args(const dg_option *tab, size_t n, void *cfg, int argc,
    char **argv, int *optind)
{
	int i = *optind;
	dg_err err = DG_OK;

	while (i < argc) {
		char name[128], origin[160];
		const char *arg = argv[i], *eq, *value;
		const dg_option *o;
		size_t len;

		if (strcmp(arg, "--") == 0) {
			i++;
			break;
		}
		if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
			break;
		arg += 2;
		eq = strchr(arg, '=');
		len = eq ? (size_t)(eq - arg) : strlen(arg);
		if (len >= sizeof(name)) {
			dg_log_err("--%.40s...: option name too long", arg);
			err = DG_ERR_CONFIG_UNKNOWN;
			break;
		}
		memcpy(name, arg, len);
		name[len] = '\0';
		snprintf(origin, sizeof(origin), "--%s", name);
		if (!(o = find(tab, n, name))) {
			dg_log_err("%s: unknown option", origin);
			err = DG_ERR_CONFIG_UNKNOWN;
			break;
		}
		if (eq) {
			value = eq + 1;
			i++;
		} else if (o->type == DG_OPT_BOOL &&
		    (i + 1 >= argc || strncmp(argv[i + 1], "-", 1) == 0 ||
		     parse_bool(argv[i + 1], &(int){0}) != 0)) {
			value = "yes";
			i++;
		} else if (i + 1 < argc) {
			value = argv[i + 1];
			i += 2;
		} else {
			dg_log_err("%s: needs a value", origin);
			err = DG_ERR_USAGE;
			break;
		}
		if ((err = dg_config_set(tab, n, cfg, name, value, origin)) != DG_OK)
			break;
	}
	*optind = i;
	return err;
}

void
dg_config_free(const dg_option *tab, size_t n, void *cfg)
{
	size_t i, k;

	for (i = 0; i < n; i++) {
		char *field = (char *)cfg + tab[i].offset;

		if (tab[i].type == DG_OPT_STR) {
			free(*(char **)field);
			*(char **)field = NULL;
		} else if (tab[i].type == DG_OPT_LIST) {
			dg_config_list *l = (dg_config_list *)field;

			for (k = 0; k < l->count; k++)
				free(l->items[k]);
			free(l->items);
			l->items = NULL;
			l->count = 0;
		}
	}
}

void
dg_config_usage(const dg_option *tab, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (tab[i].type == DG_OPT_GROUP) {
			printf("%s%s:\n", i ? "\n" : "", tab[i].name);
			continue;
		}
		printf("  --%-26s %s%s%s%s\n", tab[i].name, tab[i].help ? tab[i].help : "",
		    tab[i].defval ? " (default: " : "", tab[i].defval ? tab[i].defval : "",
		    tab[i].defval ? ")" : "");
	}
}

static const dg_config_example *
find_example(const dg_config_example *ex, size_t nex, const char *name)
{
	size_t i;

	for (i = 0; i < nex; i++)
		if (strcmp(ex[i].name, name) == 0)
			return &ex[i];
	return NULL;
}

/* A value as the file syntax reads it back: quoted when it has blanks, a
 * '#' or nothing at all. */
static void
print_value(const char *v)
{
	if (*v == '\0' || strpbrk(v, " \t#\""))
		printf("\"%s\"", v);
	else
		printf("%s", v);
}

dg_err
dg_config_print_example(const dg_option *tab, size_t n,
    const dg_config_example *ex, size_t nex, const char *header)
{
	const dg_config_example *e;
	size_t i;
	dg_err err = DG_OK;

	for (i = 0; i < nex; i++)
		if (!find(tab, n, ex[i].name)) {
			dg_log_err("example value for '%s', which is not an option", ex[i].name);
			err = DG_ERR_INTERNAL;
		}
	printf("%s", header);
	for (i = 0; i < n; i++) {
		const dg_option *o = &tab[i];

		if (o->type == DG_OPT_GROUP) {
			printf("\n# ---- %s\n", o->name);
			continue;
		}
		e = find_example(ex, nex, o->name);
		printf("\n# %s%s%s\n", o->help ? o->help : o->name,
		    o->type == DG_OPT_LIST ? " (one line each)" : "",
		    o->reloadable ? " [SIGHUP reloads]" : "");
		if (e && e->active) {
			printf("%s ", o->name);
			print_value(e->value);
			printf("\n");
		} else if (o->defval) {
			printf("#%s ", o->name);
			print_value(o->defval);
			printf("\n");
		} else if (e) {
			printf("# (no default; for example:)\n#%s ", o->name);
			print_value(e->value);
			printf("\n");
		} else {
			dg_log_err("option '%s' has neither a default nor an example value", o->name);
			err = DG_ERR_INTERNAL;
		}
	}
	return err;
}

/* man(7) text: backslashes and hyphens escaped, no line starting with '.'
 * or '\''. */
static void
print_roff(const char *s)
{
	if (*s == '.' || *s == '\'')
		printf("\\&");
	for (; *s; s++) {
		if (*s == '\\')
			printf("\\e");
		else if (*s == '-')
			printf("\\-");
		else
			putchar(*s);
	}
}

void
dg_config_print_man(const dg_option *tab, size_t n)
{
	static const char *metavar[] = {
		[DG_OPT_STR] = "VALUE", [DG_OPT_INT] = "N", [DG_OPT_SIZE] = "SIZE",
		[DG_OPT_BOOL] = "yes|no", [DG_OPT_LIST] = "VALUE", [DG_OPT_GROUP] = "",
	};
	size_t i;

	for (i = 0; i < n; i++) {
		const dg_option *o = &tab[i];

		if (o->type == DG_OPT_GROUP) {
			printf(".SS ");
			print_roff(o->name);
			printf("\n");
			continue;
		}
		printf(".TP\n.BI \\-\\-");
		print_roff(o->name);
		printf(" \" %s\"\n", metavar[o->type]);
		print_roff(o->help ? o->help : "");
		printf(".");
		if (o->defval) {
			printf(" Default: ");
			print_roff(*o->defval ? o->defval : "\"\"");
			printf(".");
		}
		if (o->type == DG_OPT_LIST)
			printf(" Repeatable.");
		if (o->reloadable)
			printf(" SIGHUP reloads it.");
		printf("\n");
	}
}

/* Options that hold secrets are never printed. */
static int
is_secret(const char *name)
{
	return strstr(name, "password") || strstr(name, "psk") ||
	    strstr(name, "secret") || strstr(name, "token");
}

void
dg_config_dump(const dg_option *tab, size_t n, const void *cfg)
{
	size_t i, k;

	for (i = 0; i < n; i++) {
		const char *field = (const char *)cfg + tab[i].offset;

		switch (tab[i].type) {
		case DG_OPT_STR:
			if (*(char *const *)field)
				printf("%s \"%s\"\n", tab[i].name,
				    is_secret(tab[i].name) ? "<redacted>" : *(char *const *)field);
			break;
		case DG_OPT_INT:
			printf("%s %" PRId64 "\n", tab[i].name, *(const int64_t *)field);
			break;
		case DG_OPT_SIZE:
			printf("%s %" PRIu64 "\n", tab[i].name, *(const uint64_t *)field);
			break;
		case DG_OPT_BOOL:
			printf("%s %s\n", tab[i].name, *(const int *)field ? "yes" : "no");
			break;
		case DG_OPT_LIST: {
			const dg_config_list *l = (const dg_config_list *)field;

			for (k = 0; k < l->count; k++)
				printf("%s \"%s\"\n", tab[i].name, l->items[k]);
			break;
		}
		case DG_OPT_GROUP:
			break;
		}
	}
}
