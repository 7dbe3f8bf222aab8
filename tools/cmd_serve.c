/*
 * cmd_serve.c - gpt serve: an HTTP server with OpenAI's completions API
 * over one model, with continuous batching (serve_engine.c).
 *
 * HTTP is libmicrohttpd's, one thread per connection: a connection's
 * thread reads the request, queues it for the engine and waits for its
 * tokens (or streams them as server-sent events), so a slow client only
 * holds its own thread; idle connections time out. Limits: request body
 * size (413), waiting requests (503 with Retry-After), connections.
 * SIGINT/SIGTERM: stop accepting, finish the requests in flight (up to
 * --drain-timeout), exit 0; a second signal cancels them.
 *
 * Without libmicrohttpd at build time the command only says how to get it.
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "gpt.h"
#include "gpt_tokenizer.h"

static const char *CMD = "serve";

typedef struct {
    const char *model, *tokenizer, *device, *name, *host, *api_key;
    long long threads, slots, ctx, chunk, port, max_queue, timeout, drain, max_body;
    int verbose, precision, invariant;
} serve_args;

#define O(f) offsetof(serve_args, f)
static const cli_opt serve_opts[] = {
    {CLI_SECTION, .help = "model"},
    {CLI_STR, 'm', "model", O(model), "PATH", "our checkpoint, or a Hugging Face GPT-2 folder",
     .flags = CLI_REQUIRED | CLI_NONEMPTY},
    {CLI_STR, 0, "tokenizer", O(tokenizer), "NAME",
     .help = "gpt2, bytes or a tokenizer file (default: the model's)"},
    {CLI_STR, 0, "served-model-name", O(name), "N",
     .help = "the name clients pass as \"model\" (default: PATH)"},
    {CLI_CALL, 0, "device", O(device), "DEV", CLI_DEVICE_HELP, .call = cli_set_device},
    {CLI_ENUM, 0, "precision", O(precision), NULL, CLI_PRECISION_HELP, .choices = CLI_PRECISIONS,
     .def = "auto"},
    {CLI_I64, 't', "threads", O(threads), "N", "CPU threads (default: the cores this process may use)", .lo = 1,
     .hi = 4096},
    {CLI_SECTION, .help = "batching"},
    {CLI_I64, 0, "slots", O(slots), "N",
     "sequences decoded together; each holds a KV cache of --ctx-size positions", .def = "8",
     .alias = "-np|parallel", .lo = 1, .hi = 4096},
    {CLI_I64, 'c', "ctx-size", O(ctx), "N",
     "positions per sequence, prompt included (default: the model's context)", .lo = 1,
     .hi = 1 << 24},
    {CLI_I64, 0, "decode-chunk", O(chunk), "N",
     "greedy steps per device call when every sequence is greedy (default 4 on a GPU, 1 on the "
     "CPU, where host round trips cost nothing)", .lo = 1, .hi = 64},
    {CLI_FLAG, 0, "batch-invariant", O(invariant), NULL,
     .help = "run every decoding step over all --slots rows, so a request's tokens never depend "
             "on what else is running (by default a step covers the busy slots rounded up to a "
             "power of two, and products of other batch sizes may round differently in the last "
             "bits)"},
    {CLI_SECTION, .help = "network and limits"},
    {CLI_STR, 0, "host", O(host), "ADDR", "address to listen on", .def = "127.0.0.1",
     .flags = CLI_NONEMPTY},
    {CLI_I64, 0, "port", O(port), "N", "port (0 = any free port, printed)", .def = "8080", .lo = 0,
     .hi = 65535},
    {CLI_STR, 0, "api-key", O(api_key), "KEY",
     "require \"Authorization: Bearer KEY\" on /v1/ and tokenize", .flags = CLI_NONEMPTY},
    {CLI_I64, 0, "max-queue", O(max_queue), "N",
     "requests waiting for a slot before new ones get 503", .def = "256", .lo = 0, .hi = 1 << 20},
    {CLI_I64, 0, "max-body", O(max_body), "BYTES", "largest request body; larger: 413",
     .def = "1048576", .lo = 64, .hi = 4294967296.0},
    {CLI_I64, 0, "timeout", O(timeout), "S", "close a connection idle this long", .def = "60",
     .lo = 1, .hi = 86400},
    {CLI_I64, 0, "drain-timeout", O(drain), "S",
     "on SIGINT/SIGTERM, wait this long for requests in flight before cancelling them",
     .def = "30", .lo = 0, .hi = 86400},
    {CLI_FLAG, 'v', "verbose", O(verbose), NULL, .help = "one line per request on standard error"},
    {CLI_END},
};
#undef O

const cli_cmd gpt_serve_cmd = {
    .name = "serve",
    .summary = "serve a model over HTTP (OpenAI completions API)",
    .usage = "--model PATH [options]",
    .about = "Serves a model over HTTP with OpenAI's completions API and continuous\n"
             "batching: concurrent requests share each decoding step, joining and leaving\n"
             "the batch as they start and finish. SIGINT or SIGTERM: no new requests, those\n"
             "in flight finish (up to --drain-timeout), exit 0.\n"
             "\n"
             "  POST /v1/completions   prompt (text, token ids, or a list of either),\n"
             "                         max_tokens, temperature, top_p, top_k, seed, stop, n,\n"
             "                         logprobs, echo, stream (server-sent events), ignore_eos\n"
             "  GET  /v1/models        the served model\n"
             "  GET  /health           200 while serving, 503 while draining; sequences\n"
             "                         running and requests waiting for a slot\n"
             "  POST /tokenize         {\"prompt\": text} -> {\"tokens\": [...], \"count\": n}\n"
             "  POST /detokenize       {\"tokens\": [...]} -> {\"prompt\": text}\n",
    .opts = serve_opts,
    .footer = "example:\n"
              "  gpt serve -m gpt2-hf/ --port 8080 --slots 16 &\n"
              "  curl -s localhost:8080/v1/completions -H 'Content-Type: application/json' \\\n"
              "       -d '{\"prompt\": \"Hello\", \"max_tokens\": 16, \"temperature\": 0}'\n",
    .run = gpt_cmd_serve,
};

#ifndef GPT_HAVE_MHD

int gpt_cmd_serve(int argc, char **argv) {
    serve_args a = {0};
    int rc = cli_parse(&gpt_serve_cmd, argc, argv, &a, NULL);
    if (rc == CLI_HELP) {
        cli_print_help(&gpt_serve_cmd, stdout);
        printf("\n(this gpt was built without libmicrohttpd: gpt serve cannot run)\n");
        return EXIT_OK;
    }
    if (rc) return rc;
    fprintf(stderr,
            "gpt serve: this gpt was built without libmicrohttpd, the HTTP library the server "
            "uses: install it (Debian/Ubuntu: apt-get install libmicrohttpd-dev) and rebuild\n");
    return EXIT_RUNTIME;
}

#else

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../src/tools_internal.h"
#include "serve.h"

/* Returns -1 to go on, or the exit code. */
static int parse_args(int argc, char **argv, serve_args *a) {
    memset(a, 0, sizeof *a);
    return cli_parse_args(&gpt_serve_cmd, argc, argv, a, NULL);
}

