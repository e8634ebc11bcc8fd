/* deltagate cache - manage an image cache from the command line. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dg_cache.h"
#include "dg_cli.h"
#include "dg_log.h"
#include "dg_util.h"

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: deltagate cache --root DIR [--quota BYTES] [--verify-on-read]\n"
	    "                       [--log LEVEL] COMMAND [ARGS]\n"
	    "\n"
	    "commands:\n"
	    "  import --provider P FILE...      copy files into the cache\n"
	    "  import --adopt [--provider P] DIR...\n"
	    "                                   import a directory of the same layout:\n"
	    "                                   DIR/<provider>/sha256-..., or with\n"
	    "                                   --provider, DIR/sha256-...; every file\n"
	    "                                   is hashed and must match its name\n"
	    "  path --provider P (FILE | --sha256 HEX)\n"
	    "                                   print the path an entry has or would have\n"
	    "  list [--json]                    list entries, least recently used first\n"
	    "  verify                           re-hash every entry; quarantine damage\n"
	    "  gc                               evict down to --quota (LRU, unpinned)\n"
	    "  pin --provider P --sha256 HEX --holder NAME\n"
	    "  unpin --provider P --sha256 HEX --holder NAME\n"
	    "  unpin --holder-prefix PREFIX     drop every pin of matching holders\n"
	    "\n"
	    "BYTES takes a K, M or G suffix. Exit status: 0 ok, 1 failed (including\n"
	    "damage found by verify or adopt), 2 usage.\n");
}

/* "--name value" or "--name=value" at argv[*i]; NULL if argv[*i] is not
 * that option; *bad set if the value is missing. */
static const char *
opt_value(int argc, char **argv, int *i, const char *name, int *bad)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		fprintf(stderr, "deltagate cache: %s needs a value\n", name);
		*bad = 1;
		return NULL;
	}
	return argv[++*i];
}

struct args {
	const char *provider, *sha256, *holder, *holder_prefix;
	int adopt, json;
	int npos;
	char **pos;
};

/* Parse a command's options; positional arguments are collected. */
static int
parse_cmd(int argc, char **argv, struct args *a)
{
	int i, bad = 0;

	memset(a, 0, sizeof(*a));
	if (!(a->pos = calloc((size_t)argc + 1, sizeof(char *))))
		return -1;
	for (i = 1; i < argc; i++) {
		const char *v;

		if ((v = opt_value(argc, argv, &i, "--provider", &bad)))
			a->provider = v;
		else if ((v = opt_value(argc, argv, &i, "--sha256", &bad)))
			a->sha256 = v;
		else if ((v = opt_value(argc, argv, &i, "--holder", &bad)))
			a->holder = v;
		else if ((v = opt_value(argc, argv, &i, "--holder-prefix", &bad)))
			a->holder_prefix = v;
		else if (bad)
			return -1;
		else if (strcmp(argv[i], "--adopt") == 0)
			a->adopt = 1;
		else if (strcmp(argv[i], "--json") == 0)
			a->json = 1;
		else if (strcmp(argv[i], "--") == 0) {
			for (i++; i < argc; i++)
				a->pos[a->npos++] = argv[i];
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, "deltagate cache %s: unknown option '%s'\n", argv[0], argv[i]);
			return -1;
		} else {
			a->pos[a->npos++] = argv[i];
		}
	}
	return bad ? -1 : 0;
}

static int
need_provider(const struct args *a, const char *cmd)
{
	if (!a->provider) {
		fprintf(stderr, "deltagate cache %s: --provider is required\n", cmd);
		return 0;
	}
	if (dg_cache_provider_check(a->provider) != DG_OK) {
		fprintf(stderr, "deltagate cache %s: invalid provider '%s' (empty, '.', '..', "
		    "a leading '.', a '/' or over 255 bytes)\n", cmd, a->provider);
		return 0;
	}
	return 1;
}

