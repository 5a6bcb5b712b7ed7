/* The event sink the router's enforcement tests hand to rt_enforce: it keeps
 * a count and the last event's kind, message, count, actions and blocked flag. */
#ifndef WEFT_TEST_RT_SINK_H
#define WEFT_TEST_RT_SINK_H

#include <jansson.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    int n;
    char last_kind[32];
    char last_msg[256];
    int last_count;
    int has_actions;
    char last_actions[64]; /* joined by commas */
    int blocked;
} sink_log;

static void sink(void *arg, const json_t *ev)
{
    sink_log *l = arg;
    const json_t *a = json_object_get(ev, "actions"), *v;
    size_t i;

    l->n++;
    snprintf(l->last_kind, sizeof(l->last_kind), "%s",
             json_string_value(json_object_get(ev, "kind")));
    snprintf(l->last_msg, sizeof(l->last_msg), "%s", json_string_value(json_object_get(ev, "msg")));
    l->last_count = (int)json_integer_value(json_object_get(ev, "count"));
    l->has_actions = a != NULL;
    l->blocked = json_is_true(json_object_get(ev, "blocked"));
    l->last_actions[0] = '\0';
    json_array_foreach(a, i, v) {
        size_t n = strlen(l->last_actions);
        snprintf(l->last_actions + n, sizeof(l->last_actions) - n, "%s%s", n ? "," : "",
                 json_string_value(v));
    }
}

#endif