/* ------------------------------------------------------------------ state */

typedef struct {
    serve_args a;
    srv_engine e;
    srv_info in;
    struct MHD_Daemon *d;
    pthread_mutex_t lock; /* inflight, draining */
    int inflight;         /* requests received and not yet answered */
    int draining;
    long long served;
} server;

/* One request on a connection: its body as it arrives. */
typedef struct {
    srv_buf body;
    int too_big;
    unsigned long long discarded; /* bytes of a too large body thrown away */
    double t0;
} conn_req;

/* A streamed completion (owned by its MHD response). */
typedef struct {
    server *s;
    srv_req *r;
    srv_stream st;
    srv_buf out;
    size_t out_pos;
    int fd, finished;
    struct MHD_Connection *c;
} stream_ctx;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 1 if the client has closed its side of the connection. */
static int client_gone(int fd) {
    if (fd < 0) return 0;
    struct pollfd p = {fd, POLLRDHUP, 0};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static int conn_fd(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

static void wait_a_while(pthread_cond_t *cv, pthread_mutex_t *m, int ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(cv, m, &ts);
}

/* The idle timeout is for clients that stall while sending or reading;
 * while the engine works on a request the connection is quiet by design:
 * no timeout then (0), and the configured one again, with its timer
 * restarted, once there is something to send. */
static void engine_wait_begins(struct MHD_Connection *c) {
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
}

static void engine_wait_ends(server *s, struct MHD_Connection *c) {
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)s->a.timeout);
}