static int
parse_sha(const char *hex, unsigned char sha[DG_CACHE_SHA256_LEN], const char *cmd)
{
	if (!hex) {
		fprintf(stderr, "deltagate cache %s: --sha256 HEX is required\n", cmd);
		return 0;
	}
	if (dg_util_hex_decode(hex, sha, DG_CACHE_SHA256_LEN) != DG_OK) {
		fprintf(stderr, "deltagate cache %s: '%s' is not 64 hex digits\n", cmd, hex);
		return 0;
	}
	return 1;
}

static void
print_report(const char *what, const dg_cache_report *r)
{
	printf("%s: %" PRIu64 " checked, %" PRIu64 " imported, %" PRIu64 " dropped, %"
	    PRIu64 " damaged, %" PRIu64 " evicted, %" PRIu64 " skipped\n", what,
	    r->checked, r->adopted, r->dropped, r->quarantined, r->evicted, r->skipped);
}

static int
cmd_import(dg_cache *c, const struct args *a)
{
	int i, rc = DG_EXIT_OK;

	if (a->npos == 0) {
		fprintf(stderr, "deltagate cache import: no %s given\n", a->adopt ? "DIR" : "FILE");
		return DG_EXIT_USAGE;
	}
	if (a->adopt) {
		if (a->provider && !need_provider(a, "import"))
			return DG_EXIT_USAGE;
		for (i = 0; i < a->npos; i++) {
			dg_cache_report r;
			dg_err err = dg_cache_adopt(c, a->pos[i], a->provider, &r);

			print_report(a->pos[i], &r);
			if (err != DG_OK) {
				fprintf(stderr, "deltagate cache import: %s: %s\n", a->pos[i],
				    dg_strerror(err));
				rc = DG_EXIT_FAIL;
			}
		}
		return rc;
	}
	if (!need_provider(a, "import"))
		return DG_EXIT_USAGE;
	for (i = 0; i < a->npos; i++) {
		dg_cache_entry e;
		dg_err err = dg_cache_insert_file(c, a->provider, a->pos[i], NULL, &e);
		char *p;

		if (err != DG_OK) {
			fprintf(stderr, "deltagate cache import: %s: %s\n", a->pos[i], dg_strerror(err));
			rc = DG_EXIT_FAIL;
			continue;
		}
		if ((p = dg_cache_path(c, e.provider, e.sha256, &err))) {
			printf("%s\n", p);
			free(p);
		}
	}
	return rc;
}

static int
cmd_path(const char *root, const struct args *a)
{
	unsigned char sha[DG_CACHE_SHA256_LEN];
	char name[DG_CACHE_NAME_MAX];
	dg_err err;

	if (!need_provider(a, "path"))
		return DG_EXIT_USAGE;
	if (a->sha256) {
		if (a->npos != 0) {
			fprintf(stderr, "deltagate cache path: give FILE or --sha256, not both\n");
			return DG_EXIT_USAGE;
		}
		if (!parse_sha(a->sha256, sha, "path"))
			return DG_EXIT_USAGE;
	} else {
		if (a->npos != 1) {
			fprintf(stderr, "deltagate cache path: give one FILE or --sha256 HEX\n");
			return DG_EXIT_USAGE;
		}
		if ((err = dg_cache_hash_file(a->pos[0], sha, NULL)) != DG_OK) {
			fprintf(stderr, "deltagate cache path: %s: %s\n", a->pos[0], dg_strerror(err));
			return DG_EXIT_FAIL;
		}
	}
	dg_cache_name_encode(sha, name);
	printf("%s/%s/%s\n", root, a->provider, name);
	return DG_EXIT_OK;
}

struct list_ctx {
	dg_cache *c;
	json_t *arr;
	int failed;
};

