/*
 * serve.h - the pieces of `gpt serve`:
 *   serve_engine.c  one thread owns the model: it admits queued sequences
 *                   into free slots (gpt_slot_prefill), runs one decoding
 *                   step over every running slot (gpt_slots_decode*), draws
 *                   each slot's token with its own sampler, applies stop
 *                   strings and publishes the results;
 *   serve_api.c     the OpenAI-style requests and responses: parsing and
 *                   checking a request's JSON, writing completions, stream
 *                   chunks and errors;
 *   cmd_serve.c     the HTTP side (libmicrohttpd, a thread per connection):
 *                   routes, limits, streaming, signals and draining.
 *
 * Locking: one mutex (srv_engine.lock) guards the queue and every field a
 * request shares between the engine and its HTTP thread (marked "shared"
 * below). The engine holds it only to admit sequences and to publish a
 * step's tokens; HTTP threads hold it only to copy out what they send.
 */
#ifndef GPT_SERVE_H
#define GPT_SERVE_H

#include <pthread.h>
#include <stddef.h>

#include "gpt.h"
#include "gpt_tokenizer.h"

enum { SRV_MAX_STOP = 4, SRV_MAX_LOGPROBS = 20 };
enum { SRV_RUNNING = 0, SRV_FINISH_STOP = 1, SRV_FINISH_LENGTH = 2 };

/* What a completion request asks for (after checking). */
typedef struct {
    int max_tokens;            /* new tokens per choice; 0 only with echo */
    gpt_sampler_opts sampler;  /* seed: the request's, or a random one */
    int n;                     /* choices per prompt */
    char *stop[SRV_MAX_STOP];  /* owned */
    int n_stop;
    int logprobs;              /* alternatives per token, or -1 for none */
    int echo, stream, include_usage, ignore_eos;
} srv_params;

typedef struct srv_req srv_req;

/* One choice: a prompt continued in one slot. */
typedef struct {
    srv_req *r;
    int index;  /* choice index in the response: prompt * n + j */
    int prompt; /* which of the request's prompts */
    /* engine only */
    int slot;   /* -1 while queued or done */
    gpt_sampler *sampler;
    /* shared */
    int *toks;          /* (max_tokens) generated ids */
    size_t *tok_end;    /* (max_tokens) byte end of each token's text */
    float *lp;          /* (max_tokens, 1 + logprobs): chosen, then top ones */
    int *top;           /* (max_tokens, logprobs) ids of the top ones */
    int n_toks;
    char *text;         /* generated text (stop string cut off) */
    size_t len, cap;
    size_t ready;       /* bytes of text that can be sent: no partial stop
                           string or UTF-8 character at the end */
    int n_vis;          /* tokens to report (those starting inside text) */
    int finish;         /* SRV_RUNNING or SRV_FINISH_* */
} srv_seq;

struct srv_req {
    int refs;           /* shared: HTTP thread and engine */
    pthread_cond_t cv;  /* signalled when the engine publishes */
    srv_params p;
    int n_prompts;
    int **prompts, *lens;
    float **plp;        /* echo with logprobs: per prompt (len, 1 + logprobs) */
    int **ptop;         /* and (len, logprobs) ids; row 0 unused */
    int n_seqs, next_seq; /* next_seq: the first not yet admitted */
    srv_seq *seqs;
    int n_done;         /* shared: finished sequences */
    int cancelled;      /* shared: the client went away */
    char error[1024];   /* shared: a runtime failure ("" if none) */
    char id[48];
    long long created;
    srv_req *next;      /* queue */
};

typedef struct {
    const char *path;       /* the model, loaded by the engine thread */
    gpt_runtime rt;
    gpt_model *m;           /* the engine thread's: others only read its
                               configuration and tokenizer after start */
    const gpt_tokenizer *tok;
    int V, eot, ctx, n_slots, max_queue, chunk;
    int fixed;              /* every step at the full slot count */
    int init_done;          /* 1 ready, -1 failed (init_err) */
    gpt_error init_err;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* work arrived, or stop */
    pthread_t thread;
    int started;
    srv_req *head, *tail; /* requests with sequences not yet admitted */
    int queued;           /* requests in the queue */
    srv_seq **running;    /* (n_slots) the sequence in each slot, or NULL */
    int n_running;
    int stop;             /* exit once idle */
    int hold;             /* test builds: admit, but run no step (srv_engine_hold) */
    long long tokens;     /* generated so far */
    /* engine scratch */
    float *logits;        /* (n_slots, V) */
    int *ids;             /* (chunk, n_slots) */
    int *slots, *toks;    /* (n_slots) */
    float *lp;            /* (n_slots, 1 + SRV_MAX_LOGPROBS) */
    int *top;             /* (n_slots, SRV_MAX_LOGPROBS) */
    srv_seq **fresh;      /* (n_slots) */
    int *rcs;             /* (n_slots) */
    gpt_error *errs;      /* (n_slots) */
} srv_engine;

