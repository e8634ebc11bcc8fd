/* dg_delta - the delta engine's small entry points: result codes and
 * inspect (see dg_delta.h; the stages are the other dg_delta_*.c files). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dg_bcj.h"
#include "dg_delta_internal.h"

uint32_t
dg_delta_result_code(dg_err err)
{
	if (err == DG_OK)
		return 0;
	return DG_DELTA_RESULT_BASE | ((uint32_t)err & 0xFFFFFu);
}

/* ---- inspect ---- */
struct dg_delta_info {
	struct header h;
	struct item *items;
	uint64_t size;
	char (*codecs)[32];
};

static const char *
kind_name(unsigned k)
{
	switch (k) {
	case KIND_RAW: return "raw";
	case KIND_COPY: return "copy";
	case KIND_BSDIFF: return "bsdiff";
	case KIND_ZPATCH: return "zstd-patch-from";
	case KIND_BSDIFF_X64: return "bsdiff-x86-64-predict";
	case KIND_BSDIFF_MCU: return "bsdiff-mcu-predict";
	case KIND_ARCHIVE: return "archive";
	case KIND_ARCHIVE_SPLIT: return "archive-chunked";
	default: return "unknown";
	}
}

static const char *
codec_name(uint32_t c)
{
	switch (c) {
	case CODEC_NONE: return "none";
	case CODEC_ZSTD: return "zstd";
	case CODEC_XZ: return "xz";
	default: return "unknown";
	}
}

dg_err
dg_delta_inspect_file(const char *path, dg_delta_info **out)
{
	struct din d = { NULL, -1, 0 };
	struct stat st;
	dg_delta_info *info = NULL;
	uint32_t i;
	dg_err err;

	*out = NULL;
	d.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (d.fd < 0 || fstat(d.fd, &st) < 0) {
		err = dg_err_from_errno(errno);
		goto fail;
	}
	d.size = (uint64_t)st.st_size;
	info = calloc(1, sizeof(*info));
	if (!info) {
		err = DG_ERR_NOMEM;
		goto fail;
	}
	info->size = d.size;
	if ((err = dg_delta_parse(&d, 0, &info->h, &info->items)))
		goto fail;
	info->codecs = calloc(info->h.nitems ? info->h.nitems : 1, sizeof(*info->codecs));
	if (!info->codecs) {
		err = DG_ERR_NOMEM;
		goto fail;
	}
	for (i = 0; i < info->h.nitems; i++) {
		const struct item *it = &info->items[i];

		if (it->kind == KIND_BSDIFF || it->kind == KIND_BSDIFF_X64 ||
		    it->kind == KIND_BSDIFF_MCU)
			snprintf(info->codecs[i], sizeof(info->codecs[i]), "%s,%s,%s,%s",
				 codec_name(it->p[0].codec), codec_name(it->p[1].codec),
				 codec_name(it->p[2].codec), codec_name(it->p[3].codec));
		else if (it->kind == KIND_COPY)
			snprintf(info->codecs[i], sizeof(info->codecs[i]), "-");
		else
			snprintf(info->codecs[i], sizeof(info->codecs[i]), "%s",
				 codec_name(it->p[0].codec));
	}
	close(d.fd);
	*out = info;
	return DG_OK;
fail:
	if (d.fd >= 0)
		close(d.fd);
	dg_delta_info_free(info);
	return err;
}

void
dg_delta_info_free(dg_delta_info *info)
{
	if (!info)
		return;
	free(info->items);
	free(info->codecs);
	dg_delta_archive_free(info->h.ar);
	free(info);
}

uint32_t dg_delta_info_version(const dg_delta_info *i) { return i->h.version; }
uint64_t dg_delta_info_source_size(const dg_delta_info *i) { return i->h.src_size; }
uint64_t dg_delta_info_target_size(const dg_delta_info *i) { return i->h.tgt_size; }
uint64_t dg_delta_info_delta_size(const dg_delta_info *i) { return i->size; }
const uint8_t *dg_delta_info_source_sha256(const dg_delta_info *i) { return i->h.src_sha; }
const uint8_t *dg_delta_info_target_sha256(const dg_delta_info *i) { return i->h.tgt_sha; }
size_t dg_delta_info_items(const dg_delta_info *i) { return i->h.nitems; }

void
dg_delta_info_item(const dg_delta_info *info, size_t i, dg_delta_item_info *out)
{
	const struct item *it = &info->items[i];

	out->kind = kind_name(it->kind);
	out->filter = dg_bcj_name((dg_bcj_filter)it->filter);
	out->out_len = it->out_len;
	out->src_off = it->src_off;
	out->src_len = it->src_len;
	out->payload = it->p[0].clen + it->p[1].clen + it->p[2].clen + it->p[3].clen;
	out->codecs = info->codecs[i];
}
