/*
 * json_schema.c — the JSON Schema subset validator (see json_schema.h).
 *
 * Load turns the schema document into a graph of js_node, one per schema
 * object or boolean, each holding its keywords already checked and converted
 * (type bitmask, compiled regex, child nodes). Nodes are memoised by the
 * json_t they come from, so a subschema reached twice (through two $refs, or
 * once directly and once by $ref) is compiled once. $refs are resolved after
 * the tree is compiled, by walking the node list until every $ref has a
 * target; a target that was not compiled yet is compiled then and joins the
 * list. A $ref loop is allowed in the graph; validate stops it with a depth
 * limit (MAX_DEPTH), since every legitimate recursion also descends into the
 * instance.
 *
 * Invariants:
 *   - every js_node is in schema->nodes, which owns it; nothing else frees one;
 *   - strings and values a node points to (property names, enum, const,
 *     minimum, ...) are borrowed from schema->doc, which lives as long as the
 *     schema;
 *   - after json_schema_load returns, no node changes: validate is read-only
 *     (regexec is thread-safe, and describe_value never dumps a container, so
 *     no jansson call made during validate writes to a shared value).
 *
 * Validate walks node and instance together, carrying the instance path as a
 * linked list on the stack (js_path), and renders it into the error only when
 * a rule fails. Keywords are checked in a fixed order (type, enum, const,
 * string rules, number rules, object rules, items, $ref, allOf, anyOf, oneOf,
 * if/then/else); the first failure is the one reported.
 */
#include "json_schema.h"

#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 256     /* nested schema applications in one validate */
#define VALUE_TEXT_MAX 80 /* how much of a value an error message quotes */
#define SUB_ERROR_MAX 512 /* room for the error of an anyOf/oneOf branch */

/* Type bits; an integer instance also satisfies TYPE_NUMBER. */
enum {
    TYPE_OBJECT = 1 << 0,
    TYPE_ARRAY = 1 << 1,
    TYPE_STRING = 1 << 2,
    TYPE_INTEGER = 1 << 3,
    TYPE_NUMBER = 1 << 4,
    TYPE_BOOLEAN = 1 << 5,
    TYPE_NULL = 1 << 6,
};

static const struct {
    const char *name;
    unsigned bit;
} type_names[] = {
    {"object", TYPE_OBJECT}, {"array", TYPE_ARRAY},     {"string", TYPE_STRING}, {"integer", TYPE_INTEGER},
    {"number", TYPE_NUMBER}, {"boolean", TYPE_BOOLEAN}, {"null", TYPE_NULL},
};

/* Assertion keywords of 2020-12 that this validator does not implement. */
static const char *const unsupported_keywords[] = {
    "not",           "multipleOf",       "exclusiveMinimum",      "exclusiveMaximum",
    "minItems",      "maxItems",         "uniqueItems",           "contains",
    "minContains",   "maxContains",      "prefixItems",           "minProperties",
    "maxProperties", "patternProperties", "propertyNames",        "dependentRequired",
    "dependentSchemas", "unevaluatedItems", "unevaluatedProperties", "$dynamicRef",
    "$recursiveRef",
};

typedef struct js_node js_node;

typedef struct js_property {
    const char *name; /* borrowed from the schema document */
    js_node *schema;
} js_property;

typedef struct js_node_list {
    js_node **items; /* owned array; the nodes themselves are schema->nodes' */
    size_t count;
} js_node_list;

struct js_node {
    json_t *source;   /* the schema object or boolean (borrowed) */
    int is_false;     /* the boolean schema false */
    unsigned types;   /* TYPE_* bits; 0 = any type */
    js_property *properties;
    size_t property_count;
    const char **required; /* borrowed names */
    size_t required_count;
    js_node *additional; /* additionalProperties, NULL when absent */
    js_node *items;
    json_t *enum_values; /* borrowed array, NULL when absent */
    json_t *const_value; /* borrowed, NULL when absent */
    long long min_length, max_length; /* -1 when absent */
    json_t *minimum, *maximum;        /* borrowed numbers, NULL when absent */
    const char *pattern_text;         /* borrowed, NULL when absent */
    regex_t pattern;                  /* valid when pattern_text != NULL */
    js_node_list all_of, any_of, one_of;
    js_node *if_schema, *then_schema, *else_schema;
    const char *ref;   /* borrowed "$ref" text, NULL when absent */
    js_node *ref_target;
};

