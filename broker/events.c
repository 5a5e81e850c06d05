/*
 * events.c — publishes status changes to PREFIXevents (see events.h):
 * {"gid","trans_type","status","previous_status","rollback_reason","time"}.
 */
#include "events.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "trans_json.h"

void events_status_changed(broker *b, const char *gid, const char *trans_type, const char *from,
                           const char *to, const char *reason)
{
    if (!b->cfg->kafka_events || b->kafka == NULL || kafka_link_producer(b->kafka) == NULL)
        return;
    char when[48];
    json_t *ev = json_pack("{s:s, s:s, s:s, s:s}", "gid", gid, "trans_type", trans_type ? trans_type : "",
                           "status", to, "time", trans_json_time(dtmq_now_ms(), when, sizeof(when)));
    if (ev == NULL)
        return;
    if (from)
        json_object_set_new(ev, "previous_status", json_string(from));
    if (reason && reason[0])
        json_object_set_new(ev, "rollback_reason", json_string(reason));
    char *text = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    if (text) {
        kafka_header h = {"dtm-gid", gid};
        kafka_produce(kafka_link_producer(b->kafka), kafka_link_topics(b->kafka)->events, gid, text,
                      strlen(text), &h, 1, NULL, NULL);
    }
    free(text);
}