static int
list_one(const dg_cache_entry *e, void *arg)
{
	struct list_ctx *l = arg;
	char hex[2 * DG_CACHE_SHA256_LEN + 1], *p;
	dg_err err;

	dg_util_hex_encode(e->sha256, DG_CACHE_SHA256_LEN, hex);
	if (!(p = dg_cache_path(l->c, e->provider, e->sha256, &err))) {
		l->failed = 1;
		return 1;
	}
	if (l->arr) {
		json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:s}",
		    "provider", e->provider, "sha256", hex, "size", (json_int_t)e->size,
		    "pins", (json_int_t)e->pins, "inserted_ms", (json_int_t)e->inserted_ms,
		    "used_ms", (json_int_t)e->used_ms, "path", p);

		if (!o || json_array_append_new(l->arr, o) != 0)
			l->failed = 1;
	} else {
		printf("%s\t%s\t%" PRIu64 "\t%" PRIu64 "\t%s\n", e->provider, hex, e->size,
		    e->pins, p);
	}
	free(p);
	return l->failed;
}

static int
cmd_list(dg_cache *c, const struct args *a)
{
	struct list_ctx l = { c, NULL, 0 };
	dg_err err;

	if (a->npos) {
		fprintf(stderr, "deltagate cache list: unexpected argument '%s'\n", a->pos[0]);
		return DG_EXIT_USAGE;
	}
	if (a->json && !(l.arr = json_array()))
		return DG_EXIT_FAIL;
	err = dg_cache_foreach(c, list_one, &l);
	if (err != DG_OK || l.failed) {
		fprintf(stderr, "deltagate cache list: %s\n", dg_strerror(err ? err : DG_ERR_NOMEM));
		json_decref(l.arr);
		return DG_EXIT_FAIL;
	}
	if (l.arr) {
		if (json_dumpf(l.arr, stdout, JSON_INDENT(2)) != 0) {
			json_decref(l.arr);
			return DG_EXIT_FAIL;
		}
		printf("\n");
		json_decref(l.arr);
	}
	return DG_EXIT_OK;
}

static int
cmd_pin(dg_cache *c, const struct args *a, int pin)
{
	const char *cmd = pin ? "pin" : "unpin";
	unsigned char sha[DG_CACHE_SHA256_LEN];
	dg_err err;

	if (!pin && a->holder_prefix) {
		uint64_t n;

		if (a->provider || a->sha256 || a->holder) {
			fprintf(stderr, "deltagate cache unpin: --holder-prefix goes alone\n");
			return DG_EXIT_USAGE;
		}
		if ((err = dg_cache_unpin_holder(c, a->holder_prefix, &n)) != DG_OK) {
			fprintf(stderr, "deltagate cache unpin: %s\n", dg_strerror(err));
			return DG_EXIT_FAIL;
		}
		printf("%" PRIu64 " pins removed\n", n);
		return DG_EXIT_OK;
	}
	if (!need_provider(a, cmd) || !parse_sha(a->sha256, sha, cmd))
		return DG_EXIT_USAGE;
	if (!a->holder || !*a->holder) {
		fprintf(stderr, "deltagate cache %s: --holder NAME is required\n", cmd);
		return DG_EXIT_USAGE;
	}
	if (a->npos) {
		fprintf(stderr, "deltagate cache %s: unexpected argument '%s'\n", cmd, a->pos[0]);
		return DG_EXIT_USAGE;
	}
	err = pin ? dg_cache_pin(c, a->provider, sha, a->holder) :
	    dg_cache_unpin(c, a->provider, sha, a->holder);
	if (err != DG_OK) {
		fprintf(stderr, "deltagate cache %s: %s\n", cmd, dg_strerror(err));
		return DG_EXIT_FAIL;
	}
	return DG_EXIT_OK;
}

