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

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

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
    const uint8_t *channel, *from, *content_type, *meta, *payload;
    uint32_t channel_len, from_len, content_type_len, meta_len, payload_len;
    uint32_t record_len;
} record_t;

static uint32_t u32_at(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

static record_t parse_record(const uint8_t *p) {
    record_t r;
    r.record_len = u32_at(p);
    r.kind = p[4];
    r.flags = p[5];
    memcpy(&r.ts, p + 8, 8); /* little-endian host */
    r.channel_len = u32_at(p + 16);
    r.from_len = u32_at(p + 20);
    r.content_type_len = u32_at(p + 24);
    r.meta_len = u32_at(p + 28);
    r.payload_len = u32_at(p + 32);
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

/* Takes records in order, polling when the current batch is used up, until one of
 * `kind` arrives (copied to `keep`); records before it are skipped, later ones stay. */
static int wait_for(uint64_t client, uint8_t kind, record_t *out, uint8_t *keep, size_t keep_cap) {
    for (int tries = 0; tries < 2000;) {
        if (batch_at >= batch_len) {
            uint32_t count = 0;
            batch_at = batch_len = 0;
            if (dn_poll(client, batch, sizeof batch, 0, &batch_len, &count) != DN_OK) return 0;
            if (count == 0) {
                sleep_ms(5);
                tries++;
                continue;
            }
        }
        record_t r = parse_record(batch + batch_at);
        batch_at += r.record_len;
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

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s API_URL WS_URL\n", argv[0]);
        return 2;
    }
    const char *api_url = argv[1], *ws_url = argv[2];
    uint8_t keep[4096];
    record_t r;
    size_t len = 0;
    uint32_t count = 0;

    /* Versions. */
    CHECK(dn_abi_version() == DN_ABI_VERSION, "abi %u", dn_abi_version());
    CHECK(strlen(dn_version()) > 0, "version");

    /* Misuse before any client exists. */
    uint64_t handle = 0;
    CHECK(dn_client_new(NULL, &handle) == DN_ERR_NULL_POINTER, "null config");
    CHECK(strstr(last_error(), "config_json") != NULL, "last error names the argument: %s", last_error());
    CHECK(dn_client_new("{\"api_key\":\"k\"}", NULL) == DN_ERR_NULL_POINTER, "null out_handle");
    CHECK(dn_client_new("{not json", &handle) == DN_ERR_INVALID_ARGUMENT, "bad json");
    CHECK(dn_client_new("{\"api_key\":\"k\",\"bogus\":1}", &handle) == DN_ERR_INVALID_ARGUMENT, "unknown key");
    CHECK(strstr(last_error(), "bogus") != NULL, "unknown key named: %s", last_error());
    CHECK(dn_client_new("{\"api_key\":\"\xff\xfe\"}", &handle) == DN_ERR_INVALID_UTF8, "invalid utf-8");
    CHECK(handle == 0, "out_handle untouched on failure");
    CHECK(dn_connect(0) == DN_ERR_INVALID_HANDLE, "handle 0");
    CHECK(dn_connect(987654321) == DN_ERR_INVALID_HANDLE, "unknown handle");
    CHECK(dn_client_free(987654321) == DN_ERR_INVALID_HANDLE, "free unknown handle");
    char tiny[4];
    CHECK(dn_last_error(tiny, sizeof tiny, &len) == DN_ERR_BUFFER_TOO_SMALL && len > sizeof tiny,
          "last_error tiny buffer needs %zu", len);
    CHECK(dn_last_error(tiny, sizeof tiny, NULL) == DN_ERR_NULL_POINTER, "last_error null out_len");

    /* Two clients talking through the gateway. */
    uint64_t receiver = new_client(api_url, ws_url);
    uint64_t sender = new_client(api_url, ws_url);
    CHECK(dn_connect(receiver) == DN_OK && dn_connect(sender) == DN_OK, "connect");
    CHECK(dn_connect(receiver) == DN_OK, "connect twice is a no-op");
    CHECK(dn_subscribe(receiver, "project.demo.c") == DN_OK, "subscribe");
    CHECK(wait_for(receiver, DN_EVENT_CONNECTED, &r, keep, sizeof keep), "receiver connected");
    CHECK(r.payload_len > 0, "connected record carries the connection id");
    CHECK(wait_for(receiver, DN_EVENT_SUB_ACK, &r, keep, sizeof keep), "sub ack");
    CHECK(field_is(r.channel, r.channel_len, "project.demo.c"), "sub ack channel");
    CHECK(field_is(r.payload, r.payload_len, "{\"occupancy\":1}"), "occupancy");
    CHECK(wait_for(sender, DN_EVENT_CONNECTED, &r, keep, sizeof keep), "sender connected");

    CHECK(dn_publish_json(sender, "project.demo.c", "{\"pos\":{\"x\":1.5},\"on\":true}") == DN_OK, "publish json");
    CHECK(wait_for(receiver, DN_EVENT_MESSAGE_JSON, &r, keep, sizeof keep), "json message");
    CHECK(field_is(r.payload, r.payload_len, "{\"on\":true,\"pos\":{\"x\":1.5}}"), "payload %.*s",
          (int)r.payload_len, r.payload);
    CHECK(r.ts > 1600000000000LL && r.from_len > 0, "ts and from");

    uint8_t bytes[3] = {1, 2, 3};
    CHECK(dn_publish_binary(sender, "project.demo.c", bytes, 3, "binary/dmx", "{\"universe\":1}") == DN_OK, "bin");
    CHECK(wait_for(receiver, DN_EVENT_MESSAGE_BINARY, &r, keep, sizeof keep), "binary message");
    CHECK(r.payload_len == 3 && memcmp(r.payload, bytes, 3) == 0, "binary payload");
    CHECK(field_is(r.content_type, r.content_type_len, "binary/dmx"), "content type");
    CHECK(field_is(r.meta, r.meta_len, "{\"universe\":1}"), "meta");
    CHECK(r.flags == 0, "not raw");

    /* A tiny poll buffer: the event waits, and the size needed is reported. */
    CHECK(dn_publish_json(sender, "project.demo.c", "[1,2,3]") == DN_OK, "publish array");
    int32_t rc = DN_OK;
    for (int tries = 0; tries < 2000; tries++) {
        len = 0;
        rc = dn_poll(receiver, batch, 8, 0, &len, &count);
        if (rc == DN_ERR_BUFFER_TOO_SMALL) break;
        sleep_ms(5);
    }
    CHECK(rc == DN_ERR_BUFFER_TOO_SMALL && len > 8, "too small: rc=%d needed=%zu", rc, len);
    size_t needed = len;
    CHECK(dn_poll(receiver, batch, needed, 0, &len, &count) == DN_OK && count == 1 && len == needed, "exact fit");
    r = parse_record(batch);
    CHECK(r.kind == DN_EVENT_MESSAGE_JSON && field_is(r.payload, r.payload_len, "[1,2,3]"), "held event kept");
    CHECK(dn_poll(receiver, NULL, 16, 0, &len, &count) == DN_ERR_NULL_POINTER, "null poll buffer");
    CHECK(dn_poll(receiver, batch, sizeof batch, 0, NULL, &count) == DN_ERR_NULL_POINTER, "null out_len");

    /* Numeric snapshot: names only when the generation changes. */
    DnValuesInfo info;
    double values[16];
    char names[1024];
    CHECK(dn_values(receiver, DN_GENERATION_NONE, values, 0, names, 0, &info) == DN_ERR_BUFFER_TOO_SMALL,
          "values too small");
    CHECK(info.count == 8 && info.names_len > 0, "count %zu names_len %zu", info.count, info.names_len);
    CHECK(dn_values(receiver, DN_GENERATION_NONE, values, 16, names, sizeof names, &info) == DN_OK, "values");
    /* JSON fields, then the binary/dmx slots of universe 1, then the array's indices. */
    CHECK(strcmp(names, "[[\"project.demo.c\",\"on\"],[\"project.demo.c\",\"pos/x\"],[\"project.demo.c\",\"u1/1\"],"
                        "[\"project.demo.c\",\"u1/2\"],[\"project.demo.c\",\"u1/3\"],[\"project.demo.c\",\"0\"],"
                        "[\"project.demo.c\",\"1\"],[\"project.demo.c\",\"2\"]]") == 0,
          "names %s", names);
    CHECK(values[0] == 1.0 && values[1] == 1.5 && values[2] == 1.0 && values[4] == 3.0 && values[7] == 3.0,
          "values %f %f %f %f %f", values[0], values[1], values[2], values[4], values[7]);
    uint64_t generation = info.generation;
    CHECK(dn_values(receiver, generation, values, 16, NULL, 0, &info) == DN_OK && info.names_len == 0,
          "current generation: no names needed");
    double x = 0;
    CHECK(dn_value(receiver, "project.demo.c", "pos/x", &x) == DN_OK && x == 1.5, "pos/x = %f", x);
    CHECK(dn_value(receiver, "project.demo.c", "nope", &x) == DN_ERR_NOT_FOUND, "missing key");
    CHECK(dn_values(receiver, generation, values, 16, NULL, 0, NULL) == DN_ERR_NULL_POINTER, "null info");

    /* Last message. */
    CHECK(dn_last_message(receiver, "project.demo.c", keep, 4, &len) == DN_ERR_BUFFER_TOO_SMALL && len > 4, "tiny");
    CHECK(dn_last_message(receiver, "project.demo.c", keep, sizeof keep, &len) == DN_OK, "last message");
    r = parse_record(keep);
    CHECK(r.kind == DN_EVENT_MESSAGE_JSON && field_is(r.payload, r.payload_len, "[1,2,3]"), "newest message");
    CHECK(dn_last_message(receiver, "project.demo.none", keep, sizeof keep, &len) == DN_ERR_NOT_FOUND, "none");

    /* Status. */
    char status[4096];
    CHECK(dn_status(receiver, status, 10, &len) == DN_ERR_BUFFER_TOO_SMALL && len > 10, "status too small");
    CHECK(dn_status(receiver, status, sizeof status, &len) == DN_OK && len == strlen(status), "status");
    CHECK(strstr(status, "\"state\":\"connected\"") != NULL, "%s", status);
    CHECK(strstr(status, "ak_c_abi") == NULL, "the API key never appears in status");

    /* Presence arrives as an event. */
    CHECK(dn_request_presence(receiver, "project.demo.c") == DN_OK, "presence");
    CHECK(wait_for(receiver, DN_EVENT_PRESENCE, &r, keep, sizeof keep), "presence event");
    CHECK(r.flags == 0 && strstr((const char *)r.payload, "\"occupancy\":1") != NULL, "presence %.*s",
          (int)r.payload_len, r.payload);

    /* Bad arguments on a live client. */
    CHECK(dn_subscribe(receiver, NULL) == DN_ERR_NULL_POINTER, "null channel");
    CHECK(dn_subscribe(receiver, "") == DN_ERR_INVALID_ARGUMENT, "empty channel");
    CHECK(dn_subscribe(receiver, "bad\xc3\x28") == DN_ERR_INVALID_UTF8, "invalid utf-8 channel");
    CHECK(dn_unsubscribe(receiver, "project.demo.never") == DN_ERR_NOT_FOUND, "unsubscribe unknown");
    CHECK(dn_publish_json(sender, "project.demo.c", "{oops") == DN_ERR_INVALID_ARGUMENT, "bad json");
    CHECK(dn_publish_json(sender, "project.demo.c", NULL) == DN_ERR_NULL_POINTER, "null json");
    CHECK(dn_publish_binary(sender, "project.demo.c", NULL, 4, NULL, NULL) == DN_ERR_NULL_POINTER, "null data");
    CHECK(dn_publish_binary(sender, "project.demo.c", NULL, 0, NULL, NULL) == DN_OK, "empty data is fine");
    CHECK(dn_publish_binary(sender, "project.demo.c", bytes, 3, NULL, "[1]") == DN_ERR_INVALID_ARGUMENT, "meta");
    CHECK(dn_request_presence(receiver, NULL) == DN_ERR_NULL_POINTER, "null presence channel");

    /* Lighting: PROTOCOL.md section 9 vectors through the ABI. */
    double dmx_values[4] = {255, 300, -1, 12.8};
    uint8_t frame[8];
    CHECK(dn_build_dmx_frame(dmx_values, 4, 6, frame, sizeof frame, &len) == DN_OK && len == 6, "dmx frame");
    CHECK(memcmp(frame, "\xff\xff\x00\x0c\x00\x00", 6) == 0, "dmx vector");
    CHECK(dn_build_dmx_frame(dmx_values, 4, 6, frame, 2, &len) == DN_ERR_BUFFER_TOO_SMALL && len == 6, "tiny");
    CHECK(dn_build_dmx_frame(NULL, 4, 6, frame, sizeof frame, &len) == DN_ERR_NULL_POINTER, "null values");
    uint8_t dmx[4] = {1, 2, 3, 4}, packet[64];
    CHECK(dn_build_art_dmx_packet(dmx, 4, 3, 2, 1, 7, 5, packet, sizeof packet, &len) == DN_OK && len == 22, "art");
    CHECK(memcmp(packet, "Art-Net\0\x00\x50\x00\x0e\x07\x05\x23\x01\x00\x04\x01\x02\x03\x04", 22) == 0,
          "art-net vector");
    DnArtDmx art;
    uint8_t data[512];
    CHECK(dn_decode_art_dmx(packet, 22, &art, data, sizeof data, &len) == DN_OK, "decode");
    CHECK(art.universe == 3 && art.subnet == 2 && art.net == 1 && art.sequence == 7 && art.physical == 5 &&
              art.port_address == 0x123 && art.length == 4 && len == 4 && memcmp(data, dmx, 4) == 0,
          "decoded fields");
    CHECK(dn_decode_art_dmx(packet, 10, &art, data, sizeof data, &len) == DN_ERR_INVALID_ARGUMENT, "short packet");
    char b64[16];
    uint8_t raw[4] = {0, 1, 2, 255};
    CHECK(dn_base64_encode(raw, 4, b64, sizeof b64, &len) == DN_OK && strcmp(b64, "AAEC/w==") == 0, "b64 %s", b64);
    CHECK(dn_base64_decode("BAU=", data, sizeof data, &len) == DN_OK && len == 2 && data[0] == 4 && data[1] == 5,
          "b64 decode");
    CHECK(dn_base64_decode("@@@", data, sizeof data, &len) == DN_ERR_INVALID_ARGUMENT, "bad b64");
    CHECK(dn_stream_dmx(sender, "project.demo.c", dmx_values, 4, 512, NULL, 44.0) == DN_OK, "stream dmx");
    CHECK(dn_stream_artnet(sender, "project.demo.c", dmx_values, 4, 1, 0, 0, 0, "{\"u\":1}", 44.0) == DN_OK,
          "stream artnet");
    CHECK(dn_stream_json(sender, "project.demo.c", "{\"a\":1}", -1.0) == DN_ERR_INVALID_ARGUMENT, "bad rate");
    CHECK(dn_stream_json(sender, "project.demo.c", "{oops", 10.0) == DN_ERR_INVALID_ARGUMENT, "bad stream json");

    /* Disconnect, free, stale and double-freed handles. */
    CHECK(dn_disconnect(sender) == DN_OK && dn_disconnect(sender) == DN_OK, "disconnect twice");
    CHECK(dn_client_free(sender) == DN_OK, "free");
    CHECK(dn_client_free(sender) == DN_ERR_INVALID_HANDLE, "double free");
    CHECK(dn_publish_json(sender, "project.demo.c", "1") == DN_ERR_INVALID_HANDLE, "stale handle");
    CHECK(dn_poll(sender, batch, sizeof batch, 0, &len, &count) == DN_ERR_INVALID_HANDLE, "stale poll");
    CHECK(dn_client_free(receiver) == DN_OK, "free receiver");
    CHECK(dn_status(receiver, status, sizeof status, &len) == DN_ERR_INVALID_HANDLE, "stale status");

    printf("c_abi: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
