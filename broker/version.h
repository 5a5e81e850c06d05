/* version.h — dtmq's version string, reported by /api/dtmsvr/version and --version. */
#ifndef DTMQ_VERSION_H
#define DTMQ_VERSION_H
#define DTMQ_VERSION "0.1.0"
#endif
