/*
 * Helpers shared by the C ABI test programs (abi_test.c, abi_threads.c).
 * Linux-only, like these tests.
 */
#ifndef DATANET_TEST_SUPPORT_H
#define DATANET_TEST_SUPPORT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A little-endian u32 of a record header. */
static uint32_t u32_at(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

/* The library stops a freed client's thread within 500 ms or leaves it to finish
 * on its own (dn_client_free never waits longer). Under valgrind that takes
 * longer, so before exiting, wait (bounded) until only this program's main thread
 * is left: what the library still holds at exit is then a leak, not a thread that
 * had not finished yet. */
static void wait_until_single_threaded(void) {
    for (int tries = 0; tries < 600; tries++) {
        FILE *status = fopen("/proc/self/status", "r");
        char line[256];
        int threads = 0;
        while (status && fgets(line, sizeof line, status))
            if (strncmp(line, "Threads:", 8) == 0) threads = atoi(line + 8);
        if (status) fclose(status);
        if (threads == 1) return;
        sleep_ms(50);
    }
}

#endif