static enum MHD_Result send_buf(struct MHD_Connection *c, int status, const char *type,
                                const char *body, size_t n, int close) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(n, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", type);
    if (status == 503) MHD_add_response_header(resp, "Retry-After", "1");
    if (status == 405) MHD_add_response_header(resp, "Allow", "GET, POST");
    if (close) MHD_add_response_header(resp, "Connection", "close");
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result send_reply(struct MHD_Connection *c, srv_reply *r, int close) {
    enum MHD_Result rc = send_buf(c, r->status, "application/json", r->body.s ? r->body.s : "{}",
                                  r->body.s ? r->body.len : 2, close);
    sb_free(&r->body);
    return rc;
}

static enum MHD_Result send_error(struct MHD_Connection *c, int status, const char *type,
                                  const char *code, const char *msg) {
    srv_reply r = {0};
    srv_error(&r, status, type, NULL, code, "%s", msg);
    return send_reply(c, &r, status == 413);
}

/* -------------------------------------------------------------- streaming */

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    stream_ctx *c = cls;
    srv_engine *e = &c->s->e;
    (void)pos;
    for (;;) {
        if (c->out_pos < c->out.len) {
            size_t n = c->out.len - c->out_pos < max ? c->out.len - c->out_pos : max;
            memcpy(buf, c->out.s + c->out_pos, n);
            c->out_pos += n;
            return (ssize_t)n;
        }
        if (c->finished) return MHD_CONTENT_READER_END_OF_STREAM;
        c->out.len = 0, c->out_pos = 0;
        engine_wait_begins(c->c);
        pthread_mutex_lock(&e->lock);
        for (;;) {
            c->finished = srv_stream_events(&c->s->in, c->r, &c->st, &c->out);
            if (c->out.len || c->finished) break;
            wait_a_while(&c->r->cv, &e->lock, 200);
            if (client_gone(c->fd)) {
                pthread_mutex_unlock(&e->lock);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
        }
        pthread_mutex_unlock(&e->lock);
        engine_wait_ends(c->s, c->c);
        if (c->out.oom) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

/* The response is done with (sent, or the client went away). */
static void stream_free(void *cls) {
    stream_ctx *c = cls;
    srv_engine *e = &c->s->e;
    pthread_mutex_lock(&e->lock);
    if (c->r->n_done < c->r->n_seqs) {
        c->r->cancelled = 1;
        pthread_cond_signal(&e->wake);
    }
    srv_req_unref(c->r);
    pthread_mutex_unlock(&e->lock);
    free(c->st.sent), free(c->st.tsent), free(c->st.fin_sent), free(c->st.echoed);
    sb_free(&c->out);
    free(c);
}

/* ------------------------------------------------------------ completions */

static enum MHD_Result completions(server *s, struct MHD_Connection *c, conn_req *cr) {
    srv_reply err = {0};
    srv_req *r;
    if (srv_parse_completion(&s->in, cr->body.s ? cr->body.s : "", cr->body.len, &r, &err))
        return send_reply(c, &err, 0);
    srv_engine *e = &s->e;
    pthread_mutex_lock(&e->lock);
    int full = srv_submit(e, r);
    int queued = e->queued;
    if (full) srv_req_unref(r);
    pthread_mutex_unlock(&e->lock);
    if (full) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "The server is overloaded: %d requests are waiting for a slot. Retry later.",
                 queued);
        return send_error(c, 503, "server_error", "overloaded", msg);
    }
    int fd = conn_fd(c);
    if (r->p.stream) {
        stream_ctx *sc = calloc(1, sizeof *sc);
        int n = r->n_seqs;
        if (sc) {
            sc->st.sent = calloc((size_t)n, sizeof *sc->st.sent);
            sc->st.tsent = calloc((size_t)n, sizeof *sc->st.tsent);
            sc->st.fin_sent = calloc((size_t)n, sizeof *sc->st.fin_sent);
            sc->st.echoed = calloc((size_t)n, sizeof *sc->st.echoed);
        }
        struct MHD_Response *resp = NULL;
        if (sc && sc->st.sent && sc->st.tsent && sc->st.fin_sent && sc->st.echoed) {
            sc->s = s, sc->r = r, sc->fd = fd, sc->c = c;
            resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, sc,
                                                     stream_free);
        }
        if (!resp) {
            if (sc) free(sc->st.sent), free(sc->st.tsent), free(sc->st.fin_sent), free(sc->st.echoed);
            free(sc);
            pthread_mutex_lock(&e->lock);
            r->cancelled = 1;
            srv_req_unref(r);
            pthread_mutex_unlock(&e->lock);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        enum MHD_Result rc = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return rc;
    }
    /* Not streamed: wait for every choice, watching for a client that left. */
    srv_buf out = {0};
    int gone = 0;
    engine_wait_begins(c);
    pthread_mutex_lock(&e->lock);
    while (r->n_done < r->n_seqs) {
        wait_a_while(&r->cv, &e->lock, 200);
        if (!gone && client_gone(fd)) {
            gone = 1;
            r->cancelled = 1;
            pthread_cond_signal(&e->wake);
        }
    }
    if (!gone && !r->error[0]) srv_completion_json(&s->in, r, &out);
    char error[sizeof r->error];
    memcpy(error, r->error, sizeof error);
    srv_req_unref(r);
    pthread_mutex_unlock(&e->lock);
    engine_wait_ends(s, c);
    if (gone) {
        sb_free(&out);
        return MHD_NO;
    }
    if (error[0]) return send_error(c, 500, "server_error", NULL, error);
    if (out.oom) {
        sb_free(&out);
        return send_error(c, 500, "server_error", NULL, "out of memory for the response");
    }
    enum MHD_Result rc = send_buf(c, 200, "application/json", out.s, out.len, 0);
    sb_free(&out);
    return rc;
}

/* --------------------------------------------------------------- routing */

static int authorized(server *s, struct MHD_Connection *c) {
    if (!s->a.api_key) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    return h && !strncmp(h, "Bearer ", 7) && !strcmp(h + 7, s->a.api_key);
}

static enum MHD_Result route(server *s, struct MHD_Connection *c, const char *url,
                             const char *method, conn_req *cr) {
    int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    const char *body = cr->body.s ? cr->body.s : "";
    size_t n = cr->body.len;
    srv_reply rep = {0};
    if (!strcmp(url, "/health")) {
        if (!get) goto method;
        pthread_mutex_lock(&s->lock);
        int draining = s->draining;
        pthread_mutex_unlock(&s->lock);
        pthread_mutex_lock(&s->e.lock);
        int running = s->e.n_running, waiting = s->e.queued;
        pthread_mutex_unlock(&s->e.lock);
        char b[128];
        int len = snprintf(b, sizeof b, "{\"status\":\"%s\",\"running\":%d,\"waiting\":%d}",
                           draining ? "draining" : "ok", running, waiting);
        return send_buf(c, draining ? 503 : 200, "application/json", b, (size_t)len, 0);
    }
    int known = !strcmp(url, "/v1/completions") || !strcmp(url, "/v1/models") ||
                !strncmp(url, "/v1/models/", 11) || !strcmp(url, "/tokenize") ||
                !strcmp(url, "/detokenize");
    if (known && !authorized(s, c))
        return send_error(c, 401, "invalid_request_error", "invalid_api_key",
                          "Incorrect API key provided: pass it as \"Authorization: Bearer KEY\".");
    if (!strcmp(url, "/v1/completions")) {
        if (!post) goto method;
        return completions(s, c, cr);
    }
    if (!strcmp(url, "/v1/models") || !strncmp(url, "/v1/models/", 11)) {
        if (!get) goto method;
        srv_buf b = {0};
        const char *name = s->in.model_name;
        if (url[10] == '/' && strcmp(url + 11, name)) {
            srv_error(&rep, 404, "invalid_request_error", "model", "model_not_found",
                      "The model `%s` does not exist.", url + 11);
            return send_reply(c, &rep, 0);
        }
        if (url[10] != '/') sb_str(&b, "{\"object\":\"list\",\"data\":[");
        sb_str(&b, "{\"id\":");
        sb_json_str(&b, name, strlen(name));
        sb_printf(&b, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"gpt\",\"max_model_len\":%d}",
                  (long long)time(NULL), s->in.ctx);
        if (url[10] != '/') sb_str(&b, "]}");
        enum MHD_Result rc = send_buf(c, 200, "application/json", b.s, b.len, 0);
        sb_free(&b);
        return rc;
    }
    if (!strcmp(url, "/tokenize") || !strcmp(url, "/detokenize")) {
        if (!post) goto method;
        if (url[1] == 't') srv_tokenize(&s->in, body, n, &rep);
        else srv_detokenize(&s->in, body, n, &rep);
        return send_reply(c, &rep, 0);
    }
    srv_error(&rep, 404, "invalid_request_error", NULL, NULL, "Invalid URL (%s %s)", method, url);
    return send_reply(c, &rep, 0);
method:
    srv_error(&rep, 405, "invalid_request_error", NULL, NULL, "Method %s is not allowed on %s",
              method, url);
    return send_reply(c, &rep, 0);
}

/* A body over --max-body is read and thrown away up to this much more, then
 * answered 413: closing a socket with unread data resets it, and the
 * client could lose the answer. A client that sent "Expect: 100-continue"
 * (curl does for large bodies) hears the 413 before it sends anything. */
#define DISCARD_MAX (64ull << 20)

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls) {
    server *s = cls;
    conn_req *cr = *con_cls;
    (void)version;
    if (!cr) {
        if (!(cr = calloc(1, sizeof *cr))) return MHD_NO;
        cr->t0 = now_s();
        *con_cls = cr;
        pthread_mutex_lock(&s->lock);
        s->inflight++;
        int draining = s->draining;
        pthread_mutex_unlock(&s->lock);
        if (draining) {
            const char *b = "{\"error\":{\"message\":\"The server is shutting down.\",\"type\":"
                            "\"server_error\",\"param\":null,\"code\":\"shutting_down\"}}";
            return send_buf(c, 503, "application/json", b, strlen(b), 1);
        }
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        const char *ex = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Expect");
        unsigned long long n = cl ? strtoull(cl, NULL, 10) : 0;
        if (n > (unsigned long long)s->a.max_body) {
            cr->too_big = 1;
            if ((ex && strstr(ex, "100-continue")) || n > (unsigned long long)s->a.max_body + DISCARD_MAX)
                goto too_big;
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!cr->too_big && cr->body.len + *upload_size > (size_t)s->a.max_body) {
            cr->too_big = 1;
            sb_free(&cr->body);
        }
        if (!cr->too_big) sb_add(&cr->body, upload, *upload_size);
        else cr->discarded += *upload_size;
        *upload_size = 0;
        if (cr->discarded > DISCARD_MAX) goto too_big;
        return MHD_YES;
    }
    if (cr->too_big) goto too_big;
    if (cr->body.oom) return send_error(c, 500, "server_error", NULL, "out of memory for the body");
    return route(s, c, url, method, cr);
too_big:;
    char msg[160];
    snprintf(msg, sizeof msg, "The request body is larger than this server accepts (%lld bytes).",
             s->a.max_body);
    sb_free(&cr->body);
    return send_error(c, 413, "invalid_request_error", "request_too_large", msg);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    server *s = cls;
    conn_req *cr = *con_cls;
    if (!cr) return;
    if (s->a.verbose) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_HTTP_STATUS);
        fprintf(stderr, "gpt serve: %u %.3f s%s\n", ci ? ci->http_status : 0, now_s() - cr->t0,
                toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection ended early)");
    }
    sb_free(&cr->body);
    free(cr);
    *con_cls = NULL;
    pthread_mutex_lock(&s->lock);
    s->inflight--;
    s->served++;
    pthread_mutex_unlock(&s->lock);
}