struct json_schema {
    json_t *doc; /* owned: the parsed schema text */
    js_node *root;
    js_node **nodes; /* owned, every node compiled, in compile order */
    size_t node_count, node_cap;
};

/* The instance path during validate: a chain of keys or indexes up to "$". */
typedef struct js_path {
    const struct js_path *parent; /* NULL for the root "$" */
    const char *key;              /* object member, or NULL for an array index */
    size_t index;
} js_path;

/* ---- error text ---------------------------------------------------------- */

/* A bounded string builder: appends never overflow, output is always ended. */
typedef struct text_buf {
    char *buf;
    size_t cap, len;
} text_buf;

static void text_append(text_buf *t, const char *s, size_t n)
{
    if (t->cap == 0)
        return;
    size_t room = t->cap - 1 - t->len;
    if (n > room)
        n = room;
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

static void text_appendf(text_buf *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_appendf(text_buf *t, const char *fmt, ...)
{
    if (t->cap == 0 || t->len + 1 >= t->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len += (size_t)n < t->cap - t->len ? (size_t)n : t->cap - t->len - 1;
}

static int is_plain_key(const char *key)
{
    if (key[0] == '\0' || (key[0] >= '0' && key[0] <= '9'))
        return 0;
    return strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$-") == strlen(key);
}

/* "$", then ".key", "[3]" or ["odd key"] for each step from the root. */
static void render_path(const js_path *p, text_buf *t)
{
    if (p == NULL) {
        text_append(t, "$", 1);
        return;
    }
    render_path(p->parent, t);
    if (p->key == NULL) {
        text_appendf(t, "[%zu]", p->index);
    } else if (is_plain_key(p->key)) {
        text_appendf(t, ".%s", p->key);
    } else {
        json_t *s = json_string(p->key);
        char *quoted = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
        text_appendf(t, "[%s]", quoted ? quoted : "?");
        free(quoted);
        json_decref(s);
    }
}

/* Writes "<path>: <message>" to err; always returns -1. err may be NULL. */
static int fail_at(const js_path *path, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_at(const js_path *path, char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return -1;
    text_buf t = {err, errlen, 0};
    err[0] = '\0';
    render_path(path, &t);
    text_append(&t, ": ", 2);
    if (t.len + 1 < t.cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + t.len, errlen - t.len, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Load errors: "<schema location>: <message>"; always returns NULL. */
static void *fail_load(char *err, size_t errlen, const char *loc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void *fail_load(char *err, size_t errlen, const char *loc, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return NULL;
    int n = snprintf(err, errlen, "%s: ", loc);
    if (n >= 0 && (size_t)n < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return NULL;
}

/* The TYPE_* bits an instance satisfies. */
static unsigned instance_types(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return TYPE_OBJECT;
    case JSON_ARRAY: return TYPE_ARRAY;
    case JSON_STRING: return TYPE_STRING;
    case JSON_INTEGER: return TYPE_INTEGER | TYPE_NUMBER;
    case JSON_REAL: return TYPE_NUMBER;
    case JSON_TRUE:
    case JSON_FALSE: return TYPE_BOOLEAN;
    case JSON_NULL: return TYPE_NULL;
    }
    return 0;
}

static const char *type_of(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "unknown";
}

/* A short JSON rendering of a value for messages. Containers are shown as
 * {...} / [...] (dumping them is neither short nor, in old jansson versions,
 * free of writes to the value). Long text is cut with "...". */
static const char *describe_value(json_t *v, char *buf, size_t len)
{
    if (json_is_object(v) || json_is_array(v)) {
        snprintf(buf, len, "%s", json_is_object(v) ? "{...}" : "[...]");
        return buf;
    }
    char *text = json_dumps(v, JSON_ENCODE_ANY);
    if (text == NULL) {
        snprintf(buf, len, "?");
        return buf;
    }
    if (strlen(text) < len || len <= 4)
        snprintf(buf, len, "%s", text);
    else
        snprintf(buf, len, "%.*s...", (int)(len - 4), text);
    free(text);
    return buf;
}

/* "expected string or null" from a type mask. */
static void describe_types(unsigned types, char *buf, size_t len)
{
    text_buf t = {buf, len, 0};
    buf[0] = '\0';
    int first = 1;
    for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++) {
        if (!(types & type_names[i].bit))
            continue;
        text_appendf(&t, "%s%s", first ? "" : " or ", type_names[i].name);
        first = 0;
    }
}

/* ---- value helpers ------------------------------------------------------- */

/* -1, 0, 1 as a < b; integers compare exactly, otherwise as doubles. */
static int number_cmp(json_t *a, json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        return x < y ? -1 : x > y;
    }
    double x = json_number_value(a), y = json_number_value(b);
    return x < y ? -1 : x > y;
}

/* JSON Schema equality: like json_equal, but 1 and 1.0 are the same number. */
static int values_equal(json_t *a, json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return number_cmp(a, b) == 0;
    if (json_typeof(a) != json_typeof(b))
        return 0;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!values_equal(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    }
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b))
            return 0;
        const char *key;
        json_t *value;
        json_object_foreach(a, key, value) {
            json_t *other = json_object_get(b, key);
            if (other == NULL || !values_equal(value, other))
                return 0;
        }
        return 1;
    }
    return json_equal(a, b);
}

/* Length in code points of UTF-8 text (jansson has checked the encoding). */
static size_t utf8_length(const char *s, size_t bytes)
{
    size_t n = 0;
    for (size_t i = 0; i < bytes; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

/* ---- compiling ----------------------------------------------------------- */

static js_node *compile_schema(json_schema *s, json_t *src, const char *loc, char *err, size_t errlen);

static js_node *find_compiled(const json_schema *s, const json_t *src)
{
    for (size_t i = 0; i < s->node_count; i++)
        if (s->nodes[i]->source == src)
            return s->nodes[i];
    return NULL;
}

/* A new empty node, registered in s (which owns it); NULL on out-of-memory. */
static js_node *new_node(json_schema *s, json_t *src)
{
    if (s->node_count == s->node_cap) {
        size_t cap = s->node_cap ? 2 * s->node_cap : 32;
        js_node **nodes = realloc(s->nodes, cap * sizeof(*nodes));
        if (nodes == NULL)
            return NULL;
        s->nodes = nodes;
        s->node_cap = cap;
    }
    js_node *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return NULL;
    n->source = src;
    n->min_length = n->max_length = -1;
    s->nodes[s->node_count++] = n;
    return n;
}

static void free_node(js_node *n)
{
    free(n->properties);
    free(n->required);
    free(n->all_of.items);
    free(n->any_of.items);
    free(n->one_of.items);
    if (n->pattern_text != NULL)
        regfree(&n->pattern);
    free(n);
}

/* loc + "/" + escaped key, as a JSON pointer fragment. */
static void child_loc(char *out, size_t len, const char *loc, const char *key)
{
    text_buf t = {out, len, 0};
    out[0] = '\0';
    text_appendf(&t, "%s/", loc);
    for (const char *c = key; *c; c++) {
        if (*c == '~')
            text_append(&t, "~0", 2);
        else if (*c == '/')
            text_append(&t, "~1", 2);
        else
            text_append(&t, c, 1);
    }
}

static js_node *compile_child(json_schema *s, json_t *src, const char *loc, const char *key,
                              char *err, size_t errlen)
{
    char where[512];
    child_loc(where, sizeof(where), loc, key);
    return compile_schema(s, src, where, err, errlen);
}

static int compile_type(js_node *n, json_t *v, const char *loc, char *err, size_t errlen)
{
    size_t count = json_is_array(v) ? json_array_size(v) : 1;
    if (!json_is_string(v) && !(json_is_array(v) && count > 0)) {
        fail_load(err, errlen, loc, "type must be a type name or a non-empty array of them");
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        json_t *name = json_is_array(v) ? json_array_get(v, i) : v;
        unsigned bit = 0;
        for (size_t k = 0; json_is_string(name) && k < sizeof(type_names) / sizeof(type_names[0]); k++)
            if (strcmp(json_string_value(name), type_names[k].name) == 0)
                bit = type_names[k].bit;
        if (bit == 0) {
            char shown[VALUE_TEXT_MAX];
            fail_load(err, errlen, loc, "type: %s is not a JSON Schema type",
                      describe_value(name, shown, sizeof(shown)));
            return -1;
        }
        n->types |= bit;
    }
    return 0;
}

static int compile_properties(json_schema *s, js_node *n, json_t *v, const char *loc, char *err,
                              size_t errlen)
{
    if (!json_is_object(v)) {
        fail_load(err, errlen, loc, "properties must be an object of schemas");
        return -1;
    }
    n->properties = calloc(json_object_size(v) + 1, sizeof(*n->properties));
    if (n->properties == NULL) {
        fail_load(err, errlen, loc, "out of memory");
        return -1;
    }
    char where[512];
    snprintf(where, sizeof(where), "%s/properties", loc);
    const char *key;
    json_t *sub;
    json_object_foreach(v, key, sub) {
        js_node *child = compile_child(s, sub, where, key, err, errlen);
        if (child == NULL)
            return -1;
        n->properties[n->property_count++] = (js_property){key, child};
    }
    return 0;
}

static int compile_required(js_node *n, json_t *v, const char *loc, char *err, size_t errlen)
{
    if (!json_is_array(v)) {
        fail_load(err, errlen, loc, "required must be an array of strings");
        return -1;
    }
    n->required = calloc(json_array_size(v) + 1, sizeof(*n->required));
    if (n->required == NULL) {
        fail_load(err, errlen, loc, "out of memory");
        return -1;
    }
    size_t i;
    json_t *name;
    json_array_foreach(v, i, name) {
        if (!json_is_string(name)) {
            fail_load(err, errlen, loc, "required[%zu] must be a string", i);
            return -1;
        }
        n->required[n->required_count++] = json_string_value(name);
    }
    return 0;
}

/* allOf / anyOf / oneOf: a non-empty array of schemas. */
static int compile_list(json_schema *s, js_node_list *list, json_t *v, const char *loc,
                        const char *keyword, char *err, size_t errlen)
{
    if (!json_is_array(v) || json_array_size(v) == 0) {
        fail_load(err, errlen, loc, "%s must be a non-empty array of schemas", keyword);
        return -1;
    }
    list->items = calloc(json_array_size(v), sizeof(*list->items));
    if (list->items == NULL) {
        fail_load(err, errlen, loc, "out of memory");
        return -1;
    }
    size_t i;
    json_t *sub;
    json_array_foreach(v, i, sub) {
        char where[512];
        snprintf(where, sizeof(where), "%s/%s/%zu", loc, keyword, i);
        list->items[i] = compile_schema(s, sub, where, err, errlen);
        if (list->items[i] == NULL)
            return -1;
        list->count++;
    }
    return 0;
}

static int compile_length(long long *dst, json_t *v, const char *loc, const char *keyword,
                          char *err, size_t errlen)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        fail_load(err, errlen, loc, "%s must be a non-negative integer", keyword);
        return -1;
    }
    *dst = json_integer_value(v);
    return 0;
}

/* 1 when a quantifier (*, +, ?, {) directly follows another one outside a
 * bracket expression, e.g. "a++" or "a+{1,3}". POSIX leaves such stacked
 * quantifiers undefined, and glibc's regcomp copies the subexpression once
 * per stacked quantifier, so a few dozen of them take gigabytes (found by
 * fuzz_schema). */
static int has_stacked_quantifier(const char *re)
{
    int in_bracket = 0, after_quantifier = 0;
    for (const char *p = re; *p; p++) {
        if (in_bracket) {
            if (*p == ']' && p[-1] != '[' && !(p[-1] == '^' && p[-2] == '['))
                in_bracket = 0;
            continue;
        }
        if (*p == '\\' && p[1] != '\0') {
            p++;
            after_quantifier = 0;
            continue;
        }
        int quantifier = *p == '*' || *p == '+' || *p == '?' || *p == '{';
        if (quantifier && after_quantifier)
            return 1;
        if (*p == '{') {
            while (*p && *p != '}')
                p++;
            if (*p == '\0')
                return 0; /* unterminated: regcomp says so */
        }
        if (*p == '[')
            in_bracket = 1;
        after_quantifier = quantifier;
    }
    return 0;
}

static int compile_pattern(js_node *n, json_t *v, const char *loc, char *err, size_t errlen)
{
    if (!json_is_string(v)) {
        fail_load(err, errlen, loc, "pattern must be a string");
        return -1;
    }
    if (has_stacked_quantifier(json_string_value(v))) {
        fail_load(err, errlen, loc, "pattern \"%.200s\" stacks quantifiers (e.g. a++ or a+{1,3}), "
                  "which POSIX leaves undefined", json_string_value(v));
        return -1;
    }
    int rc = regcomp(&n->pattern, json_string_value(v), REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char why[128];
        regerror(rc, &n->pattern, why, sizeof(why));
        fail_load(err, errlen, loc, "pattern \"%s\" does not compile: %s", json_string_value(v), why);
        return -1;
    }
    n->pattern_text = json_string_value(v);
    return 0;
}

/* $defs: compiled eagerly, so that a mistake in an unused definition is still
 * reported; $refs to them find the memoised nodes. */
static int compile_defs(json_schema *s, json_t *v, const char *loc, char *err, size_t errlen)
{
    if (!json_is_object(v)) {
        fail_load(err, errlen, loc, "$defs must be an object of schemas");
        return -1;
    }
    char where[512];
    snprintf(where, sizeof(where), "%s/$defs", loc);
    const char *key;
    json_t *sub;
    json_object_foreach(v, key, sub)
        if (compile_child(s, sub, where, key, err, errlen) == NULL)
            return -1;
    return 0;
}

static int is_unsupported(const char *keyword)
{
    for (size_t i = 0; i < sizeof(unsupported_keywords) / sizeof(unsupported_keywords[0]); i++)
        if (strcmp(keyword, unsupported_keywords[i]) == 0)
            return 1;
    return 0;
}

/* One keyword of a schema object; unknown ones are ignored. */
static int compile_keyword(json_schema *s, js_node *n, const char *key, json_t *v, const char *loc,
                           char *err, size_t errlen)
{
    char where[512];
    if (strcmp(key, "type") == 0)
        return compile_type(n, v, loc, err, errlen);
    if (strcmp(key, "properties") == 0)
        return compile_properties(s, n, v, loc, err, errlen);
    if (strcmp(key, "required") == 0)
        return compile_required(n, v, loc, err, errlen);
    if (strcmp(key, "enum") == 0) {
        if (!json_is_array(v)) {
            fail_load(err, errlen, loc, "enum must be an array");
            return -1;
        }
        n->enum_values = v;
        return 0;
    }
    if (strcmp(key, "const") == 0) {
        n->const_value = v;
        return 0;
    }
    if (strcmp(key, "minLength") == 0)
        return compile_length(&n->min_length, v, loc, key, err, errlen);
    if (strcmp(key, "maxLength") == 0)
        return compile_length(&n->max_length, v, loc, key, err, errlen);
    if (strcmp(key, "minimum") == 0 || strcmp(key, "maximum") == 0) {
        if (!json_is_number(v)) {
            fail_load(err, errlen, loc, "%s must be a number", key);
            return -1;
        }
        if (strcmp(key, "minimum") == 0)
            n->minimum = v;
        else
            n->maximum = v;
        return 0;
    }
    if (strcmp(key, "pattern") == 0)
        return compile_pattern(n, v, loc, err, errlen);
    if (strcmp(key, "allOf") == 0)
        return compile_list(s, &n->all_of, v, loc, key, err, errlen);
    if (strcmp(key, "anyOf") == 0)
        return compile_list(s, &n->any_of, v, loc, key, err, errlen);
    if (strcmp(key, "oneOf") == 0)
        return compile_list(s, &n->one_of, v, loc, key, err, errlen);
    if (strcmp(key, "$defs") == 0)
        return compile_defs(s, v, loc, err, errlen);
    if (strcmp(key, "$ref") == 0) {
        if (!json_is_string(v)) {
            fail_load(err, errlen, loc, "$ref must be a string");
            return -1;
        }
        n->ref = json_string_value(v);
        return 0;
    }
    js_node **single = strcmp(key, "additionalProperties") == 0 ? &n->additional
                     : strcmp(key, "items") == 0                ? &n->items
                     : strcmp(key, "if") == 0                   ? &n->if_schema
                     : strcmp(key, "then") == 0                 ? &n->then_schema
                     : strcmp(key, "else") == 0                 ? &n->else_schema
                                                                : NULL;
    if (single != NULL) {
        if (strcmp(key, "items") == 0 && json_is_array(v)) {
            fail_load(err, errlen, loc, "items must be one schema (tuples, prefixItems, are not supported)");
            return -1;
        }
        child_loc(where, sizeof(where), loc, key);
        *single = compile_schema(s, v, where, err, errlen);
        return *single ? 0 : -1;
    }
    if (is_unsupported(key)) {
        fail_load(err, errlen, loc, "keyword '%s' is not supported by this validator", key);
        return -1;
    }
    return 0; /* an annotation or an unknown keyword */
}

/* Compiles src (an object or a boolean) once; later calls return the same node. */
static js_node *compile_schema(json_schema *s, json_t *src, const char *loc, char *err, size_t errlen)
{
    if (!json_is_object(src) && !json_is_boolean(src))
        return fail_load(err, errlen, loc, "a schema must be an object or a boolean");
    js_node *n = find_compiled(s, src);
    if (n != NULL)
        return n;
    n = new_node(s, src);
    if (n == NULL)
        return fail_load(err, errlen, loc, "out of memory");
    if (json_is_boolean(src)) {
        n->is_false = json_is_false(src);
        return n;
    }
    const char *key;
    json_t *v;
    json_object_foreach(src, key, v)
        if (compile_keyword(s, n, key, v, loc, err, errlen) != 0)
            return NULL;
    return n;
}

/* Decodes one JSON pointer token (~1 → '/', ~0 → '~') of at most len bytes. */
static int pointer_token(const char *p, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (c == '~') {
            if (i + 1 >= len || (p[i + 1] != '0' && p[i + 1] != '1'))
                return -1;
            c = p[++i] == '0' ? '~' : '/';
        }
        if (o + 1 >= outlen)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* The value a local $ref ("#" or "#/a/b") points to in doc, or NULL. */
static json_t *resolve_pointer(json_t *doc, const char *ref)
{
    if (ref[0] != '#')
        return NULL;
    json_t *cur = doc;
    const char *p = ref + 1;
    while (*p != '\0' && cur != NULL) {
        if (*p != '/')
            return NULL;
        p++;
        size_t len = strcspn(p, "/");
        char token[256];
        if (pointer_token(p, len, token, sizeof(token)) != 0)
            return NULL;
        if (json_is_object(cur)) {
            cur = json_object_get(cur, token);
        } else if (json_is_array(cur)) {
            char *end = NULL;
            unsigned long i = strtoul(token, &end, 10);
            cur = token[0] != '\0' && *end == '\0' ? json_array_get(cur, i) : NULL;
        } else {
            cur = NULL;
        }
        p += len;
    }
    return cur;
}

/* Gives every $ref its target; targets compiled here join s->nodes and are
 * visited by the same loop. */
static int resolve_refs(json_schema *s, char *err, size_t errlen)
{
    for (size_t i = 0; i < s->node_count; i++) {
        js_node *n = s->nodes[i];
        if (n->ref == NULL || n->ref_target != NULL)
            continue;
        json_t *target = resolve_pointer(s->doc, n->ref);
        if (target == NULL) {
            fail_load(err, errlen, "$ref", "\"%s\" does not point into this schema (only local refs "
                      "such as \"#/$defs/name\" are supported)", n->ref);
            return -1;
        }
        n->ref_target = compile_schema(s, target, n->ref, err, errlen);
        if (n->ref_target == NULL)
            return -1;
    }
    return 0;
}

json_schema *json_schema_load(const char *text, char *err, size_t errlen)
{
    json_schema *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return fail_load(err, errlen, "#", "out of memory");
    json_error_t jerr;
    s->doc = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (s->doc == NULL) {
        fail_load(err, errlen, "#", "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                  jerr.text);
        json_schema_free(s);
        return NULL;
    }
    s->root = compile_schema(s, s->doc, "#", err, errlen);
    if (s->root == NULL || resolve_refs(s, err, errlen) != 0) {
        json_schema_free(s);
        return NULL;
    }
    return s;
}

void json_schema_free(json_schema *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->node_count; i++)
        free_node(s->nodes[i]);
    free(s->nodes);
    json_decref(s->doc);
    free(s);
}

/* ---- validating ---------------------------------------------------------- */

static int check_node(const js_node *n, json_t *v, const js_path *path, int depth, char *err,
                      size_t errlen);

static int check_type(const js_node *n, json_t *v, const js_path *path, char *err, size_t errlen)
{
    if (n->types == 0 || (n->types & instance_types(v)) != 0)
        return 0;
    char want[96];
    describe_types(n->types, want, sizeof(want));
    return fail_at(path, err, errlen, "expected %s, got %s", want, type_of(v));
}

static int check_enum(const js_node *n, json_t *v, const js_path *path, char *err, size_t errlen)
{
    if (n->enum_values == NULL)
        return 0;
    size_t i;
    json_t *allowed;
    json_array_foreach(n->enum_values, i, allowed)
        if (values_equal(v, allowed))
            return 0;
    if (err == NULL || errlen == 0)
        return -1;
    char shown[VALUE_TEXT_MAX], one[VALUE_TEXT_MAX], list[384];
    text_buf t = {list, sizeof(list), 0};
    list[0] = '\0';
    json_array_foreach(n->enum_values, i, allowed)
        text_appendf(&t, "%s%s", i ? ", " : "", describe_value(allowed, one, sizeof(one)));
    return fail_at(path, err, errlen, "value %s is not one of %s", describe_value(v, shown, sizeof(shown)),
                   list);
}

static int check_const(const js_node *n, json_t *v, const js_path *path, char *err, size_t errlen)
{
    if (n->const_value == NULL || values_equal(v, n->const_value))
        return 0;
    char shown[VALUE_TEXT_MAX], want[VALUE_TEXT_MAX];
    return fail_at(path, err, errlen, "value %s is not the constant %s",
                   describe_value(v, shown, sizeof(shown)), describe_value(n->const_value, want, sizeof(want)));
}

/* minLength, maxLength, pattern: they apply to strings only. */
static int check_string(const js_node *n, json_t *v, const js_path *path, char *err, size_t errlen)
{
    if (!json_is_string(v))
        return 0;
    const char *s = json_string_value(v);
    size_t bytes = json_string_length(v);
    if (n->min_length >= 0 || n->max_length >= 0) {
        long long chars = (long long)utf8_length(s, bytes);
        if (n->min_length >= 0 && chars < n->min_length)
            return fail_at(path, err, errlen, "string of %lld characters is shorter than minLength %lld",
                           chars, n->min_length);
        if (n->max_length >= 0 && chars > n->max_length)
            return fail_at(path, err, errlen, "string of %lld characters is longer than maxLength %lld",
                           chars, n->max_length);
    }
    if (n->pattern_text != NULL) {
        regmatch_t range = {.rm_so = 0, .rm_eo = (regoff_t)bytes}; /* the whole value, NULs too */
        if (regexec(&n->pattern, s, 1, &range, REG_STARTEND) != 0) {
            char shown[VALUE_TEXT_MAX];
            return fail_at(path, err, errlen, "string %s does not match pattern \"%s\"",
                           describe_value(v, shown, sizeof(shown)), n->pattern_text);
        }
    }
    return 0;
}

/* minimum, maximum: they apply to numbers only. */
static int check_number(const js_node *n, json_t *v, const js_path *path, char *err, size_t errlen)
{
    if (!json_is_number(v))
        return 0;
    char shown[VALUE_TEXT_MAX], bound[VALUE_TEXT_MAX];
    if (n->minimum != NULL && number_cmp(v, n->minimum) < 0)
        return fail_at(path, err, errlen, "%s is less than minimum %s", describe_value(v, shown, sizeof(shown)),
                       describe_value(n->minimum, bound, sizeof(bound)));
    if (n->maximum != NULL && number_cmp(v, n->maximum) > 0)
        return fail_at(path, err, errlen, "%s is greater than maximum %s",
                       describe_value(v, shown, sizeof(shown)), describe_value(n->maximum, bound, sizeof(bound)));
    return 0;
}

static const js_node *property_schema(const js_node *n, const char *key)
{
    for (size_t i = 0; i < n->property_count; i++)
        if (strcmp(n->properties[i].name, key) == 0)
            return n->properties[i].schema;
    return NULL;
}

/* required, properties, additionalProperties: they apply to objects only. */
static int check_object(const js_node *n, json_t *v, const js_path *path, int depth, char *err,
                        size_t errlen)
{
    if (!json_is_object(v))
        return 0;
    for (size_t i = 0; i < n->required_count; i++)
        if (json_object_get(v, n->required[i]) == NULL)
            return fail_at(path, err, errlen, "required property '%s' is missing", n->required[i]);
    for (size_t i = 0; i < n->property_count; i++) {
        json_t *member = json_object_get(v, n->properties[i].name);
        js_path sub = {path, n->properties[i].name, 0};
        if (member != NULL && check_node(n->properties[i].schema, member, &sub, depth + 1, err, errlen) != 0)
            return -1;
    }
    if (n->additional == NULL)
        return 0;
    const char *key;
    json_t *member;
    json_object_foreach(v, key, member) {
        if (property_schema(n, key) != NULL)
            continue;
        if (n->additional->is_false)
            return fail_at(path, err, errlen, "property '%s' is not allowed (additionalProperties is false)",
                           key);
        js_path sub = {path, key, 0};
        if (check_node(n->additional, member, &sub, depth + 1, err, errlen) != 0)
            return -1;
    }
    return 0;
}

/* items: applies to arrays only. */
static int check_array(const js_node *n, json_t *v, const js_path *path, int depth, char *err,
                       size_t errlen)
{
    if (n->items == NULL || !json_is_array(v))
        return 0;
    size_t i;
    json_t *element;
    json_array_foreach(v, i, element) {
        js_path sub = {path, NULL, i};
        if (check_node(n->items, element, &sub, depth + 1, err, errlen) != 0)
            return -1;
    }
    return 0;
}

static int check_all_of(const js_node *n, json_t *v, const js_path *path, int depth, char *err,
                        size_t errlen)
{
    for (size_t i = 0; i < n->all_of.count; i++)
        if (check_node(n->all_of.items[i], v, path, depth + 1, err, errlen) != 0)
            return -1;
    return 0;
}

static int check_any_of(const js_node *n, json_t *v, const js_path *path, int depth, char *err,
                        size_t errlen)
{
    if (n->any_of.count == 0)
        return 0;
    char first[SUB_ERROR_MAX] = "";
    for (size_t i = 0; i < n->any_of.count; i++) {
        int want_text = i == 0 && err != NULL && errlen > 0;
        if (check_node(n->any_of.items[i], v, path, depth + 1, want_text ? first : NULL,
                       want_text ? sizeof(first) : 0) == 0)
            return 0;
    }
    return fail_at(path, err, errlen, "matches none of the %zu schemas of anyOf (the first says: %s)",
                   n->any_of.count, first);
}

static int check_one_of(const js_node *n, json_t *v, const js_path *path, int depth, char *err,
                        size_t errlen)
{
    if (n->one_of.count == 0)
        return 0;
    char first[SUB_ERROR_MAX] = "";
    size_t matched = 0, match_a = 0, match_b = 0;
    for (size_t i = 0; i < n->one_of.count; i++) {
        int want_text = i == 0 && err != NULL && errlen > 0;
        if (check_node(n->one_of.items[i], v, path, depth + 1, want_text ? first : NULL,
                       want_text ? sizeof(first) : 0) != 0)
            continue;
        if (matched++ == 0)
            match_a = i;
        else {
            match_b = i;
            break;
        }
    }
    if (matched == 1)
        return 0;
    if (matched == 0)
        return fail_at(path, err, errlen, "matches none of the %zu schemas of oneOf (the first says: %s)",
                       n->one_of.count, first);
    return fail_at(path, err, errlen, "matches oneOf's schemas %zu and %zu, but must match exactly one",
                   match_a, match_b);
}

/* if/then/else: the if schema only chooses; its failure is not an error. */
static int check_conditional(const js_node *n, json_t *v, const js_path *path, int depth, char *err,
                             size_t errlen)
{
    if (n->if_schema == NULL)
        return 0;
    int holds = check_node(n->if_schema, v, path, depth + 1, NULL, 0) == 0;
    const js_node *branch = holds ? n->then_schema : n->else_schema;
    return branch ? check_node(branch, v, path, depth + 1, err, errlen) : 0;
}

static int check_node(const js_node *n, json_t *v, const js_path *path, int depth, char *err,
                      size_t errlen)
{
    if (depth > MAX_DEPTH)
        return fail_at(path, err, errlen, "schema applied more than %d levels deep (a $ref loop?)", MAX_DEPTH);
    if (n->is_false)
        return fail_at(path, err, errlen, "no value is allowed here (the schema is false)");
    if (check_type(n, v, path, err, errlen) != 0 || check_enum(n, v, path, err, errlen) != 0 ||
        check_const(n, v, path, err, errlen) != 0 || check_string(n, v, path, err, errlen) != 0 ||
        check_number(n, v, path, err, errlen) != 0 || check_object(n, v, path, depth, err, errlen) != 0 ||
        check_array(n, v, path, depth, err, errlen) != 0)
        return -1;
    if (n->ref_target != NULL && check_node(n->ref_target, v, path, depth + 1, err, errlen) != 0)
        return -1;
    if (check_all_of(n, v, path, depth, err, errlen) != 0 || check_any_of(n, v, path, depth, err, errlen) != 0 ||
        check_one_of(n, v, path, depth, err, errlen) != 0 || check_conditional(n, v, path, depth, err, errlen) != 0)
        return -1;
    return 0;
}

int json_schema_validate(const json_schema *s, json_t *instance, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (s == NULL || instance == NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "$: no %s to validate", s == NULL ? "schema" : "value");
        return -1;
    }
    return check_node(s->root, instance, NULL, 0, err, errlen);
}
