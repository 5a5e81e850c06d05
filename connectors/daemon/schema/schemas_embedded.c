/*
 * schemas_embedded.c — puts the schema files of schemas/ into the binary
 * (see schemas_embedded.h), so the daemon depends on no file at run time.
 *
 * Each file is pulled in by the assembler's .incbin into .rodata, followed by
 * a NUL byte so the text is a C string, under a global label that C declares
 * as an extern char array. The paths are relative to the directory the
 * compiler runs in: the Makefile compiles from the repository root.
 *
 * BUILD DEPENDENCY: gcc's -MMD dependency files list headers only, not files
 * that .incbin reads, so the Makefile must name the schema files as
 * prerequisites of this object itself; without that rule, editing a schema
 * would not rebuild schemas_embedded.o and the binary would keep the old text.
 */
#include "schemas_embedded.h"

#include <stddef.h>
#include <string.h>

/* One .incbin per schema: SYMBOL is a global, NUL-terminated char array. */
#define SCHEMA_INCBIN(symbol, path)                                                            \
    __asm__(".section .rodata\n"                                                                \
            ".global " #symbol "\n"                                                             \
            ".type " #symbol ", @object\n"                                                      \
            #symbol ":\n"                                                                       \
            ".incbin \"" path "\"\n"                                                            \
            ".byte 0\n"                                                                         \
            ".size " #symbol ", . - " #symbol "\n"                                              \
            ".previous\n")

SCHEMA_INCBIN(dtmq_schema_kafka_submit, "schemas/kafka/submit.schema.json");
SCHEMA_INCBIN(dtmq_schema_kafka_reply, "schemas/kafka/reply.schema.json");
SCHEMA_INCBIN(dtmq_schema_kafka_submit_reply, "schemas/kafka/submit_reply.schema.json");
SCHEMA_INCBIN(dtmq_schema_kafka_event, "schemas/kafka/event.schema.json");
SCHEMA_INCBIN(dtmq_schema_http_trans_global, "schemas/http/trans_global.schema.json");
SCHEMA_INCBIN(dtmq_schema_store_trans, "schemas/store/trans.schema.json");

extern const char dtmq_schema_kafka_submit[];
extern const char dtmq_schema_kafka_reply[];
extern const char dtmq_schema_kafka_submit_reply[];
extern const char dtmq_schema_kafka_event[];
extern const char dtmq_schema_http_trans_global[];
extern const char dtmq_schema_store_trans[];

static const struct {
    const char *name;
    const char *text;
} embedded_schemas[] = {
    {"kafka/submit", dtmq_schema_kafka_submit},
    {"kafka/reply", dtmq_schema_kafka_reply},
    {"kafka/submit_reply", dtmq_schema_kafka_submit_reply},
    {"kafka/event", dtmq_schema_kafka_event},
    {"http/trans_global", dtmq_schema_http_trans_global},
    {"store/trans", dtmq_schema_store_trans},
};

const char *schema_text(const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof(embedded_schemas) / sizeof(embedded_schemas[0]); i++)
        if (strcmp(name, embedded_schemas[i].name) == 0)
            return embedded_schemas[i].text;
    return NULL;
}
