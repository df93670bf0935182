/*
 * The C ABI from 8 threads at once: each thread creates, connects, publishes,
 * polls and frees its own clients while all of them share one handle (subscribe,
 * publish, poll, status, disconnect/connect on it concurrently), race to free a
 * contested handle, and keep using a handle another thread has freed. Every call
 * must return a documented code; run by tests/faults/abi.rs natively and under
 * valgrind, which must report no errors.
 * Usage: abi_threads http://127.0.0.1:PORT ws://127.0.0.1:PORT
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "datanet.h"
#include "test_support.h"

#define THREADS 8
#define ROUNDS 3

static const char *api_url, *ws_url;
static uint64_t shared_handle;    /* used by every thread; freed by main at the end */
static uint64_t doomed_handle;    /* freed by thread 0 while the others still use it */
static uint64_t contested_handle; /* freed by two threads at the same moment */
static pthread_barrier_t contest;
static atomic_int contested_frees_ok;
static atomic_int failures;
static atomic_long calls;
static atomic_long records_seen;

#define EXPECT(cond, ...)                                                              \
    do {                                                                               \
        atomic_fetch_add(&calls, 1);                                                   \
        if (!(cond)) {                                                                 \
            atomic_fetch_add(&failures, 1);                                            \
            fprintf(stderr, "FAIL thread %d line %d: %s: ", id, __LINE__, #cond);      \
            fprintf(stderr, __VA_ARGS__);                                              \
            fprintf(stderr, "\n");                                                     \
        }                                                                              \
    } while (0)

static const char *last_error(void) {
    static _Thread_local char buf[512];
    size_t len = 0;
    if (dn_last_error(buf, sizeof buf, &len) != DN_OK) return "(dn_last_error failed)";
    return buf;
}

/* A batch is consecutive records whose lengths add up to what dn_poll reported. */
static int batch_is_well_formed(const uint8_t *batch, size_t len, uint32_t count) {
    size_t at = 0;
    uint32_t seen = 0;
    while (at < len) {
        if (len - at < DN_RECORD_HEADER_LEN) return 0;
        const uint8_t *r = batch + at;
        uint64_t fields = (uint64_t)u32_at(r + 20) + u32_at(r + 24) + u32_at(r + 28) + u32_at(r + 32) + u32_at(r + 36);
        uint32_t record_len = u32_at(r);
        if (record_len != DN_RECORD_HEADER_LEN + fields || at + record_len > len) return 0;
        if (r[4] < DN_EVENT_MESSAGE_JSON || r[4] > DN_EVENT_MESSAGES_JSON) return 0;
        at += record_len;
        seen++;
    }
    atomic_fetch_add(&records_seen, seen);
    return seen == count;
}

/* dn_poll with the JSON messages grouped, as DataNet.py polls; records and
 * bytes into *count and *len. */
static int32_t poll_batch(uint64_t h, uint8_t *batch, size_t cap, uint32_t max, size_t *len, uint32_t *count) {
    DnPollInfo info;
    int32_t rc = dn_poll(h, batch, cap, max, DN_POLL_GROUP_JSON, &info);
    *len = rc == DN_OK ? (size_t)info.len : 0;
    *count = rc == DN_OK ? info.records : 0;
    return rc;
}

static int ok_or_gone(int32_t rc) { return rc == DN_OK || rc == DN_ERR_INVALID_HANDLE; }

static void *worker(void *arg) {
    int id = (int)(intptr_t)arg;
    char config[512], channel[64];
    snprintf(config, sizeof config,
             "{\"api_key\":\"ak_threads_%d\",\"api_url\":\"%s\",\"ws_url\":\"%s\",\"reconnect_base_ms\":20,"
             "\"reconnect_max_ms\":100}",
             id, api_url, ws_url);
    snprintf(channel, sizeof channel, "project.demo.threads.%d", id);
    uint8_t batch[16384];
    char status[4096];
    size_t len = 0;
    uint32_t count = 0;
    double value = 0;

    /* Threads 1 and 2 free the contested handle at the same moment: one wins. */
    if (id == 1 || id == 2) {
        pthread_barrier_wait(&contest);
        int32_t rc = dn_client_free(contested_handle);
        EXPECT(ok_or_gone(rc), "contested free rc=%d", rc);
        if (rc == DN_OK) atomic_fetch_add(&contested_frees_ok, 1);
    }

    for (int round = 0; round < ROUNDS; round++) {
        /* An own client, start to end. */
        uint64_t h = 0;
        EXPECT(dn_client_new(config, &h) == DN_OK && h != 0, "new: %s", last_error());
        EXPECT(dn_connect(h) == DN_OK, "connect: %s", last_error());
        EXPECT(dn_subscribe(h, channel) == DN_OK, "subscribe: %s", last_error());
        EXPECT(dn_publish_json(h, channel, "{\"n\":1}") == DN_OK, "publish: %s", last_error());
        /* Poll until the client has something to say (it is live when freed). */
        for (int tries = 0; tries < 200; tries++) {
            EXPECT(poll_batch(h, batch, sizeof batch, 0, &len, &count) == DN_OK &&
                       batch_is_well_formed(batch, len, count),
                   "poll own: %s", last_error());
            if (count > 0) break;
            sleep_ms(10);
        }
        EXPECT(dn_status(h, status, sizeof status, &len) == DN_OK && len == strlen(status), "status own");

        /* The shared handle, from every thread at once. */
        EXPECT(dn_subscribe(shared_handle, channel) == DN_OK, "subscribe shared: %s", last_error());
        EXPECT(dn_publish_json(shared_handle, "project.demo.threads.shared", "[1,2,3]") == DN_OK, "publish shared");
        int32_t rc = poll_batch(shared_handle, batch, sizeof batch, 32, &len, &count);
        EXPECT(rc == DN_OK && batch_is_well_formed(batch, len, count), "poll shared rc=%d", rc);
        EXPECT(dn_status(shared_handle, status, sizeof status, &len) == DN_OK, "status shared");
        rc = dn_value(shared_handle, "project.demo.threads.shared", "0", &value);
        EXPECT(rc == DN_OK || rc == DN_ERR_NOT_FOUND, "value shared rc=%d", rc);
        rc = dn_unsubscribe(shared_handle, channel);
        EXPECT(rc == DN_OK, "unsubscribe shared rc=%d", rc);
        if (id % 4 == 0) {
            EXPECT(dn_disconnect(shared_handle) == DN_OK && dn_connect(shared_handle) == DN_OK, "reconnect shared");
        }

        /* The doomed handle: thread 0 frees it in round 1; the others see OK or
         * INVALID_HANDLE, never anything else. */
        if (id == 0 && round == 1) EXPECT(dn_client_free(doomed_handle) == DN_OK, "free doomed");
        rc = dn_publish_json(doomed_handle, channel, "7");
        EXPECT(ok_or_gone(rc), "publish doomed rc=%d", rc);
        rc = poll_batch(doomed_handle, batch, sizeof batch, 0, &len, &count);
        EXPECT(ok_or_gone(rc), "poll doomed rc=%d", rc);
        rc = dn_status(doomed_handle, status, sizeof status, &len);
        EXPECT(ok_or_gone(rc), "status doomed rc=%d", rc);
        rc = dn_connect(doomed_handle);
        EXPECT(ok_or_gone(rc), "connect doomed rc=%d", rc);

        /* Free the own client, then misuse it. */
        EXPECT(dn_client_free(h) == DN_OK, "free own");
        EXPECT(dn_client_free(h) == DN_ERR_INVALID_HANDLE, "double free");
        EXPECT(dn_publish_json(h, channel, "1") == DN_ERR_INVALID_HANDLE, "stale publish");
        EXPECT(poll_batch(h, batch, sizeof batch, 0, &len, &count) == DN_ERR_INVALID_HANDLE, "stale poll");
        EXPECT(dn_status(h, status, sizeof status, &len) == DN_ERR_INVALID_HANDLE, "stale status");
        /* The last error belongs to this thread, whatever the others did since. */
        EXPECT(strstr(last_error(), "unknown client handle") != NULL, "last error %s", last_error());
    }
    return NULL;
}

static uint64_t new_client(const char *key) {
    int id = -1;
    char config[512];
    snprintf(config, sizeof config, "{\"api_key\":\"%s\",\"api_url\":\"%s\",\"ws_url\":\"%s\"}", key, api_url, ws_url);
    uint64_t handle = 0;
    EXPECT(dn_client_new(config, &handle) == DN_OK, "new %s: %s", key, last_error());
    return handle;
}

int main(int argc, char **argv) {
    int id = -1;
    if (argc != 3) {
        fprintf(stderr, "usage: %s API_URL WS_URL\n", argv[0]);
        return 2;
    }
    api_url = argv[1];
    ws_url = argv[2];
    shared_handle = new_client("ak_threads_shared");
    doomed_handle = new_client("ak_threads_doomed");
    contested_handle = new_client("ak_threads_contested");
    EXPECT(dn_connect(shared_handle) == DN_OK && dn_connect(doomed_handle) == DN_OK, "connect");
    EXPECT(dn_subscribe(shared_handle, "project.demo.threads.shared") == DN_OK, "subscribe");
    pthread_barrier_init(&contest, NULL, 2);

    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&threads[i], NULL, worker, (void *)(intptr_t)i);
    for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&contest);

    EXPECT(atomic_load(&contested_frees_ok) == 1, "exactly one of two racing frees wins, got %d",
           atomic_load(&contested_frees_ok));
    EXPECT(dn_client_free(doomed_handle) == DN_ERR_INVALID_HANDLE, "doomed stays freed");
    /* The shared client still works after all that. */
    uint8_t batch[16384];
    size_t len = 0;
    uint32_t count = 0;
    for (int tries = 0; tries < 400; tries++) {
        EXPECT(poll_batch(shared_handle, batch, sizeof batch, 0, &len, &count) == DN_OK, "final poll");
        if (count > 0) batch_is_well_formed(batch, len, count);
        if (atomic_load(&records_seen) > 0) break;
        sleep_ms(25);
    }
    EXPECT(atomic_load(&records_seen) > 0, "the clients produced events");
    EXPECT(dn_client_free(shared_handle) == DN_OK, "free shared");

    wait_until_single_threaded();
    printf("abi_threads: %d threads, %ld calls, %ld records, %d failed\n", THREADS, atomic_load(&calls),
           atomic_load(&records_seen), atomic_load(&failures));
    return atomic_load(&failures) == 0 ? 0 : 1;
}
