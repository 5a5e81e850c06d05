/*
 * schemas_embedded.h — the JSON Schemas of schemas/ built into the binary, so
 * that dtmq never reads a schema file at run time.
 */
#ifndef DTMQ_SCHEMAS_EMBEDDED_H
#define DTMQ_SCHEMAS_EMBEDDED_H

/* The text of a schema by name (its path under schemas/ without
 * ".schema.json"): "kafka/submit", "kafka/reply", "kafka/submit_reply",
 * "kafka/event", "http/trans_global", "store/trans". The text is static,
 * NUL-terminated and never freed. NULL for an unknown name. */
const char *schema_text(const char *name);

#endif
