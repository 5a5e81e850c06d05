/* gid.h — new global transaction ids, as /api/dtmsvr/newGid hands them out. */
#ifndef DTMQ_GID_H
#define DTMQ_GID_H
#include <stddef.h>

/* 22 characters from [0-9A-Za-z] (128 random bits from getrandom), like
 * DTM's shortuuid gids. out must hold GID_LEN + 1 bytes. Returns 0, or -1 if
 * the kernel's random source failed. */
#define GID_LEN 22
int gid_new(char *out);

#endif
