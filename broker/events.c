/*
 * events.c — counts finished transactions in the metrics and publishes
 * status changes to PREFIXevents (see events.h):
 * {"gid","trans_type","status","previous_status","rollback_reason","time"}.
 */
#include "events.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "trans_json.h"

/* DTM's dtm_transaction_process_total and _handled_duration. */
static void count_finished(const char *trans_type, const char *to, int64_t create_time)
{
    int ok = strcmp(to, "succeed") == 0;
    if (!ok && strcmp(to, "failed") != 0)
        return;
    char labels[128], model[48];
    metrics_label(trans_type, model, sizeof(model));
    snprintf(labels, sizeof(labels), "model=\"%s\",status=\"%s\"", model, ok ? "OK" : "FAIL");
    metrics_count("dtm_transaction_process_total", labels, 1);
    snprintf(labels, sizeof(labels), "model=\"%s\"", model);
    if (create_time > 0)
        metrics_observe("dtm_transaction_handled_duration", labels,
                        (double)(dtmq_now_ms() - create_time) / 1000.0);
}

int events_published(const broker *b)
{
    return b->cfg->kafka_events && b->kafka != NULL && kafka_link_producer(b->kafka) != NULL;
}

char *events_status_message(broker *b, const char *gid, const char *trans_type, const char *from,
                            const char *to, const char *reason, int64_t create_time)
{
    count_finished(trans_type ? trans_type : "", to, create_time);
    if (!events_published(b))
        return NULL;
    char when[48];
    json_t *ev = json_pack("{s:s, s:s, s:s, s:s}", "gid", gid, "trans_type", trans_type ? trans_type : "",
                           "status", to, "time", trans_json_time(dtmq_now_ms(), when, sizeof(when)));
    if (ev == NULL)
        return NULL;
    if (from)
        json_object_set_new(ev, "previous_status", json_string(from));
    if (reason && reason[0])
        json_object_set_new(ev, "rollback_reason", json_string(reason));
    char *text = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    return text;
}

void events_publish(broker *b, const char *gid, const char *text)
{
    dtmq_kafka_header h = {"dtm-gid", gid};
    dtmq_kafka_produce(kafka_link_producer(b->kafka), kafka_link_topics(b->kafka)->events, gid, text,
                  strlen(text), &h, 1, NULL, NULL);
}

void events_status_changed(broker *b, const char *gid, const char *trans_type, const char *from,
                           const char *to, const char *reason, int64_t create_time)
{
    char *text = events_status_message(b, gid, trans_type, from, to, reason, create_time);
    if (text)
        events_publish(b, gid, text);
    free(text);
}
