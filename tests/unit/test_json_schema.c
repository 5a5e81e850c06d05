/*
 * test_json_schema.c — the JSON Schema validator (connectors/daemon/schema/) on
 * small inline schemas, one group per keyword, with the exact error text,
 * then every sample of tests/schemas/samples/ against its embedded schema
 * (valid ones must pass, invalid ones must fail; one check per sample).
 * tests/schemas/cross_check.py judges the same samples with Python's
 * jsonschema, so both validators agree on what the schemas mean.
 *
 * Run from the repository root (the samples and schemas/ are read by
 * relative path), as tests/run.sh does.
 */
#include <check.h>
#include <dirent.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/schema/json_schema.h"
#include "daemon/schema/schemas_embedded.h"
#include "testlib.h"

#define SAMPLES_DIR "tests/schemas/samples"

static const char *const schema_names[] = {"kafka/submit",      "kafka/reply",       "kafka/submit_reply",
                                           "kafka/event",       "http/trans_global", "store/trans"};
#define SCHEMA_COUNT (sizeof(schema_names) / sizeof(schema_names[0]))

/* ---- helpers ---------------------------------------------------------------- */

static json_schema *load_ok(const char *schema)
{
    char err[256] = "";
    json_schema *s = json_schema_load(schema, err, sizeof(err));
    ck_assert_msg(s != NULL, "schema %s did not load: %s", schema, err);
    return s;
}

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
    ck_assert_msg(v != NULL, "test instance %s is not JSON: %s", text, jerr.text);
    return v;
}

/* Validates instance (JSON text) against schema (JSON text); err gets the message. */
static int run(const char *schema, const char *instance, char *err, size_t errlen)
{
    json_schema *s = load_ok(schema);
    json_t *v = parse(instance);
    int rc = json_schema_validate(s, v, err, errlen);
    json_decref(v);
    json_schema_free(s);
    return rc;
}

static void expect_valid(const char *schema, const char *instance)
{
    char err[512] = "";
    int rc = run(schema, instance, err, sizeof(err));
    ck_assert_msg(rc == 0, "%s should be valid against %s, but: %s", instance, schema, err);
}

static void expect_invalid(const char *schema, const char *instance, const char *want)
{
    char err[512] = "";
    int rc = run(schema, instance, err, sizeof(err));
    ck_assert_msg(rc == -1, "%s should be invalid against %s", instance, schema);
    ck_assert_str_eq(err, want);
}

static void expect_load_error(const char *schema, const char *want)
{
    char err[512] = "";
    json_schema *s = json_schema_load(schema, err, sizeof(err));
    ck_assert_msg(s == NULL, "schema %s should not load", schema);
    ck_assert_str_eq(err, want);
}

/* ---- keywords ---------------------------------------------------------------- */

START_TEST(type_single_and_list)
{
    expect_valid("{\"type\":\"string\"}", "\"x\"");
    expect_invalid("{\"type\":\"string\"}", "5", "$: expected string, got integer");
    expect_valid("{\"type\":[\"string\",\"null\"]}", "null");
    expect_invalid("{\"type\":[\"string\",\"null\"]}", "true", "$: expected string or null, got boolean");
    expect_valid("{\"type\":\"object\"}", "{}");
    expect_invalid("{\"type\":\"object\"}", "[]", "$: expected object, got array");
    expect_valid("{\"type\":\"array\"}", "[1]");
    expect_invalid("{\"type\":\"array\"}", "{}", "$: expected array, got object");
    expect_valid("{\"type\":\"boolean\"}", "false");
    expect_invalid("{\"type\":\"null\"}", "0", "$: expected null, got integer");
    expect_valid("{}", "{\"anything\":[1,\"a\",null]}");
}
END_TEST

START_TEST(type_integer_is_a_json_integer)
{
    expect_valid("{\"type\":\"integer\"}", "-7");
    expect_invalid("{\"type\":\"integer\"}", "1.5", "$: expected integer, got number");
    expect_invalid("{\"type\":\"integer\"}", "2.0", "$: expected integer, got number");
    expect_valid("{\"type\":\"number\"}", "3");
    expect_valid("{\"type\":\"number\"}", "3.25");
    expect_invalid("{\"type\":\"number\"}", "\"3\"", "$: expected number, got string");
}
END_TEST

