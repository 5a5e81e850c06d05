/*
 * kafka_mock_port.h — puts the embedded (mock) Kafka cluster on a port of
 * the operator's choosing. librdkafka's mock API (2.0.2, Debian 12) always
 * binds its broker to a free port; this module interposes bind(2) for the
 * one call that creates the cluster, on the calling thread only.
 */
#ifndef DTMQ_KAFKA_MOCK_PORT_H
#define DTMQ_KAFKA_MOCK_PORT_H

/* Whether 127.0.0.1:port can be listened on now (with SO_REUSEADDR):
 * 0, or the errno of the failed bind. port 0: always 0. */
int mock_port_check(int port);

/* Until mock_port_disarm, the calling thread's next IPv4 bind to port 0
 * binds to port instead (with SO_REUSEADDR, so a restart finds it free
 * while old connections linger in TIME_WAIT). port 0: no change. */
void mock_port_arm(int port);

/* Ends the arming. Returns 0 when the port was bound (or none was asked
 * for), else the errno of the failed bind (EADDRINUSE: taken), or -1 when
 * no bind to port 0 was seen at all. */
int mock_port_disarm(void);

#endif