/* serve_engine.c */
/* Starts the engine thread, which loads the model at path and reserves
 * n_slots slots of ctx positions (0: the model's context); returns once it
 * is ready or has failed. chunk: greedy steps per call when every running
 * sequence is greedy (0: 4 on a GPU, 1 on the CPU); fixed:
 * GPT_SLOTS_FIXED_SHAPE. The engine takes
 * requests once it has a tokenizer. */
int srv_engine_start(srv_engine *e, const char *path, const gpt_runtime *rt, int n_slots,
                     int ctx, int max_queue, int chunk, int fixed, gpt_error *err);
void srv_engine_set_tokenizer(srv_engine *e, const gpt_tokenizer *tok);
/* Lets the engine finish what it has, stops it (the model is freed in its
 * thread) and frees its buffers. */
void srv_engine_free(srv_engine *e);
/* Cancels every queued and running request (a drain that ran out of time). */
void srv_cancel_all(srv_engine *e);
/* on 1: the engine still admits queued sequences into free slots, but runs
 * no decoding step until called with 0 (cancelling or stopping releases it
 * too). Test builds use it to fill the queue without racing the clock
 * (GPT_TEST_SERVE_HOLD, tests/serve_test.py). */
void srv_engine_hold(srv_engine *e, int on);
/* Queues a request (the engine takes a reference). Returns 0, or 1 if the
 * queue is full. Call with the lock held. */
int srv_submit(srv_engine *e, srv_req *r);
/* Drops a reference; frees the request at zero. Call with the lock held. */
void srv_req_unref(srv_req *r);
/* Creates a request with one reference, its sequences and buffers sized by
 * p (prompts are taken over). NULL when out of memory. */
srv_req *srv_req_new(srv_params *p, int n_prompts, int **prompts, int *lens);
/* The byte offset up to which a sequence's text may be sent, and the token
 * count whose text lies within it. Call with the lock held. */
int srv_seq_tokens_ready(const srv_seq *s);

/* serve_api.c: a growable string */
typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} srv_buf;
void sb_add(srv_buf *b, const char *s, size_t n);
void sb_str(srv_buf *b, const char *s);
void sb_printf(srv_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* A JSON string of n bytes; invalid UTF-8 becomes U+FFFD. */
void sb_json_str(srv_buf *b, const char *s, size_t n);
void sb_free(srv_buf *b);

/* serve_api.c: requests and responses */
typedef struct {
    const char *model_name;
    const gpt_tokenizer *tok;
    int V, eot, ctx, n_slots;
} srv_info;

/* An error: HTTP status and an OpenAI-style body. */
typedef struct {
    int status;
    srv_buf body;
} srv_reply;

void srv_error(srv_reply *out, int status, const char *type, const char *param,
               const char *code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;
/* Checks a /v1/completions body; on success *out is a new request (one
 * reference) and 0 is returned, else the 4xx is in *err. */
int srv_parse_completion(const srv_info *in, const char *body, size_t n, srv_req **out,
                         srv_reply *err);
/* The whole response of a finished request (lock held). */
void srv_completion_json(const srv_info *in, srv_req *r, srv_buf *b);
/* Stream state of one request: what each choice has been sent. */
typedef struct {
    size_t *sent;  /* (n_seqs) bytes of text */
    int *tsent;    /* (n_seqs) tokens */
    int *fin_sent; /* (n_seqs) */
    int *echoed;   /* (n_seqs) the prompt's text went out (echo) */
    int done_sent;
} srv_stream;
/* Appends the server-sent events for what is new (lock held); returns 1
 * once everything, [DONE] included, has been written. */
int srv_stream_events(const srv_info *in, srv_req *r, srv_stream *st, srv_buf *b);
/* /tokenize and /detokenize: a 200 body or an error in out. */
void srv_tokenize(const srv_info *in, const char *body, size_t n, srv_reply *out);
void srv_detokenize(const srv_info *in, const char *body, size_t n, srv_reply *out);

#endif