START_TEST(properties_and_required)
{
    const char *schema = "{\"type\":\"object\",\"required\":[\"gid\",\"op\"],"
                         "\"properties\":{\"gid\":{\"type\":\"string\"},\"n\":{\"type\":\"integer\"}}}";
    expect_valid(schema, "{\"gid\":\"g\",\"op\":1,\"extra\":true}");
    expect_invalid(schema, "{\"op\":1}", "$: required property 'gid' is missing");
    expect_invalid(schema, "{\"gid\":\"g\"}", "$: required property 'op' is missing");
    expect_invalid(schema, "{\"gid\":7,\"op\":1}", "$.gid: expected string, got integer");
    expect_invalid(schema, "{\"gid\":\"g\",\"op\":1,\"n\":\"x\"}", "$.n: expected integer, got string");
    /* properties and required say nothing about non-objects */
    expect_valid("{\"required\":[\"a\"],\"properties\":{\"a\":false}}", "[1]");
}
END_TEST

START_TEST(additional_properties)
{
    const char *closed = "{\"properties\":{\"a\":{}},\"additionalProperties\":false}";
    expect_valid(closed, "{\"a\":1}");
    expect_invalid(closed, "{\"a\":1,\"b\":2}", "$: property 'b' is not allowed (additionalProperties is false)");
    const char *strings = "{\"properties\":{\"n\":{\"type\":\"integer\"}},\"additionalProperties\":{\"type\":\"string\"}}";
    expect_valid(strings, "{\"n\":1,\"x\":\"y\"}");
    expect_invalid(strings, "{\"n\":1,\"x\":true}", "$.x: expected string, got boolean");
    expect_valid("{\"additionalProperties\":true}", "{\"x\":1}");
}
END_TEST

START_TEST(items_and_paths)
{
    const char *steps = "{\"properties\":{\"steps\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
                        "\"additionalProperties\":{\"type\":\"string\"}}}}}";
    expect_valid(steps, "{\"steps\":[{\"action\":\"a\"},{}]}");
    expect_invalid(steps, "{\"steps\":[{\"action\":\"a\"},{\"action\":5}]}",
                   "$.steps[1].action: expected string, got integer");
    expect_invalid(steps, "{\"steps\":[\"a\"]}", "$.steps[0]: expected object, got string");
    /* keys that are not plain names are quoted */
    expect_invalid("{\"additionalProperties\":{\"type\":\"string\"}}", "{\"a b\":1}",
                   "$[\"a b\"]: expected string, got integer");
    expect_invalid("{\"additionalProperties\":{\"type\":\"string\"}}", "{\"1st\":1}",
                   "$[\"1st\"]: expected string, got integer");
    expect_invalid("{\"additionalProperties\":{\"type\":\"string\"}}", "{\"$oid\":1}",
                   "$.$oid: expected string, got integer");
    expect_invalid("{\"items\":{\"items\":{\"type\":\"null\"}}}", "[[null],[null,0]]",
                   "$[1][1]: expected null, got integer");
}
END_TEST

START_TEST(enum_and_const)
{
    const char *ops = "{\"enum\":[\"prepare\",\"submit\",2]}";
    expect_valid(ops, "\"submit\"");
    expect_valid(ops, "2.0"); /* numbers compare by value */
    expect_invalid(ops, "\"commit\"", "$: value \"commit\" is not one of \"prepare\", \"submit\", 2");
    expect_invalid(ops, "{\"a\":1}", "$: value {...} is not one of \"prepare\", \"submit\", 2");
    expect_valid("{\"enum\":[{\"a\":[1,2]}]}", "{\"a\":[1,2.0]}");
    expect_invalid("{\"enum\":[{\"a\":[1,2]}]}", "{\"a\":[2,1]}", "$: value {...} is not one of {...}");
    expect_valid("{\"const\":\"registerBranch\"}", "\"registerBranch\"");
    expect_invalid("{\"const\":\"registerBranch\"}", "\"submit\"",
                   "$: value \"submit\" is not the constant \"registerBranch\"");
    expect_valid("{\"const\":null}", "null");
    expect_invalid("{\"const\":null}", "false", "$: value false is not the constant null");
}
END_TEST

