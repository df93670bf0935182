/*
 * C ABI test: compiled against include/datanet.h and linked to the cdylib by
 * tests/c_abi.rs, which passes a running local gateway's URLs.
 * Usage: abi_test http://127.0.0.1:PORT ws://127.0.0.1:PORT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "datanet.h"
#include "test_support.h"

static int passed = 0, failed = 0;

#define CHECK(cond, ...)                                               \
    do {                                                               \
        if (cond) {                                                    \
            passed++;                                                  \
        } else {                                                       \
            failed++;                                                  \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                              \
            fprintf(stderr, "\n");                                     \
        }                                                              \
    } while (0)

static const char *last_error(void) {
    static char buf[1024];
    size_t len = 0;
    if (dn_last_error(buf, sizeof buf, &len) != DN_OK) return "(dn_last_error failed)";
    return buf;
}

/* One decoded record of a poll batch. */
typedef struct {
    uint8_t kind, flags;
    int64_t ts;
    uint32_t replaced;
    const uint8_t *channel, *from, *content_type, *meta, *payload;
    uint32_t channel_len, from_len, content_type_len, meta_len, payload_len;
    uint32_t record_len;
} record_t;

static record_t parse_record(const uint8_t *p) {
    record_t r;
    r.record_len = u32_at(p);
    r.kind = p[4];
    r.flags = p[5];
    memcpy(&r.ts, p + 8, 8); /* little-endian host */
    r.replaced = u32_at(p + 16);
    r.channel_len = u32_at(p + 20);
    r.from_len = u32_at(p + 24);
    r.content_type_len = u32_at(p + 28);
    r.meta_len = u32_at(p + 32);
    r.payload_len = u32_at(p + 36);
    r.channel = p + DN_RECORD_HEADER_LEN;
    r.from = r.channel + r.channel_len;
    r.content_type = r.from + r.from_len;
    r.meta = r.content_type + r.content_type_len;
    r.payload = r.meta + r.meta_len;
    return r;
}

static int field_is(const uint8_t *field, uint32_t len, const char *text) {
    return len == strlen(text) && memcmp(field, text, len) == 0;
}

static uint8_t batch[1 << 16];
static size_t batch_len = 0, batch_at = 0;
static uint32_t poll_flags = 0;
/* Kinds of every record wait_for saw, skipped ones included. */
static int seen_kinds[16];

/* Takes records in order, polling when the current batch is used up, until one of
 * `kind` arrives (copied to `keep`); records before it are skipped, later ones stay. */
static int wait_for(uint64_t client, uint8_t kind, record_t *out, uint8_t *keep, size_t keep_cap) {
    for (int tries = 0; tries < 2000;) {
        if (batch_at >= batch_len) {
            DnPollInfo info;
            batch_at = batch_len = 0;
            if (dn_poll(client, batch, sizeof batch, 0, poll_flags, &info) != DN_OK) return 0;
            batch_len = (size_t)info.len;
            if (info.records == 0) {
                sleep_ms(5);
                tries++;
                continue;
            }
        }
        record_t r = parse_record(batch + batch_at);
        batch_at += r.record_len;
        if (r.kind < 16) seen_kinds[r.kind]++;
        if (r.kind == kind && r.record_len <= keep_cap) {
            memcpy(keep, batch + batch_at - r.record_len, r.record_len);
            *out = parse_record(keep);
            return 1;
        }
    }
    return 0;
}

static uint64_t new_client(const char *api_url, const char *ws_url) {
    char config[512];
    snprintf(config, sizeof config,
             "{\"api_key\":\"ak_c_abi\",\"api_url\":\"%s\",\"ws_url\":\"%s\",\"reconnect_base_ms\":50,"
             "\"reconnect_max_ms\":200}",
             api_url, ws_url);
    uint64_t handle = 0;
    int32_t rc = dn_client_new(config, &handle);
    CHECK(rc == DN_OK && handle != 0, "dn_client_new rc=%d %s", rc, last_error());
    return handle;
}

