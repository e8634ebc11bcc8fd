/* deltagate manifest - write an import manifest version 5.0. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg_cli.h"
#include "dg_log.h"
#include "dg_manifest.h"
#include "dg_util.h"

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: deltagate manifest --update-provider P --update-name N --update-version V\n"
	    "         --compat KEY=VALUE... [--compat ...] --step handler=H [properties=JSON]\n"
	    "         [description=D] [files=A,B] [--step ...] --file path=F\n"
	    "         [downloadHandler=ID] [properties=JSON] [--related-file path=D\n"
	    "         [properties=JSON] [source=S]]... [--file ...] [--description TEXT]\n"
	    "         [--output FILE]\n"
	    "\n"
	    "Writes an import manifest version 5.0 (as `az iot du update init v5`) to\n"
	    "stdout or, atomically, to FILE. Sizes and base64 SHA-256 hashes come from\n"
	    "the files; --related-file belongs to the --file before it; source=S sets\n"
	    "microsoft.sourceFileHashAlgorithm/sourceFileHash from the source image S.\n"
	    "Steps without files= use every file. SOURCE_DATE_EPOCH fixes\n"
	    "createdDateTime. Exit status: 0 written, 1 file error, 2 bad options.\n");
}

/* Number of key=value words after argv[i] (up to the next --option). */
static size_t
count_values(int argc, char **argv, int i)
{
	size_t n = 0;

	while (i + 1 + (int)n < argc && strncmp(argv[i + 1 + n], "--", 2) != 0)
		n++;
	return n;
}

int
dg_cli_manifest(int argc, char **argv)
{
	const char *provider = NULL, *name = NULL, *version = NULL, *output = NULL;
	char why[512] = "";
	dg_manifest *m = NULL;
	json_t *doc = NULL;
	char *text = NULL;
	int rc = DG_EXIT_USAGE, i;
	dg_err e;

	if (!(m = dg_manifest_new(&e))) {
		fprintf(stderr, "deltagate manifest: %s\n", dg_strerror(e));
		return DG_EXIT_FAIL;
	}
	for (i = 1; i < argc; i++) {
		const char *opt = argv[i];
		size_t n;

		if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
			usage(stdout);
			rc = DG_EXIT_OK;
			goto out;
		}
		if (strcmp(opt, "--update-provider") == 0 || strcmp(opt, "--update-name") == 0 ||
		    strcmp(opt, "--update-version") == 0 || strcmp(opt, "--output") == 0 ||
		    strcmp(opt, "--description") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "deltagate manifest: %s needs a value\n", opt);
				goto out;
			}
			if (strcmp(opt, "--update-provider") == 0)
				provider = argv[++i];
			else if (strcmp(opt, "--update-name") == 0)
				name = argv[++i];
			else if (strcmp(opt, "--update-version") == 0)
				version = argv[++i];
			else if (strcmp(opt, "--output") == 0)
				output = argv[++i];
			else if ((e = dg_manifest_set_description(m, argv[++i], why, sizeof(why))) != DG_OK)
				goto failed;
			continue;
		}
		n = count_values(argc, argv, i);
		if (strcmp(opt, "--compat") == 0)
			e = dg_manifest_add_compat(m, argv + i + 1, n, why, sizeof(why));
		else if (strcmp(opt, "--step") == 0)
			e = dg_manifest_add_step(m, argv + i + 1, n, why, sizeof(why));
		else if (strcmp(opt, "--file") == 0)
			e = dg_manifest_add_file(m, argv + i + 1, n, why, sizeof(why));
		else if (strcmp(opt, "--related-file") == 0)
			e = dg_manifest_add_related_file(m, argv + i + 1, n, why, sizeof(why));
		else {
			fprintf(stderr, "deltagate manifest: unknown option '%s'\n", opt);
			usage(stderr);
			goto out;
		}
		if (e != DG_OK)
			goto failed;
		i += (int)n;
	}
	if (!provider || !name || !version) {
		fprintf(stderr, "deltagate manifest: --update-provider, --update-name and "
		    "--update-version are required\n");
		goto out;
	}
	if ((e = dg_manifest_set_update_id(m, provider, name, version, why, sizeof(why))) != DG_OK)
		goto failed;
	if (!(doc = dg_manifest_build(m, NULL, &e, why, sizeof(why))))
		goto failed;
	if (!(text = json_dumps(doc, JSON_INDENT(2)))) {
		e = DG_ERR_NOMEM;
		goto failed;
	}
	if (output) {
		size_t len = strlen(text);

		text[len] = '\n';
		e = dg_util_write_atomic(output, text, len + 1, 0644);
		text[len] = '\0';
		if (e != DG_OK) {
			snprintf(why, sizeof(why), "%s: %s", output, dg_strerror(e));
			goto failed;
		}
	} else if (printf("%s\n", text) < 0 || fflush(stdout) != 0) {
		fprintf(stderr, "deltagate manifest: cannot write to stdout\n");
		rc = DG_EXIT_FAIL;
		goto out;
	}
	rc = DG_EXIT_OK;
	goto out;
failed:
	/* a value the schema refuses is a usage error; files and memory are not */
	fprintf(stderr, "deltagate manifest: %s\n", why[0] ? why : dg_strerror(e));
	rc = e == DG_ERR_MANIFEST ? DG_EXIT_USAGE : DG_EXIT_FAIL;
out:
	free(text);
	json_decref(doc);
	dg_manifest_free(m);
	return rc;
}