START_TEST(string_lengths_count_code_points)
{
    const char *gid = "{\"type\":\"string\",\"minLength\":1,\"maxLength\":3}";
    expect_valid(gid, "\"abc\"");
    expect_valid(gid, "\"\\u00e9\\u8ba2\\ud83d\\ude00\""); /* é, 订, 😀: 3 code points, 9 bytes */
    expect_invalid(gid, "\"\"", "$: string of 0 characters is shorter than minLength 1");
    expect_invalid(gid, "\"abcd\"", "$: string of 4 characters is longer than maxLength 3");
    expect_invalid(gid, "\"\\u00e9\\u00e9\\u00e9\\u00e9\"", "$: string of 4 characters is longer than maxLength 3");
    expect_valid("{\"minLength\":9,\"maxLength\":1}", "12345"); /* they apply to strings only */
}
END_TEST

START_TEST(minimum_and_maximum)
{
    const char *status = "{\"minimum\":100,\"maximum\":599}";
    expect_valid(status, "100");
    expect_valid(status, "599");
    expect_valid(status, "250.5");
    expect_invalid(status, "99", "$: 99 is less than minimum 100");
    expect_invalid(status, "599.5", "$: 599.5 is greater than maximum 599");
    expect_invalid("{\"minimum\":0}", "-1", "$: -1 is less than minimum 0");
    expect_invalid("{\"minimum\":0.5}", "0", "$: 0 is less than minimum 0.5");
    expect_valid("{\"minimum\":0}", "\"-1\""); /* applies to numbers only */
    expect_valid("{\"maximum\":9223372036854775807}", "9223372036854775807");
}
END_TEST

START_TEST(pattern_is_an_unanchored_posix_search)
{
    const char *topic = "{\"pattern\":\"^[A-Za-z0-9._-]{1,249}$\"}";
    expect_valid(topic, "\"orders.replies_1-a\"");
    expect_invalid(topic, "\"orders replies\"",
                   "$: string \"orders replies\" does not match pattern \"^[A-Za-z0-9._-]{1,249}$\"");
    expect_invalid(topic, "\"\"", "$: string \"\" does not match pattern \"^[A-Za-z0-9._-]{1,249}$\"");
    /* ECMA-262's $ (no multiline) does not match before a trailing newline */
    expect_invalid(topic, "\"topic\\n\"",
                   "$: string \"topic\\n\" does not match pattern \"^[A-Za-z0-9._-]{1,249}$\"");
    expect_valid("{\"pattern\":\"b+\"}", "\"aaabbbccc\""); /* unanchored */
    expect_valid("{\"pattern\":\"^(\\\\.[0-9]{1,3})?Z$\"}", "\".25Z\"");
    expect_invalid("{\"pattern\":\"^(\\\\.[0-9]{1,3})?Z$\"}", "\"x25Z\"",
                   "$: string \"x25Z\" does not match pattern \"^(\\.[0-9]{1,3})?Z$\"");
    expect_valid("{\"pattern\":\"^x\"}", "7"); /* applies to strings only */
}
END_TEST

START_TEST(long_values_are_cut_in_messages)
{
    char instance[400];
    memset(instance, 'g', sizeof(instance));
    instance[0] = '"';
    instance[300] = '"';
    instance[301] = '\0';
    char err[512];
    ck_assert_int_eq(run("{\"pattern\":\"^a\"}", instance, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "ggg...") != NULL && strlen(err) < 200, "%s", err);
    /* a small buffer still gets a terminated prefix */
    char small[8];
    ck_assert_int_eq(run("{\"type\":\"string\"}", "1", small, sizeof(small)), -1);
    ck_assert_str_eq(small, "$: expe");
    /* no buffer at all */
    ck_assert_int_eq(run("{\"type\":\"string\"}", "1", NULL, 0), -1);
}
END_TEST

START_TEST(all_of)
{
    const char *both = "{\"allOf\":[{\"type\":\"integer\"},{\"minimum\":10}]}";
    expect_valid(both, "10");
    expect_invalid(both, "\"a\"", "$: expected integer, got string");
    expect_invalid(both, "9", "$: 9 is less than minimum 10");
}
END_TEST

START_TEST(any_of)
{
    const char *int64 = "{\"anyOf\":[{\"type\":\"integer\",\"minimum\":0},{\"type\":\"object\","
                        "\"required\":[\"$numberLong\"]}]}";
    expect_valid(int64, "5");
    expect_valid(int64, "{\"$numberLong\":\"5\"}");
    expect_invalid(int64, "\"5\"",
                   "$: matches none of the 2 schemas of anyOf (the first says: $: expected integer, got string)");
    expect_invalid(int64, "-1",
                   "$: matches none of the 2 schemas of anyOf (the first says: $: -1 is less than minimum 0)");
}
END_TEST

