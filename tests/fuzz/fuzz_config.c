/*
 * fuzz_config.c — config_load (broker/config.c) reading a YAML file: the input
 * is written to a temporary file and loaded with "dtmq -c FILE". It must never
 * crash, must say why it refused a file, and config_free must release
 * everything (LeakSanitizer checks that). DTMQ_* variables are cleared first
 * so that only the file counts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

extern char **environ;
static char path[64];

static void remove_file(void)
{
    if (path[0])
        unlink(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* unset every DTMQ_* variable (restart the scan after each unset) */
    for (int again = 1; again;) {
        again = 0;
        for (char **e = environ; *e; e++) {
            if (strncmp(*e, "DTMQ_", 5) == 0) {
                char name[256];
                size_t n = strcspn(*e, "=");
                if (n >= sizeof name)
                    continue;
                memcpy(name, *e, n);
                name[n] = '\0';
                unsetenv(name);
                again = 1;
                break;
            }
        }
    }
    snprintf(path, sizeof path, "/tmp/dtmq-fuzz-config-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        abort();
    close(fd);
    atexit(remove_file);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        abort();
    if (size > 0 && fwrite(data, 1, size, f) != size)
        abort();
    fclose(f);

    char prog[] = "dtmq", flag[] = "-c";
    char *argv[] = {prog, flag, path, NULL};
    dtmq_config cfg;
    char err[512];
    err[0] = '\0';
    config_status st = config_load(&cfg, 3, argv, err, sizeof err);
    if (st == CONFIG_ERROR && err[0] == '\0')
        __builtin_trap(); /* a refusal must say why */
    if (st != CONFIG_OK && st != CONFIG_ERROR)
        __builtin_trap(); /* no -h or -v was given */
    if (st == CONFIG_OK && (cfg.http_host == NULL || cfg.store_uri == NULL || cfg.kafka == NULL ||
                            cfg.http_port < 1 || cfg.http_port > 65535))
        __builtin_trap();
    config_free(&cfg);
    return 0;
}
