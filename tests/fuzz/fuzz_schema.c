/*
 * fuzz_schema.c — the JSON Schema validator (connectors/daemon/schema/json_schema.c).
 * The input, parsed as JSON (any value), is validated against the embedded
 * kafka/submit and kafka/reply schemas, the ones that check every message
 * arriving from Kafka. The input is also given to json_schema_load as schema
 * text; when it loads, the parsed input is validated against itself.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/schema/json_schema.h"
#include "daemon/schema/schemas_embedded.h"

static json_schema *submit_schema;
static json_schema *reply_schema;

static json_schema *load_embedded(const char *name)
{
    char err[256];
    const char *text = schema_text(name);
    json_schema *s = text ? json_schema_load(text, err, sizeof err) : NULL;
    if (s == NULL)
        __builtin_trap(); /* an embedded schema must load */
    return s;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    submit_schema = load_embedded("kafka/submit");
    reply_schema = load_embedded("kafka/reply");
    return 0;
}

/* glibc's regcomp expands counted repetitions: "((a{1,100}){1,100}){1,100}"
 * takes about a minute to compile. Schemas are dtmq's own embedded files, not
 * outside input, so such patterns are skipped rather than reported as hangs:
 * a schema is loaded only when its strings (keys included, after JSON
 * unescaping) hold at most two "{digit" in all. */
static int counted_repetitions(const char *p, size_t len)
{
    int n = 0;
    for (size_t i = 0; i + 1 < len; i++)
        if (p[i] == '{' && p[i + 1] >= '0' && p[i + 1] <= '9')
            n++;
    return n;
}

static int counted_repetitions_in(json_t *j)
{
    int n = 0;
    if (json_is_string(j))
        return counted_repetitions(json_string_value(j), json_string_length(j));
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v) {
            n += counted_repetitions(k, strlen(k)) + counted_repetitions_in(v);
            if (n > 2)
                break;
        }
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) {
            n += counted_repetitions_in(v);
            if (n > 2)
                break;
        }
    }
    return n;
}

static void validate(const json_schema *s, json_t *j)
{
    char err[256];
    err[0] = '\0';
    if (json_schema_validate(s, j, err, sizeof err) != 0 && err[0] == '\0')
        __builtin_trap(); /* a refusal must say why */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (j != NULL) {
        validate(submit_schema, j);
        validate(reply_schema, j);
    }

    char *text = malloc(size + 1);
    if (text != NULL) {
        memcpy(text, data, size);
        text[size] = '\0';
    }
    if (text != NULL && (j == NULL || counted_repetitions_in(j) <= 2)) {
        char err[256];
        json_schema *s = json_schema_load(text, err, sizeof err);
        if (s != NULL && j != NULL)
            validate(s, j);
        json_schema_free(s);
    }
    free(text);
    json_decref(j);
    return 0;
}