START_TEST(one_of)
{
    const char *one = "{\"oneOf\":[{\"type\":\"integer\"},{\"minimum\":5}]}";
    expect_valid(one, "1");     /* integer only */
    expect_valid(one, "5.5");   /* minimum only */
    expect_invalid(one, "7", "$: matches oneOf's schemas 0 and 1, but must match exactly one");
    expect_invalid(one, "2.5",
                   "$: matches none of the 2 schemas of oneOf (the first says: $: expected integer, got number)");
}
END_TEST

START_TEST(if_then_else)
{
    const char *rb = "{\"if\":{\"properties\":{\"op\":{\"const\":\"registerBranch\"}},\"required\":[\"op\"]},"
                     "\"then\":{\"required\":[\"branch_id\"]},\"else\":{\"required\":[\"trans_type\"]}}";
    expect_valid(rb, "{\"op\":\"registerBranch\",\"branch_id\":\"01\"}");
    expect_invalid(rb, "{\"op\":\"registerBranch\"}", "$: required property 'branch_id' is missing");
    expect_valid(rb, "{\"op\":\"submit\",\"trans_type\":\"saga\"}");
    expect_invalid(rb, "{\"op\":\"submit\"}", "$: required property 'trans_type' is missing");
    /* without then/else, if decides nothing; then/else without if do nothing */
    expect_valid("{\"if\":{\"type\":\"string\"}}", "5");
    expect_valid("{\"then\":false,\"else\":false}", "5");
    expect_invalid("{\"if\":{\"type\":\"string\"},\"then\":{\"minLength\":2}}", "\"a\"",
                   "$: string of 1 characters is shorter than minLength 2");
}
END_TEST

START_TEST(defs_and_refs)
{
    const char *schema = "{\"properties\":{\"gid\":{\"$ref\":\"#/$defs/gid\"},\"tree\":{\"$ref\":\"#/$defs/node\"}},"
                         "\"$defs\":{\"gid\":{\"type\":\"string\",\"maxLength\":4},"
                         "\"node\":{\"type\":\"object\",\"properties\":{\"kids\":{\"type\":\"array\","
                         "\"items\":{\"$ref\":\"#/$defs/node\"}}}}}}";
    expect_valid(schema, "{\"gid\":\"abcd\",\"tree\":{\"kids\":[{\"kids\":[]},{}]}}");
    expect_invalid(schema, "{\"gid\":\"abcde\"}", "$.gid: string of 5 characters is longer than maxLength 4");
    expect_invalid(schema, "{\"tree\":{\"kids\":[{\"kids\":[7]}]}}",
                   "$.tree.kids[0].kids[0]: expected object, got integer");
    /* $ref applies together with its siblings (2020-12) */
    expect_invalid("{\"$defs\":{\"s\":{\"type\":\"string\"}},\"$ref\":\"#/$defs/s\",\"minLength\":2}", "\"a\"",
                   "$: string of 1 characters is shorter than minLength 2");
    /* the root, escaped names, pointers into other keywords */
    expect_invalid("{\"items\":{\"$ref\":\"#\"},\"type\":\"array\"}", "[[],[1]]", "$[1][0]: expected array, got integer");
    expect_invalid("{\"$defs\":{\"a/b\":{\"type\":\"null\"}},\"$ref\":\"#/$defs/a~1b\"}", "1",
                   "$: expected null, got integer");
    expect_invalid("{\"anyOf\":[{\"type\":\"null\"}],\"properties\":{\"x\":{\"$ref\":\"#/anyOf/0\"}}}",
                   "{\"x\":1}", "$.x: expected null, got integer");
}
END_TEST

START_TEST(ref_loops_stop)
{
    expect_invalid("{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},\"b\":{\"$ref\":\"#/$defs/a\"}},\"$ref\":\"#/$defs/a\"}",
                   "1", "$: schema applied more than 256 levels deep (a $ref loop?)");
}
END_TEST