/* Polls until one batch has records; returns the DnPollInfo. */
static DnPollInfo poll_until_some(uint64_t client, uint32_t flags) {
    DnPollInfo info;
    memset(&info, 0, sizeof info);
    for (int tries = 0; tries < 2000; tries++) {
        batch_at = batch_len = 0;
        if (dn_poll(client, batch, sizeof batch, 0, flags, &info) != DN_OK) break;
        batch_len = (size_t)info.len;
        if (info.records > 0) break;
        sleep_ms(5);
    }
    return info;
}

/* Fixed-width fields where the size matters across platforms. */
typedef char values_info_is_32_bytes[sizeof(DnValuesInfo) == 32 ? 1 : -1];
typedef char poll_info_is_40_bytes[sizeof(DnPollInfo) == 40 ? 1 : -1];
typedef char rows_info_is_32_bytes[sizeof(DnRowsInfo) == 32 ? 1 : -1];
typedef char art_dmx_is_12_bytes[sizeof(DnArtDmx) == 12 ? 1 : -1];

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s API_URL WS_URL\n", argv[0]);
        return 2;
    }
    const char *api_url = argv[1], *ws_url = argv[2];
    uint8_t keep[4096];
    record_t r;
    size_t len = 0;
    DnPollInfo pi;
    int32_t rc = DN_OK;

    /* Versions. */
    CHECK(dn_abi_version() == DN_ABI_VERSION && DN_ABI_VERSION == 4, "abi %u", dn_abi_version());
    CHECK(strlen(dn_version()) > 0, "version");

    /* Misuse before any client exists; argument checks come first. */
    uint64_t handle = 0;
    CHECK(dn_client_new(NULL, &handle) == DN_ERR_NULL_POINTER, "null config");
    CHECK(strstr(last_error(), "config_json") != NULL, "last error names the argument: %s", last_error());
    CHECK(dn_client_new("{\"api_key\":\"k\"}", NULL) == DN_ERR_NULL_POINTER, "null out_handle");
    CHECK(dn_client_new("{not json", NULL) == DN_ERR_NULL_POINTER, "null out_handle before the config is read");
    CHECK(dn_client_new("{not json", &handle) == DN_ERR_INVALID_ARGUMENT, "bad json");
    CHECK(dn_client_new("{\"api_key\":\"k\",\"bogus\":1}", &handle) == DN_ERR_INVALID_ARGUMENT, "unknown key");
    CHECK(strstr(last_error(), "bogus") != NULL, "unknown key named: %s", last_error());
    CHECK(dn_client_new("{\"api_key\":\"\xff\xfe\"}", &handle) == DN_ERR_INVALID_UTF8, "invalid utf-8");
    CHECK(handle == 0, "out_handle untouched on failure");
    CHECK(dn_connect(0) == DN_ERR_INVALID_HANDLE, "handle 0 is never valid");
    CHECK(dn_connect(987654321) == DN_ERR_INVALID_HANDLE, "unknown handle");
    CHECK(dn_client_free(987654321) == DN_ERR_INVALID_HANDLE, "free unknown handle");

    /* The rules for output buffers and *out_len, on dn_last_error first. */
    char tiny[4];
    char full_error[1024];
    size_t error_len = 0;
    CHECK(dn_last_error(full_error, sizeof full_error, &error_len) == DN_OK && error_len == strlen(full_error),
          "success: out_len is the length without the NUL");
    CHECK(dn_last_error(tiny, sizeof tiny, &len) == DN_ERR_BUFFER_TOO_SMALL && len == error_len,
          "too small: out_len is the same length (%zu vs %zu)", len, error_len);
    len = 0;
    CHECK(dn_last_error(NULL, 0, &len) == DN_ERR_BUFFER_TOO_SMALL && len == error_len, "NULL, 0 is a size query");
    CHECK(dn_last_error(full_error, len + 1, &len) == DN_OK, "a text output needs out_len + 1");
    CHECK(dn_last_error(NULL, 8, &len) == DN_ERR_NULL_POINTER, "NULL with a capacity is an error");
    CHECK(dn_last_error(tiny, sizeof tiny, NULL) == DN_ERR_NULL_POINTER, "last_error null out_len");
    CHECK(strcmp(last_error(), full_error) == 0, "reading the last error does not change it");

    /* Two clients talking through the gateway. */
    uint64_t receiver = new_client(api_url, ws_url);
    uint64_t sender = new_client(api_url, ws_url);
    CHECK(receiver != 0 && sender != 0 && receiver != sender, "distinct non-zero handles");
    CHECK(dn_connect(receiver) == DN_OK && dn_connect(sender) == DN_OK, "connect");
    CHECK(dn_connect(receiver) == DN_OK, "connect twice is a no-op");
    CHECK(dn_subscribe(receiver, "project.demo.c") == DN_OK, "subscribe");
    CHECK(dn_subscribe(receiver, "project.demo.c") == DN_OK, "a second subscriber");
    CHECK(wait_for(receiver, DN_EVENT_CONNECTED, &r, keep, sizeof keep), "receiver connected");
    CHECK(r.payload_len > 0 && r.ts == 0 && r.channel_len == 0, "connected: the connection id, ts 0, no channel");
    CHECK(wait_for(receiver, DN_EVENT_SUB_ACK, &r, keep, sizeof keep), "sub ack");
    CHECK(field_is(r.channel, r.channel_len, "project.demo.c"), "sub ack channel");
    CHECK(field_is(r.payload, r.payload_len, "{\"occupancy\":1}"), "occupancy %.*s", (int)r.payload_len, r.payload);
    CHECK(wait_for(sender, DN_EVENT_CONNECTED, &r, keep, sizeof keep), "sender connected");
    char sender_id[64];
    snprintf(sender_id, sizeof sender_id, "%.*s", (int)r.payload_len, r.payload);

    /* The payload text as the publisher sent it: key order, big integers, number
     * spelling, escapes and whitespace. */
    const char *sent = "{\"r\":1, \"g\":2,\"b\":3,\"big\":12345678901234567890123,\"f\":1e-3,\"s\":\"\\u00e9\"}";
    CHECK(dn_publish_json(sender, "project.demo.c", sent) == DN_OK, "publish json");
    CHECK(wait_for(receiver, DN_EVENT_MESSAGE_JSON, &r, keep, sizeof keep), "json message");
    CHECK(field_is(r.payload, r.payload_len, sent), "payload as sent: %.*s", (int)r.payload_len, r.payload);
    CHECK(r.ts > 1600000000000LL && r.replaced == 0, "ts %lld replaced %u", (long long)r.ts, r.replaced);
    CHECK(field_is(r.from, r.from_len, sender_id), "from is the sender's connection id %s", sender_id);
    CHECK(seen_kinds[DN_EVENT_SUB_ACK] == 1, "one SUB_ACK per channel, whatever the subscriber count: %d",
          seen_kinds[DN_EVENT_SUB_ACK]);

    uint8_t bytes[3] = {1, 2, 3};
    CHECK(dn_publish_binary(sender, "project.demo.c", bytes, 3, "binary/dmx", "{\"universe\":1, \"z\":1.50}") == DN_OK,
          "bin");
    CHECK(wait_for(receiver, DN_EVENT_MESSAGE_BINARY, &r, keep, sizeof keep), "binary message");
    CHECK(r.payload_len == 3 && memcmp(r.payload, bytes, 3) == 0, "binary payload");
    CHECK(field_is(r.content_type, r.content_type_len, "binary/dmx"), "content type");
    CHECK(field_is(r.meta, r.meta_len, "{\"universe\":1, \"z\":1.50}"), "meta as sent %.*s", (int)r.meta_len, r.meta);
    CHECK(r.flags == 0, "not raw");

    /* A tiny poll buffer: the event waits, and the size needed is reported. */
    CHECK(dn_publish_json(sender, "project.demo.c", "[1,2,3]") == DN_OK, "publish array");
    for (int tries = 0; tries < 2000; tries++) {
        memset(&pi, 0, sizeof pi);
        rc = dn_poll(receiver, NULL, 0, 0, 0, &pi);
        if (rc == DN_ERR_BUFFER_TOO_SMALL) break;
        sleep_ms(5);
    }
    CHECK(rc == DN_ERR_BUFFER_TOO_SMALL && pi.len > DN_RECORD_HEADER_LEN && pi.events == 0,
          "size query: rc=%d needed=%llu", rc, (unsigned long long)pi.len);
    size_t needed = (size_t)pi.len;
    CHECK(dn_poll(receiver, batch, needed - 1, 0, 0, &pi) == DN_ERR_BUFFER_TOO_SMALL && pi.len == needed, "one short");
    CHECK(dn_poll(receiver, batch, needed, 0, 0, &pi) == DN_OK && pi.records == 1 && pi.events == 1 && pi.len == needed,
          "exact fit");
    r = parse_record(batch);
    CHECK(r.kind == DN_EVENT_MESSAGE_JSON && field_is(r.payload, r.payload_len, "[1,2,3]"), "held event kept");
    CHECK(pi.values_version > 0 && pi.row_seq == 3 && pi.pending == 0, "poll info: version %llu rows %llu",
          (unsigned long long)pi.values_version, (unsigned long long)pi.row_seq);
    CHECK(dn_poll(receiver, NULL, 16, 0, 0, &pi) == DN_ERR_NULL_POINTER, "NULL poll buffer with a capacity");
    CHECK(dn_poll(receiver, batch, sizeof batch, 0, 0, NULL) == DN_ERR_NULL_POINTER, "null out_info");
    CHECK(dn_poll(receiver, batch, sizeof batch, 0, 0x80, &pi) == DN_ERR_INVALID_ARGUMENT, "unknown flag");
    CHECK(dn_poll(receiver, NULL, 0, 0, 0, &pi) == DN_OK && pi.len == 0 && pi.records == 0, "nothing waiting");

    /* Numeric snapshot: names only when the generation changes, in the publisher's
     * field order; sizes only on BUFFER_TOO_SMALL. */
    DnValuesInfo info;
    double values[16];
    char names[1024];
    memset(&info, 0xAB, sizeof info);
    CHECK(dn_values(receiver, DN_GENERATION_NONE, NULL, 0, NULL, 0, &info) == DN_ERR_BUFFER_TOO_SMALL,
          "values size query");
    CHECK(info.count == 11 && info.names_len > 0 && info.generation == 0xABABABABABABABABULL &&
              info.version == 0xABABABABABABABABULL,
          "only the sizes are written: count %llu names_len %llu", (unsigned long long)info.count,
          (unsigned long long)info.names_len);
    size_t names_len = (size_t)info.names_len;
    CHECK(dn_values(receiver, DN_GENERATION_NONE, values, 16, names, names_len, &info) == DN_ERR_BUFFER_TOO_SMALL,
          "names need names_len + 1");
    CHECK(dn_values(receiver, DN_GENERATION_NONE, NULL, 4, names, sizeof names, &info) == DN_ERR_NULL_POINTER,
          "NULL values with a capacity");
    CHECK(dn_values(receiver, DN_GENERATION_NONE, values, 16, names, names_len + 1, &info) == DN_OK, "values");
    CHECK(info.names_len == names_len && strlen(names) == names_len, "names_len without the NUL");
    /* JSON fields in the publisher's order, then the DMX slots of universe 1, then
     * the array's indices. */
    CHECK(strcmp(names, "[[\"project.demo.c\",\"r\"],[\"project.demo.c\",\"g\"],[\"project.demo.c\",\"b\"],"
                        "[\"project.demo.c\",\"big\"],[\"project.demo.c\",\"f\"],[\"project.demo.c\",\"u1/1\"],"
                        "[\"project.demo.c\",\"u1/2\"],[\"project.demo.c\",\"u1/3\"],[\"project.demo.c\",\"0\"],"
                        "[\"project.demo.c\",\"1\"],[\"project.demo.c\",\"2\"]]") == 0,
          "names %s", names);
    CHECK(values[0] == 1.0 && values[1] == 2.0 && values[2] == 3.0 && values[3] == 12345678901234567890123.0 &&
              values[4] == 0.001 && values[5] == 1.0,
          "values %f %f %f %g %f", values[0], values[1], values[2], values[3], values[4]);
    uint64_t generation = info.generation;
    CHECK(dn_values(receiver, generation, values, 16, NULL, 0, &info) == DN_OK && info.names_len == 0,
          "current generation: no names needed");
    double x = 0;
    CHECK(dn_value(receiver, "project.demo.c", "g", &x) == DN_OK && x == 2.0, "g = %f", x);
    CHECK(dn_value(receiver, "project.demo.c", "nope", &x) == DN_ERR_NOT_FOUND, "missing key");
    CHECK(dn_value(receiver, "project.demo.c", "nope", NULL) == DN_ERR_NULL_POINTER, "argument checks first");
    CHECK(dn_values(receiver, generation, values, 16, NULL, 0, NULL) == DN_ERR_NULL_POINTER, "null info");

    /* Table rows: channel, data, from, ts; newest first cut by max_rows, the rest counted. */
    DnRowsInfo ri;
    char rows[4096];
    CHECK(dn_rows(receiver, 0, 100, NULL, 0, &ri) == DN_ERR_BUFFER_TOO_SMALL && ri.len > 0, "rows size query");
    size_t rows_len = (size_t)ri.len;
    CHECK(dn_rows(receiver, 0, 100, (uint8_t *)rows, rows_len, &ri) == DN_OK && ri.rows == 3 && ri.newest_seq == 3 &&
              ri.skipped == 0 && ri.len == rows_len,
          "three rows");
    CHECK(memchr(rows, '\x1e', rows_len) != NULL && memcmp(rows, "project.demo.c\x1f", 15) == 0, "layout");
    CHECK(dn_rows(receiver, 0, 1, (uint8_t *)rows, sizeof rows, &ri) == DN_OK && ri.rows == 1 && ri.skipped == 2,
          "max_rows keeps the newest and counts the rest");
    rows[ri.len] = 0;
    CHECK(strstr(rows, "[1,2,3]\x1f") != NULL, "newest row %s", rows);
    CHECK(dn_rows(receiver, 3, 100, NULL, 0, &ri) == DN_OK && ri.rows == 0 && ri.len == 0, "nothing new");
    CHECK(dn_rows(receiver, 0, 100, NULL, 5, &ri) == DN_ERR_NULL_POINTER, "NULL rows with a capacity");

    /* Grouped JSON, newest-only and store-only delivery. */
    CHECK(dn_set_delivery(receiver, "project.demo.never", DN_DELIVER_LATEST) == DN_ERR_NOT_FOUND, "not subscribed");
    CHECK(dn_set_delivery(receiver, "project.demo.c", 9) == DN_ERR_INVALID_ARGUMENT, "unknown mode");
    CHECK(dn_set_delivery(receiver, "project.demo.c", DN_DELIVER_LATEST) == DN_OK, "latest");
    CHECK(dn_subscribe(receiver, "project.demo.e") == DN_OK, "second channel");
    CHECK(wait_for(receiver, DN_EVENT_SUB_ACK, &r, keep, sizeof keep), "sub ack e");
    for (int i = 0; i < 5; i++) {
        char text[16];
        snprintf(text, sizeof text, "{\"n\":%d}", i);
        CHECK(dn_publish_json(sender, "project.demo.c", text) == DN_OK, "publish %d", i);
    }
    CHECK(dn_publish_json(sender, "project.demo.e", "\"last\"") == DN_OK, "publish e");
    /* Wait until the channel e message (published last) arrived in the store. */
    for (int tries = 0; tries < 2000 && dn_last_message(receiver, "project.demo.e", keep, sizeof keep, &len) != DN_OK;
         tries++)
        sleep_ms(5);
    pi = poll_until_some(receiver, DN_POLL_GROUP_JSON);
    CHECK(pi.records == 1 && pi.events == 2, "one grouped record for two events: %u %u", pi.records, pi.events);
    r = parse_record(batch);
    CHECK(r.kind == DN_EVENT_MESSAGES_JSON && r.channel_len == 0, "group kind");
    char group[512], expected[256];
    snprintf(group, sizeof group, "%.*s", (int)r.payload_len, r.payload);
    snprintf(expected, sizeof expected, "[[\"project.demo.e\",\"%s\",", sender_id);
    CHECK(strncmp(group, expected, strlen(expected)) == 0, "channel e first (every message): %s", group);
    CHECK(strstr(group, ",\"last\",0],[\"project.demo.c\",") != NULL, "then channel c (latest): %s", group);
    CHECK(strlen(group) > 12 && strcmp(group + strlen(group) - 12, ",{\"n\":4},4]]") == 0,
          "the newest of channel c, having replaced 4: %s", group);
    /* The same run as a Python pickle (for Python hosts): a data-only protocol 4 stream. */
    CHECK(dn_publish_json(sender, "project.demo.e", "[1, 2]") == DN_OK && dn_publish_json(sender, "project.demo.e",
          "{\"k\": 12345678901234567890123}") == DN_OK, "publish two on e");
    pi = poll_until_some(receiver, DN_POLL_GROUP_PICKLE);
    if (pi.events < 2) {
        DnPollInfo more = poll_until_some(receiver, DN_POLL_GROUP_PICKLE);
        pi.events += more.events;
    }
    r = parse_record(batch);
    CHECK(r.kind == DN_EVENT_MESSAGES_PICKLE && r.payload_len > 4 && r.payload[0] == 0x80 && r.payload[1] == 4 &&
              r.payload[r.payload_len - 1] == '.',
          "pickle record: kind %u, %u bytes", r.kind, r.payload_len);
    CHECK(dn_poll(receiver, batch, sizeof batch, 0, DN_POLL_GROUP_JSON | DN_POLL_GROUP_PICKLE, &pi) ==
              DN_ERR_INVALID_ARGUMENT,
          "one grouping at a time");
    CHECK(dn_set_delivery(receiver, "project.demo.c", DN_DELIVER_STORE_ONLY) == DN_OK, "store only");
    CHECK(dn_publish_json(sender, "project.demo.c", "{\"n\":99}") == DN_OK, "publish 99");
    for (int tries = 0; tries < 2000; tries++) {
        if (dn_value(receiver, "project.demo.c", "n", &x) == DN_OK && x == 99.0) break;
        sleep_ms(5);
    }
    CHECK(x == 99.0, "store-only messages reach the store");
    CHECK(dn_poll(receiver, batch, sizeof batch, 0, DN_POLL_GROUP_JSON, &pi) == DN_OK && pi.events == 0,
          "and no event");
    CHECK(dn_rows(receiver, 0, 1, (uint8_t *)rows, sizeof rows, &ri) == DN_OK && ri.rows == 1, "but a row");
    rows[ri.len] = 0;
    CHECK(strstr(rows, "{\"n\":99}") != NULL, "row %s", rows);

    /* Last message. */
    CHECK(dn_last_message(receiver, "project.demo.c", keep, 4, &len) == DN_ERR_BUFFER_TOO_SMALL && len > 4, "tiny");
    CHECK(dn_last_message(receiver, "project.demo.c", NULL, 0, &len) == DN_ERR_BUFFER_TOO_SMALL, "size query");
    CHECK(dn_last_message(receiver, "project.demo.c", keep, sizeof keep, &len) == DN_OK, "last message");
    r = parse_record(keep);
    CHECK(r.kind == DN_EVENT_MESSAGE_JSON && field_is(r.payload, r.payload_len, "{\"n\":99}"), "newest message");
    CHECK(dn_last_message(receiver, "project.demo.none", keep, sizeof keep, &len) == DN_ERR_NOT_FOUND, "none");
    CHECK(dn_last_message(receiver, "project.demo.none", NULL, 3, &len) == DN_ERR_NULL_POINTER, "buffer first");

    /* Status. */
    char status[4096];
    CHECK(dn_status(receiver, status, 10, &len) == DN_ERR_BUFFER_TOO_SMALL && len > 10, "status too small");
    size_t status_len = len;
    CHECK(dn_status(receiver, status, sizeof status, &len) == DN_OK && len == strlen(status), "status");
    CHECK(len >= status_len - 32 && len <= status_len + 32, "same length rule (%zu vs %zu)", len, status_len);
    CHECK(strstr(status, "\"state\":\"connected\"") != NULL, "%s", status);
    CHECK(strstr(status, "\"replaced_latest\":4") != NULL, "replaced counted: %s", status);
    CHECK(strstr(status, "ak_c_abi") == NULL, "the API key never appears in status");

    /* Presence arrives as an event. */
    CHECK(dn_request_presence(receiver, "project.demo.c") == DN_OK, "presence");
    CHECK(wait_for(receiver, DN_EVENT_PRESENCE, &r, keep, sizeof keep), "presence event");
    CHECK(r.flags == 0 && strstr((const char *)r.payload, "\"occupancy\":1") != NULL, "presence %.*s",
          (int)r.payload_len, r.payload);

    /* Bad arguments on a live client. */
    char long_name[300];
    memset(long_name, 'x', sizeof long_name);
    long_name[255] = 0;
    CHECK(dn_subscribe(receiver, NULL) == DN_ERR_NULL_POINTER, "null channel");
    CHECK(dn_subscribe(receiver, "") == DN_ERR_INVALID_ARGUMENT, "empty channel");
    CHECK(dn_subscribe(receiver, "has space") == DN_ERR_INVALID_ARGUMENT, "a space: %s", last_error());
    CHECK(dn_subscribe(receiver, "a..b") == DN_ERR_INVALID_ARGUMENT, "empty segment");
    CHECK(dn_subscribe(receiver, long_name) == DN_OK && dn_unsubscribe(receiver, long_name) == DN_OK, "255 bytes");
    long_name[255] = 'x';
    long_name[256] = 0;
    CHECK(dn_subscribe(receiver, long_name) == DN_ERR_INVALID_ARGUMENT, "256 bytes");
    CHECK(dn_subscribe(receiver, "bad\xc3\x28") == DN_ERR_INVALID_UTF8, "invalid utf-8 channel");
    CHECK(dn_unsubscribe(receiver, "project.demo.never") == DN_ERR_NOT_FOUND, "unsubscribe unknown");
    CHECK(dn_publish_json(sender, "project.demo.c", "{oops") == DN_ERR_INVALID_ARGUMENT, "bad json");
    CHECK(dn_publish_json(sender, "project.demo.c", NULL) == DN_ERR_NULL_POINTER, "null json");
    CHECK(dn_publish_binary(sender, "project.demo.c", NULL, 4, NULL, NULL) == DN_ERR_NULL_POINTER, "null data");
    CHECK(dn_publish_binary(sender, "project.demo.c", NULL, 0, NULL, NULL) == DN_OK, "empty data is fine");
    CHECK(dn_publish_binary(sender, "project.demo.c", bytes, 3, NULL, "[1]") == DN_ERR_INVALID_ARGUMENT, "meta");
    CHECK(dn_request_presence(receiver, NULL) == DN_ERR_NULL_POINTER, "null presence channel");
    CHECK(dn_set_delivery(receiver, NULL, DN_DELIVER_EVERY) == DN_ERR_NULL_POINTER, "null delivery channel");

    /* Lighting: docs/PROTOCOL.md section 9 vectors through the ABI. */
    double dmx_values[4] = {255, 300, -1, 12.8};
    uint8_t frame[8];
    CHECK(dn_build_dmx_frame(dmx_values, 4, 6, frame, sizeof frame, &len) == DN_OK && len == 6, "dmx frame");
    CHECK(memcmp(frame, "\xff\xff\x00\x0c\x00\x00", 6) == 0, "dmx vector");
    CHECK(dn_build_dmx_frame(dmx_values, 4, 6, frame, 2, &len) == DN_ERR_BUFFER_TOO_SMALL && len == 6, "tiny");
    CHECK(dn_build_dmx_frame(dmx_values, 4, 6, NULL, 0, &len) == DN_ERR_BUFFER_TOO_SMALL && len == 6, "size query");
    CHECK(dn_build_dmx_frame(dmx_values, 4, 6, NULL, 6, &len) == DN_ERR_NULL_POINTER, "NULL out with capacity");
    CHECK(dn_build_dmx_frame(NULL, 4, 6, frame, sizeof frame, &len) == DN_ERR_NULL_POINTER, "null values");
    uint8_t dmx[4] = {1, 2, 3, 4}, packet[64];
    CHECK(dn_build_art_dmx_packet(dmx, 4, 3, 2, 1, 7, 5, packet, sizeof packet, &len) == DN_OK && len == 22, "art");
    CHECK(memcmp(packet, "Art-Net\0\x00\x50\x00\x0e\x07\x05\x23\x01\x00\x04\x01\x02\x03\x04", 22) == 0,
          "art-net vector");
    CHECK(dn_build_art_dmx_packet(dmx, 4, 3, 2, 1, 7, 5, NULL, 0, &len) == DN_ERR_BUFFER_TOO_SMALL && len == 22,
          "art size query");
    DnArtDmx art;
    uint8_t data[512];
    CHECK(dn_decode_art_dmx(packet, 22, &art, data, sizeof data, &len) == DN_OK, "decode");
    CHECK(art.universe == 3 && art.subnet == 2 && art.net == 1 && art.sequence == 7 && art.physical == 5 &&
              art.port_address == 0x123 && art.length == 4 && len == 4 && memcmp(data, dmx, 4) == 0,
          "decoded fields");
    memset(&art, 0, sizeof art);
    CHECK(dn_decode_art_dmx(packet, 22, &art, NULL, 0, &len) == DN_ERR_BUFFER_TOO_SMALL && len == 4 &&
              art.length == 0,
          "decode size query writes only out_len");
    CHECK(dn_decode_art_dmx(packet, 10, &art, data, sizeof data, &len) == DN_ERR_INVALID_ARGUMENT, "short packet");
    CHECK(dn_decode_art_dmx(packet, 22, NULL, data, sizeof data, &len) == DN_ERR_NULL_POINTER, "null header");
    char b64[16];
    uint8_t raw[4] = {0, 1, 2, 255};
    CHECK(dn_base64_encode(raw, 4, b64, sizeof b64, &len) == DN_OK && strcmp(b64, "AAEC/w==") == 0 && len == 8,
          "b64 %s", b64);
    CHECK(dn_base64_encode(raw, 4, b64, 8, &len) == DN_ERR_BUFFER_TOO_SMALL && len == 8, "text needs len + 1");
    CHECK(dn_base64_encode(raw, 4, NULL, 0, &len) == DN_ERR_BUFFER_TOO_SMALL && len == 8, "b64 size query");
    CHECK(dn_base64_decode("BAU=", data, sizeof data, &len) == DN_OK && len == 2 && data[0] == 4 && data[1] == 5,
          "b64 decode");
    CHECK(dn_base64_decode("BAU=", NULL, 0, &len) == DN_ERR_BUFFER_TOO_SMALL && len == 2, "b64 decode query");
    CHECK(dn_base64_decode("@@@", data, sizeof data, &len) == DN_ERR_INVALID_ARGUMENT, "bad b64");
    CHECK(dn_stream_dmx(sender, "project.demo.c", dmx_values, 4, 512, NULL, 44.0) == DN_OK, "stream dmx");
    CHECK(dn_stream_artnet(sender, "project.demo.c", dmx_values, 4, 1, 0, 0, 0, "{\"u\":1}", 44.0) == DN_OK,
          "stream artnet");
    CHECK(dn_stream_json(sender, "project.demo.c", "{\"a\":1}", -1.0) == DN_ERR_INVALID_ARGUMENT, "bad rate");
    CHECK(dn_stream_json(sender, "project.demo.c", "{oops", 10.0) == DN_ERR_INVALID_ARGUMENT, "bad stream json");

    /* dn_disconnect emits no DISCONNECTED record. */
    CHECK(dn_disconnect(receiver) == DN_OK, "disconnect receiver");
    memset(seen_kinds, 0, sizeof seen_kinds);
    for (int i = 0; i < 20; i++) {
        if (dn_poll(receiver, batch, sizeof batch, 0, 0, &pi) != DN_OK) break;
        for (size_t at = 0; at < pi.len;) {
            record_t q = parse_record(batch + at);
            seen_kinds[q.kind]++;
            at += q.record_len;
        }
        sleep_ms(5);
    }
    CHECK(seen_kinds[DN_EVENT_DISCONNECTED] == 0, "no DISCONNECTED after dn_disconnect");

    /* Disconnect, free, stale and double-freed handles. */
    CHECK(dn_disconnect(sender) == DN_OK && dn_disconnect(sender) == DN_OK, "disconnect twice");
    CHECK(dn_client_free(sender) == DN_OK, "free");
    CHECK(dn_client_free(sender) == DN_ERR_INVALID_HANDLE, "double free");
    CHECK(dn_publish_json(sender, "project.demo.c", "1") == DN_ERR_INVALID_HANDLE, "stale handle");
    CHECK(dn_poll(sender, batch, sizeof batch, 0, 0, &pi) == DN_ERR_INVALID_HANDLE, "stale poll");
    CHECK(dn_client_free(receiver) == DN_OK, "free receiver");
    CHECK(dn_status(receiver, status, sizeof status, &len) == DN_ERR_INVALID_HANDLE, "stale status");

    wait_until_single_threaded();
    printf("c_abi: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