int
dg_cli_cache(int argc, char **argv)
{
	const char *root = NULL, *cmd;
	uint64_t quota = 0;
	unsigned flags = 0;
	struct args a;
	dg_cache *c = NULL;
	dg_cache_report r, opened;
	dg_err err;
	int i, bad = 0, rc = DG_EXIT_FAIL;

	memset(&a, 0, sizeof(a));
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *v;

		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return DG_EXIT_OK;
		} else if ((v = opt_value(argc, argv, &i, "--root", &bad))) {
			root = v;
		} else if ((v = opt_value(argc, argv, &i, "--quota", &bad))) {
			if (dg_util_parse_size(v, UINT64_MAX, &quota) != DG_OK) {
				fprintf(stderr, "deltagate cache: bad --quota '%s'\n", v);
				return DG_EXIT_USAGE;
			}
		} else if ((v = opt_value(argc, argv, &i, "--log", &bad))) {
			int lvl = dg_log_level_parse(v);

			if (lvl < 0) {
				fprintf(stderr, "deltagate cache: bad --log '%s'\n", v);
				return DG_EXIT_USAGE;
			}
			dg_log_set_level((dg_log_level)lvl);
		} else if (bad) {
			return DG_EXIT_USAGE;
		} else if (strcmp(argv[i], "--verify-on-read") == 0) {
			flags |= DG_CACHE_VERIFY_ON_READ;
		} else {
			fprintf(stderr, "deltagate cache: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return DG_EXIT_USAGE;
		}
	}
	if (!root || !*root) {
		fprintf(stderr, "deltagate cache: --root DIR is required\n");
		usage(stderr);
		return DG_EXIT_USAGE;
	}
	if (i >= argc) {
		fprintf(stderr, "deltagate cache: no command given\n");
		usage(stderr);
		return DG_EXIT_USAGE;
	}
	cmd = argv[i];
	if (strcmp(cmd, "import") != 0 && strcmp(cmd, "path") != 0 &&
	    strcmp(cmd, "list") != 0 && strcmp(cmd, "verify") != 0 &&
	    strcmp(cmd, "gc") != 0 && strcmp(cmd, "pin") != 0 && strcmp(cmd, "unpin") != 0) {
		fprintf(stderr, "deltagate cache: unknown command '%s'\n", cmd);
		usage(stderr);
		return DG_EXIT_USAGE;
	}
	if (parse_cmd(argc - i, argv + i, &a) != 0) {
		rc = DG_EXIT_USAGE;
		goto done;
	}
	/* path computes a name: it needs no cache and must not create one */
	if (strcmp(cmd, "path") == 0) {
		rc = cmd_path(root, &a);
		goto done;
	}
	if ((strcmp(cmd, "verify") == 0 || strcmp(cmd, "gc") == 0) && a.npos) {
		fprintf(stderr, "deltagate cache %s: unexpected argument '%s'\n", cmd, a.pos[0]);
		rc = DG_EXIT_USAGE;
		goto done;
	}
	if (strcmp(cmd, "gc") == 0 && quota == 0) {
		fprintf(stderr, "deltagate cache gc: --quota BYTES is required\n");
		rc = DG_EXIT_USAGE;
		goto done;
	}
	if (!(c = dg_cache_new(root, quota, flags, &opened, &err))) {
		fprintf(stderr, "deltagate cache: %s: %s\n", root, dg_strerror(err));
		rc = DG_EXIT_FAIL;
		goto done;
	}
	if (strcmp(cmd, "import") == 0) {
		rc = cmd_import(c, &a);
	} else if (strcmp(cmd, "list") == 0) {
		rc = cmd_list(c, &a);
	} else if (strcmp(cmd, "verify") == 0) {
		err = dg_cache_verify(c, &r);
		print_report("verify", &r);
		if (err != DG_OK)
			fprintf(stderr, "deltagate cache verify: %s\n", dg_strerror(err));
		rc = err == DG_OK ? DG_EXIT_OK : DG_EXIT_FAIL;
	} else if (strcmp(cmd, "gc") == 0) {
		uint64_t bytes = 0, n = 0;

		err = dg_cache_gc(c, &r);
		dg_cache_usage(c, &bytes, NULL, &n);
		/* opening already enforces the quota: count both */
		printf("gc: %" PRIu64 " evicted, %" PRIu64 " entries, %" PRIu64 " bytes\n",
		    opened.evicted + r.evicted, n, bytes);
		if (err != DG_OK)
			fprintf(stderr, "deltagate cache gc: %s\n", dg_strerror(err));
		rc = err == DG_OK ? DG_EXIT_OK : DG_EXIT_FAIL;
	} else {
		rc = cmd_pin(c, &a, strcmp(cmd, "pin") == 0);
	}
done:
	dg_cache_free(c);
	free(a.pos);
	return rc;
}