/* ------------------------------------------------------------------- main */

static int open_tokenizer(gpt_model *m, const char *name, gpt_tokenizer **tok, gpt_error *err) {
    if (name) return gpt_tokenizer_open(tok, name, err);
    const void *blob = NULL;
    size_t len = 0;
    const char *own = gpt_model_tokenizer(m, &blob, &len);
    if (blob) return gpt_tokenizer_load_memory(tok, blob, len, err);
    return gpt_tokenizer_open(tok, own && *own ? own : "gpt2", err);
}

static struct MHD_Daemon *start_http(server *s, gpt_error *err) {
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof port, "%lld", s->a.port);
    int g = getaddrinfo(s->a.host, port, &hints, &ai);
    if (g) {
        gpt_fail(err, GPT_ERR_INVALID, "cannot use --host %s: %s", s->a.host, gai_strerror(g));
        return NULL;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    unsigned conns = (unsigned)(s->a.slots + s->a.max_queue + 64);
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)s->a.port, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_CONNECTION_LIMIT, conns, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)s->a.timeout, MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!d)
        gpt_fail(err, GPT_ERR_RUNTIME, "cannot listen on %s port %lld (%s)", s->a.host, s->a.port,
                 errno == EADDRINUSE ? "the port is in use: choose another with --port, or 0"
                                     : "is the address one of this machine's?");
    return d;
}

