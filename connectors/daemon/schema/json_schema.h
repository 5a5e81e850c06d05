/*
 * json_schema.h — a small JSON Schema (draft 2020-12) validator for jansson
 * values, covering the subset that dtmq's schemas (schemas/) use, so that a
 * message or document can be checked against the same file that documents it.
 *
 * Supported keywords:
 *   type (a name or an array of names; "integer" means a JSON integer, so 1.0
 *        is a number but not an integer, unlike the spec's mathematical rule),
 *   properties, required, additionalProperties (boolean or schema), items (one
 *   schema for every element), enum, const (numbers compare by value: 1 equals
 *   1.0), minLength, maxLength (in UTF-8 code points), minimum, maximum,
 *   pattern, allOf, anyOf, oneOf, if/then/else, $defs, and local "$ref"
 *   ("#", "#/$defs/name" or any other JSON pointer into the same document;
 *   a $ref applies together with its sibling keywords, as in 2020-12).
 *   Boolean schemas (true, false) are accepted wherever a schema is.
 *
 * pattern is a POSIX extended regular expression (<regex.h>), compiled once at
 * load, searched unanchored like ECMA-262's. Schemas should therefore keep to
 * the part both dialects share: ^ $ . [...] [^...] * + ? {m,n} ( | ) and
 * escaped punctuation such as \. (no \d, \w, \s, lookaround or lazy
 * quantifiers). Matching is byte-wise in the C locale.
 *
 * Annotation keywords ($schema, $id, $comment, title, description, examples,
 * default, format, ...) and any unknown keyword are ignored, as the spec says.
 * Known ASSERTION keywords this validator does not implement (not, minItems,
 * multipleOf, patternProperties, prefixItems, unevaluatedProperties, ...) are
 * refused at load instead of being silently ignored, so that a schema never
 * means less here than it says.
 *
 * Errors: one line naming the JSON path of the offending value ("$" is the
 * instance itself) and the rule, e.g.
 *   "$.steps[1].action: expected string, got integer"
 *   "$: required property 'gid' is missing"
 * Load errors name the place in the schema as a JSON pointer ("#/properties/gid").
 *
 * Ownership and threads: json_schema_load copies nothing from text after it
 * returns; the json_schema it returns is owned by the caller and freed with
 * json_schema_free. After load a json_schema is never modified, so any number
 * of threads may call json_schema_validate on it at once. validate only reads
 * the instance (it takes no reference).
 */
#ifndef DTMQ_JSON_SCHEMA_H
#define DTMQ_JSON_SCHEMA_H

#include <jansson.h>
#include <stddef.h>

typedef struct json_schema json_schema;

/* Parses and compiles a schema from JSON text. Returns the schema, or NULL
 * with one line in err (invalid JSON, a keyword of the wrong shape, a pattern
 * that does not compile, an unresolvable or non-local $ref, an unsupported
 * assertion keyword, out of memory). err may be NULL when errlen is 0. */
json_schema *json_schema_load(const char *text, char *err, size_t errlen);

/* Checks instance against s. Returns 0 when it is valid, -1 when not, with
 * the first violation found in err (one line, see above). err may be NULL
 * when errlen is 0. */
int json_schema_validate(const json_schema *s, json_t *instance, char *err, size_t errlen);

/* Frees s and everything it compiled. NULL is allowed. */
void json_schema_free(json_schema *s);

#endif
