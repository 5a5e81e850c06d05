/*
 * retention.c — deletes finished transactions once they are older than
 * FinishedDataExpire (DTM's key; there only for Redis, here for every store).
 * Runs on the cron thread, at most every RETENTION_EVERY_MS, in batches, so a
 * large first clean-up does not hold the cron up for long.
 */
#include "engine_internal.h"

#include "log.h"

#define RETENTION_EVERY_MS 60000
#define RETENTION_BATCH 1000
#define RETENTION_MAX_BATCHES 20

void retention_tick(engine *e)
{
    int64_t expire_ms = (int64_t)e->b->cfg->finished_data_expire * 1000;
    int64_t now = dtmq_now_ms();
    if (expire_ms <= 0 || now < e->next_retention_ms)
        return;
    /* short expiries are checked as often as they expire, at most once a second */
    int64_t every = expire_ms < RETENTION_EVERY_MS ? expire_ms : RETENTION_EVERY_MS;
    e->next_retention_ms = now + (every > 1000 ? every : 1000);
    int total = 0;
    for (int i = 0; i < RETENTION_MAX_BATCHES && !e->stopping; i++) {
        int deleted = 0;
        store_result r = store_delete_finished(e->b->store, now - expire_ms, RETENTION_BATCH, &deleted);
        if (r != STORE_OK) {
            log_warn("retention: cannot delete finished transactions: %s", store_last_error());
            break;
        }
        total += deleted;
        if (deleted < RETENTION_BATCH)
            break;
    }
    if (total > 0)
        log_info("retention: deleted %d transaction(s) finished more than %d s ago", total,
                 e->b->cfg->finished_data_expire);
}