START_TEST(boolean_schemas)
{
    expect_valid("true", "{\"a\":1}");
    expect_invalid("false", "1", "$: no value is allowed here (the schema is false)");
    expect_invalid("{\"properties\":{\"a\":false}}", "{\"a\":1}",
                   "$.a: no value is allowed here (the schema is false)");
    expect_valid("{\"items\":true}", "[1,\"a\"]");
}
END_TEST

START_TEST(annotations_and_unknown_keywords_are_ignored)
{
    expect_valid("{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"title\":\"t\","
                 "\"description\":\"d\",\"examples\":[1],\"default\":2,\"format\":\"date-time\","
                 "\"$comment\":\"c\",\"x-dtmq\":{\"type\":\"string\"}}",
                 "\"not a date\"");
}
END_TEST

START_TEST(load_errors)
{
    expect_load_error("{\"type\":", "#: invalid JSON at line 1 column 8: unexpected token near end of file");
    expect_load_error("[]", "#: a schema must be an object or a boolean");
    expect_load_error("{\"type\":\"text\"}", "#: type: \"text\" is not a JSON Schema type");
    expect_load_error("{\"type\":[]}", "#: type must be a type name or a non-empty array of them");
    char err[256] = "";
    ck_assert_ptr_null(json_schema_load("{\"properties\":{\"a\":{\"pattern\":\"([\"}}}", err, sizeof(err)));
    const char *bad_regex = "#/properties/a: pattern \"([\" does not compile: "; /* then regerror's words */
    ck_assert_msg(strncmp(err, bad_regex, strlen(bad_regex)) == 0 && strlen(err) > strlen(bad_regex), "%s", err);
    /* stacked quantifiers: undefined in POSIX, gigabytes in glibc's regcomp */
    expect_load_error("{\"properties\":{\"a\":{\"pattern\":\"^x+++{1,3}$\"}}}",
                      "#/properties/a: pattern \"^x+++{1,3}$\" stacks quantifiers (e.g. a++ or a+{1,3}), "
                      "which POSIX leaves undefined");
    expect_load_error("{\"pattern\":\"a{2}*\"}",
                      "#: pattern \"a{2}*\" stacks quantifiers (e.g. a++ or a+{1,3}), which POSIX leaves undefined");
    char ok_err[256] = "";
    json_schema *ok = json_schema_load("{\"pattern\":\"^[+*?{]+(a|b)?[]x]*\\\\+{1,2}$\"}", ok_err, sizeof(ok_err));
    ck_assert_msg(ok != NULL, "quantifier characters in brackets or escaped are fine: %s", ok_err);
    json_schema_free(ok);
    expect_load_error("{\"required\":[1]}", "#: required[0] must be a string");
    expect_load_error("{\"minLength\":-1}", "#: minLength must be a non-negative integer");
    expect_load_error("{\"maximum\":\"5\"}", "#: maximum must be a number");
    expect_load_error("{\"enum\":\"a\"}", "#: enum must be an array");
    expect_load_error("{\"anyOf\":[]}", "#: anyOf must be a non-empty array of schemas");
    expect_load_error("{\"allOf\":[{\"type\":\"integer\"},3]}", "#/allOf/1: a schema must be an object or a boolean");
    expect_load_error("{\"items\":[{}]}", "#: items must be one schema (tuples, prefixItems, are not supported)");
    expect_load_error("{\"$ref\":\"#/$defs/missing\"}",
                      "$ref: \"#/$defs/missing\" does not point into this schema (only local refs such as "
                      "\"#/$defs/name\" are supported)");
    expect_load_error("{\"$ref\":\"other.json#/a\"}",
                      "$ref: \"other.json#/a\" does not point into this schema (only local refs such as "
                      "\"#/$defs/name\" are supported)");
    expect_load_error("{\"$defs\":{\"x\":{\"type\":1}}}", "#/$defs/x: type must be a type name or a non-empty array of them");
    /* a known assertion this validator does not implement is refused, not ignored */
    expect_load_error("{\"properties\":{\"a\":{\"not\":{}}}}",
                      "#/properties/a: keyword 'not' is not supported by this validator");
    expect_load_error("{\"minItems\":1}", "#: keyword 'minItems' is not supported by this validator");
    ck_assert_ptr_null(json_schema_load("nope", NULL, 0));
    json_schema_free(NULL);
}
END_TEST

