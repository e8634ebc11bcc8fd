/* dg_topic - the shadow topic names under a root template.
 *
 * A template holds "{id}" once, as a whole topic level: "state/{id}" (the
 * pattern's names, the default) or "$aws/things/{id}/shadow" (AWS IoT).
 * Under the root: update, update/accepted, update/rejected, update/delta,
 * update/documents, get, get/accepted, get/rejected, delete,
 * delete/accepted, delete/rejected.
 */
#ifndef DG_TOPIC_H
#define DG_TOPIC_H

#include <stddef.h>

#include "dg_err.h"

#define DG_TOPIC_DEFAULT_ROOT "state/{id}"
#define DG_TOPIC_AWS_ROOT "$aws/things/{id}/shadow"
#define DG_TOPIC_ID_MAX 128

typedef struct dg_topic dg_topic;

/* Parse a root template; "aws" is accepted as the AWS preset. NULL with
 * *err = DG_ERR_CONFIG_VALUE (logged) when it is not a valid template. */
dg_topic *dg_topic_new(const char *tmpl, dg_err *err);
void dg_topic_free(dg_topic *t);

/* "<root of id>/<leaf>" into buf; DG_ERR_RANGE if it does not fit,
 * DG_ERR_INVAL if id is not a valid device id. */
dg_err dg_topic_build(const dg_topic *t, const char *id, const char *leaf,
    char *buf, size_t size);
/* The subscription filter for leaf on every device ("+" for the id). */
dg_err dg_topic_filter(const dg_topic *t, const char *leaf, char *buf, size_t size);

/* Split an incoming topic into id and leaf (e.g. "update/delta"). Returns 1
 * and fills id (DG_TOPIC_ID_MAX+1 bytes) and *leaf (points into topic) if
 * topic lies under the template, else 0. The id is not validated. */
int dg_topic_match(const dg_topic *t, const char *topic, char *id, const char **leaf);

/* 1 if id is a valid device id: 1-128 bytes of [A-Za-z0-9_:.-]. */
int dg_topic_id_valid(const char *id);

#endif