/* Waits for SIGINT/SIGTERM, then drains: new requests get 503, the ones in
 * flight finish (a second signal or --drain-timeout cancels them). */
static void serve_until_signal(server *s, const sigset_t *sigs) {
    int sig;
    while (!sigwait(sigs, &sig) && sig == SIGUSR1) srv_engine_hold(&s->e, 0); /* test builds */
    pthread_mutex_lock(&s->lock);
    s->draining = 1;
    int n = s->inflight;
    pthread_mutex_unlock(&s->lock);
    fprintf(stderr, "gpt serve: %s: no new connections; finishing %d request%s in flight\n",
            strsignal(sig), n, n == 1 ? "" : "s");
    MHD_socket ls = MHD_quiesce_daemon(s->d);
    if (ls != MHD_INVALID_SOCKET) close(ls);
    double t0 = now_s();
    int cancelled = 0;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        n = s->inflight;
        pthread_mutex_unlock(&s->lock);
        if (!n) break;
        struct timespec ts = {0, 50 * 1000000L};
        int got = sigtimedwait(sigs, NULL, &ts);
        if (got == SIGUSR1) srv_engine_hold(&s->e, 0);
        int again = got == SIGINT || got == SIGTERM;
        if (!cancelled && (again || now_s() - t0 > s->a.drain)) {
            fprintf(stderr, "gpt serve: %s: cancelling %d request%s\n",
                    again ? "second signal" : "drain timeout", n, n == 1 ? "" : "s");
            srv_cancel_all(&s->e);
            cancelled = 1;
            t0 = now_s();
        } else if (cancelled && now_s() - t0 > 5) {
            break; /* connections that will not finish are closed below */
        }
    }
}