START_TEST(null_arguments)
{
    char err[64];
    json_t *v = json_integer(1);
    ck_assert_int_eq(json_schema_validate(NULL, v, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "$: no schema to validate");
    json_schema *s = load_ok("true");
    ck_assert_int_eq(json_schema_validate(s, NULL, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "$: no value to validate");
    json_schema_free(s);
    json_decref(v);
}
END_TEST

/* ---- embedded schemas ---------------------------------------------------------- */

START_TEST(every_embedded_schema_loads_and_matches_its_file)
{
    for (size_t i = 0; i < SCHEMA_COUNT; i++) {
        const char *text = schema_text(schema_names[i]);
        ck_assert_msg(text != NULL, "%s is not embedded", schema_names[i]);
        char path[256];
        snprintf(path, sizeof(path), "schemas/%s.schema.json", schema_names[i]);
        char *file = read_file(path);
        ck_assert_msg(file != NULL, "cannot read %s (run from the repository root)", path);
        ck_assert_msg(strcmp(text, file) == 0,
                      "the embedded %s differs from %s: rebuild (the Makefile must list the schema "
                      "files as prerequisites of schemas_embedded.o)", schema_names[i], path);
        free(file);
        char err[256] = "";
        json_schema *s = json_schema_load(text, err, sizeof(err));
        ck_assert_msg(s != NULL, "%s: %s", schema_names[i], err);
        json_schema_free(s);
    }
    ck_assert_ptr_null(schema_text("kafka/nope"));
    ck_assert_ptr_null(schema_text("submit"));
    ck_assert_ptr_null(schema_text(""));
    ck_assert_ptr_null(schema_text(NULL));
}
END_TEST

/* kafka/submit carries the HTTP TransGlobal under $defs (a schema may only
 * $ref inside itself): the two copies must not drift apart. */
START_TEST(trans_global_is_the_same_over_kafka_and_http)
{
    json_t *kafka = parse(schema_text("kafka/submit"));
    json_t *http = parse(schema_text("http/trans_global"));
    json_t *kafka_defs = json_object_get(kafka, "$defs");
    json_t *kafka_tg = json_object_get(kafka_defs, "trans_global");
    ck_assert_ptr_nonnull(kafka_tg);
    const char *same[] = {"type", "required", "properties"};
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
        ck_assert_msg(json_equal(json_object_get(kafka_tg, same[i]), json_object_get(http, same[i])),
                      "kafka/submit#/$defs/trans_global/%s differs from http/trans_global#/%s", same[i], same[i]);
    const char *key;
    json_t *def;
    json_object_foreach(json_object_get(http, "$defs"), key, def)
        ck_assert_msg(json_equal(def, json_object_get(kafka_defs, key)), "$defs/%s differs", key);
    json_decref(kafka);
    json_decref(http);
}
END_TEST

/* Validates a JSON text against an embedded schema; 0/-1 with err. */
static int run_embedded(const char *name, const char *instance, char *err, size_t errlen)
{
    return run(schema_text(name), instance, err, errlen);
}

static void expect_embedded_error(const char *name, const char *instance, const char *want)
{
    char err[512] = "";
    ck_assert_int_eq(run_embedded(name, instance, err, sizeof(err)), -1);
    ck_assert_str_eq(err, want);
}

START_TEST(submit_schema_messages)
{
    const char *n = "kafka/submit";
    expect_embedded_error(n, "{\"op\":\"submit\",\"trans_type\":\"saga\"}", "$: required property 'gid' is missing");
    expect_embedded_error(n, "{\"gid\":\"g\",\"op\":\"commit\"}",
                          "$.op: value \"commit\" is not one of \"prepare\", \"submit\", \"abort\", \"registerBranch\"");
    expect_embedded_error(n, "{\"gid\":\"g\",\"op\":\"submit\"}", "$: required property 'trans_type' is missing");
    expect_embedded_error(n, "{\"gid\":\"g\",\"op\":\"submit\",\"trans_type\":\"saga\",\"steps\":[{\"action\":\"a\"},{\"action\":5}]}",
                          "$.steps[1].action: expected string, got integer");
    expect_embedded_error(n, "{\"gid\":\"g\",\"op\":\"submit\",\"trans_type\":\"saga\",\"timeout_to_fail\":-1}",
                          "$.timeout_to_fail: -1 is less than minimum 0");
    expect_embedded_error(n, "{\"gid\":\"g\",\"op\":\"submit\",\"trans_type\":\"saga\",\"reply_to\":\"a b\"}",
                          "$.reply_to: string \"a b\" does not match pattern \"^[A-Za-z0-9._-]{1,249}$\"");
    expect_embedded_error(n, "{\"gid\":\"g\",\"op\":\"registerBranch\",\"trans_type\":\"tcc\"}",
                          "$: required property 'branch_id' is missing");
    expect_embedded_error(n, "{\"gid\":\"g\",\"op\":\"registerBranch\",\"trans_type\":\"workflow\",\"branch_id\":\"01\",\"branch_op\":\"action\",\"status\":\"x\"}",
                          "$.status: value \"x\" is not one of \"succeed\", \"failed\"");
    char err[256];
    ck_assert_int_eq(run_embedded(n, "{\"gid\":\"g\",\"op\":\"abort\"}", err, sizeof(err)), 0);
}
END_TEST

/* ---- concurrent use ---------------------------------------------------------- */

typedef struct validate_job {
    const json_schema *schema;
    json_t *good, *bad;
    int mistakes;
} validate_job;

static void *validate_many(void *arg)
{
    validate_job *job = arg;
    for (int i = 0; i < 2000; i++) {
        char err[256];
        if (json_schema_validate(job->schema, job->good, err, sizeof(err)) != 0)
            job->mistakes++;
        if (json_schema_validate(job->schema, job->bad, err, sizeof(err)) != -1 ||
            strcmp(err, "$.reply_to: string \"a b\" does not match pattern \"^[A-Za-z0-9._-]{1,249}$\"") != 0)
            job->mistakes++;
    }
    return NULL;
}

START_TEST(concurrent_validation_of_one_schema)
{
    enum { THREADS = 8 };
    json_schema *s = load_ok(schema_text("kafka/submit"));
    json_t *good = parse("{\"gid\":\"g\",\"op\":\"submit\",\"trans_type\":\"saga\",\"reply_to\":\"ok\","
                         "\"steps\":[{\"action\":\"http://a\"}],\"payloads\":[\"{}\"]}");
    json_t *bad = parse("{\"gid\":\"g\",\"op\":\"submit\",\"trans_type\":\"saga\",\"reply_to\":\"a b\"}");
    pthread_t threads[THREADS];
    validate_job jobs[THREADS];
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (validate_job){s, good, bad, 0};
        ck_assert_int_eq(pthread_create(&threads[i], NULL, validate_many, &jobs[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        ck_assert_int_eq(jobs[i].mistakes, 0);
    }
    json_decref(good);
    json_decref(bad);
    json_schema_free(s);
}
END_TEST

/* ---- the sample corpus ---------------------------------------------------------- */

typedef struct sample {
    char path[1024]; /* SAMPLES_DIR/<dir>/<kind>/<file> */
    char schema[256]; /* <dir> with its first '-' made '/': "kafka/submit" */
    int expect_valid;
} sample;

static sample *samples;
static size_t sample_count, sample_cap;

static void add_sample(const char *dir, const char *kind, const char *file)
{
    if (sample_count == sample_cap) {
        sample_cap = sample_cap ? 2 * sample_cap : 64;
        samples = realloc(samples, sample_cap * sizeof(*samples));
        if (samples == NULL)
            abort();
    }
    sample *s = &samples[sample_count++];
    snprintf(s->path, sizeof(s->path), "%s/%s/%s/%s", SAMPLES_DIR, dir, kind, file);
    snprintf(s->schema, sizeof(s->schema), "%s", dir);
    char *dash = strchr(s->schema, '-'); /* kafka-submit_reply -> kafka/submit_reply */
    if (dash)
        *dash = '/';
    s->expect_valid = strcmp(kind, "valid") == 0;
}

static int by_path(const void *a, const void *b)
{
    return strcmp(((const sample *)a)->path, ((const sample *)b)->path);
}

/* Lists every sample file; before the suite runs, so each is one loop check. */
static void collect_samples(void)
{
    DIR *top = opendir(SAMPLES_DIR);
    if (top == NULL)
        return; /* samples_exist fails and says why */
    struct dirent *d;
    while ((d = readdir(top)) != NULL) {
        if (d->d_name[0] == '.')
            continue;
        for (int valid = 0; valid < 2; valid++) {
            const char *kind = valid ? "valid" : "invalid";
            char path[512];
            snprintf(path, sizeof(path), "%s/%s/%s", SAMPLES_DIR, d->d_name, kind);
            DIR *files = opendir(path);
            struct dirent *f;
            while (files != NULL && (f = readdir(files)) != NULL) {
                size_t len = strlen(f->d_name);
                if (len > 5 && strcmp(f->d_name + len - 5, ".json") == 0)
                    add_sample(d->d_name, kind, f->d_name);
            }
            if (files)
                closedir(files);
        }
    }
    closedir(top);
    if (sample_count > 0)
        qsort(samples, sample_count, sizeof(*samples), by_path);
}

START_TEST(samples_exist_for_every_schema)
{
    ck_assert_msg(sample_count > 0, "no samples under %s (run from the repository root)", SAMPLES_DIR);
    for (size_t i = 0; i < SCHEMA_COUNT; i++) {
        size_t valid = 0, invalid = 0;
        for (size_t k = 0; k < sample_count; k++)
            if (strcmp(samples[k].schema, schema_names[i]) == 0)
                *(samples[k].expect_valid ? &valid : &invalid) += 1;
        ck_assert_msg(valid >= 3 && invalid >= 3, "%s: %zu valid and %zu invalid samples (want 3+ each)",
                      schema_names[i], valid, invalid);
        if (strcmp(schema_names[i], "kafka/submit") == 0)
            ck_assert_msg(valid >= 6 && invalid >= 10, "kafka/submit: %zu valid, %zu invalid", valid, invalid);
    }
    for (size_t k = 0; k < sample_count; k++)
        ck_assert_msg(schema_text(samples[k].schema) != NULL, "%s: no embedded schema '%s'", samples[k].path,
                      samples[k].schema);
}
END_TEST

START_TEST(sample_is_judged_right)
{
    const sample *s = &samples[_i];
    const char *text = schema_text(s->schema);
    ck_assert_msg(text != NULL, "%s: no embedded schema '%s'", s->path, s->schema);
    json_schema *schema = load_ok(text);
    json_error_t jerr;
    json_t *v = json_load_file(s->path, JSON_DECODE_ANY, &jerr);
    ck_assert_msg(v != NULL, "%s: not JSON: %s", s->path, jerr.text);
    char err[512] = "";
    int rc = json_schema_validate(schema, v, err, sizeof(err));
    json_decref(v);
    json_schema_free(schema);
    if (s->expect_valid)
        ck_assert_msg(rc == 0, "%s should be valid against %s, but %s", s->path, s->schema, err);
    else
        ck_assert_msg(rc == -1 && err[0] == '$', "%s should be invalid against %s", s->path, s->schema);
}
END_TEST

int main(void)
{
    collect_samples();
    Suite *s = suite_create("json_schema");
    test_group kw = {.suite = s};
    test_add(&kw, type_single_and_list);
    test_add(&kw, type_integer_is_a_json_integer);
    test_add(&kw, properties_and_required);
    test_add(&kw, additional_properties);
    test_add(&kw, items_and_paths);
    test_add(&kw, enum_and_const);
    test_add(&kw, string_lengths_count_code_points);
    test_add(&kw, minimum_and_maximum);
    test_add(&kw, pattern_is_an_unanchored_posix_search);
    test_add(&kw, long_values_are_cut_in_messages);
    test_add(&kw, all_of);
    test_add(&kw, any_of);
    test_add(&kw, one_of);
    test_add(&kw, if_then_else);
    test_add(&kw, defs_and_refs);
    test_add(&kw, ref_loops_stop);
    test_add(&kw, boolean_schemas);
    test_add(&kw, annotations_and_unknown_keywords_are_ignored);
    test_add(&kw, load_errors);
    test_add(&kw, null_arguments);
    test_group emb = {.suite = s};
    test_add(&emb, every_embedded_schema_loads_and_matches_its_file);
    test_add(&emb, trans_global_is_the_same_over_kafka_and_http);
    test_add(&emb, submit_schema_messages);
    test_add(&emb, concurrent_validation_of_one_schema);
    test_add(&emb, samples_exist_for_every_schema);
    test_add_loop(&emb, sample_is_judged_right, 0, (int)sample_count);
    int rc = run_suite(s);
    free(samples);
    return rc;
}
