/* dg_sproto - the serial protocol engines by name (issue 12). */
#include "config.h"

#include <string.h>

#include "dg_sproto.h"

static const struct dg_sproto_ops *const engines[] = {
	&dg_sproto_ymodem,
	&dg_sproto_stm32,
	&dg_sproto_smp,
};

const struct dg_sproto_ops *
dg_sproto_find(const char *name)
{
	size_t i;

	if (!name)
		return NULL;
	for (i = 0; i < sizeof(engines) / sizeof(engines[0]); i++) {
		if (strcmp(engines[i]->name, name) == 0)
			return engines[i];
	}
	return NULL;
}