int gpt_cmd_serve(int argc, char **argv) {
    static server s; /* the HTTP threads point at it */
    memset(&s, 0, sizeof s);
    int rc = parse_args(argc, argv, &s.a);
    if (rc >= 0) return rc;
    /* Signals go to sigwait in this thread only: every thread started
     * from here inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
#ifdef GPT_TEST_BUILD
    /* GPT_TEST_SERVE_HOLD=1: the engine admits requests but decodes nothing
     * until SIGUSR1, so a test can fill the slots and the queue and know
     * what each further request gets (tests/serve_test.py, a full queue). */
    int hold = getenv("GPT_TEST_SERVE_HOLD") != NULL;
    if (hold) sigaddset(&sigs, SIGUSR1);
#endif
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&s.lock, NULL);

    gpt_error err = {0};
    gpt_tokenizer *tok = NULL;
    int exit_code = EXIT_OK;
    gpt_runtime rt = {.device = s.a.device, .precision = s.a.precision, .threads = (int)s.a.threads};
    if ((rc = srv_engine_start(&s.e, s.a.model, &rt, (int)s.a.slots, (int)s.a.ctx,
                               (int)s.a.max_queue, (int)s.a.chunk, s.a.invariant, &err)))
        goto lib_fail;
    gpt_model *m = s.e.m; /* read-only here: configuration and tokenizer */
    if ((rc = open_tokenizer(m, s.a.tokenizer, &tok, &err))) goto lib_fail;
    const gpt_config *cfg = gpt_model_config(m);
    if (gpt_tokenizer_vocab_size(tok) > cfg->vocab_size)
        fprintf(stderr,
                "gpt serve: warning: the %s tokenizer has %d tokens, the model only %d: text "
                "with the others is refused\n",
                gpt_tokenizer_name(tok), gpt_tokenizer_vocab_size(tok), cfg->vocab_size);
    s.in = (srv_info){s.a.name ? s.a.name : s.a.model, tok, cfg->vocab_size,
                      gpt_tokenizer_eot(tok), s.e.ctx, (int)s.a.slots};
#ifdef GPT_TEST_BUILD
    if (hold) srv_engine_hold(&s.e, 1);
#endif
    srv_engine_set_tokenizer(&s.e, tok);
    if (!(s.d = start_http(&s, &err))) goto lib_fail;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s.d, MHD_DAEMON_INFO_BIND_PORT);
    fprintf(stderr,
            "gpt serve: %s on %s, %lld slots of %d positions; listening on http://%s%s%s:%u\n",
            s.in.model_name, gpt_model_device_desc(m), s.a.slots, s.e.ctx,
            strchr(s.a.host, ':') ? "[" : "", s.a.host, strchr(s.a.host, ':') ? "]" : "",
            di ? di->port : (unsigned)s.a.port);
    serve_until_signal(&s, &sigs);
    MHD_stop_daemon(s.d);
    srv_engine_free(&s.e);
    fprintf(stderr, "gpt serve: stopped after %lld requests, %lld tokens generated\n", s.served,
            s.e.tokens);
    goto done;
lib_fail:
    exit_code = cli_lib_error(CMD, &err);
    srv_engine_free(&s.e);
done:
    gpt_tokenizer_free(tok);
    return exit_code;
}

#endif
