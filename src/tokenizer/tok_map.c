/*
 * tok_map.c - byte-string hash map for the tokenizer: the encoder's
 * pre-token cache, GPT-2's string-to-id table and the trainer's word
 * counts. Linear probing over a power-of-two table kept at most half full.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "util.h"

uint64_t tok_hash(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ ((uint64_t)n * 0xC2B2AE3D27D4EB4Full);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        h = (h ^ v) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    uint64_t v = 0;
    for (size_t k = 0; k < n; k++) v |= (uint64_t)s[k] << (8 * k);
    h = (h ^ v) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 29;
    return h ? h : 1; /* 0 marks an empty slot */
}

int tok_map_init(tok_map *m, size_t expected) {
    memset(m, 0, sizeof *m);
    size_t cap = 16;
    while (cap < 2 * expected && cap < ((size_t)1 << 40)) cap *= 2;
    m->mask = cap - 1;
    m->slot_hash = calloc(cap, sizeof *m->slot_hash);
    m->slot_entry = malloc(cap * sizeof *m->slot_entry);
    m->entry_cap = cap / 2;
    m->key_off = malloc((m->entry_cap + 1) * sizeof *m->key_off);
    m->val = malloc(m->entry_cap * 2 * sizeof *m->val);
    m->keys_cap = 8 * m->entry_cap;
    m->keys = malloc(m->keys_cap);
    if (!m->slot_hash || !m->slot_entry || !m->key_off || !m->val || !m->keys) {
        tok_map_free(m);
        return GPT_ERR_NOMEM;
    }
    m->key_off[0] = 0;
    return 0;
}

void tok_map_free(tok_map *m) {
    free(m->slot_hash);
    free(m->slot_entry);
    free(m->key_off);
    free(m->keys);
    free(m->val);
    memset(m, 0, sizeof *m);
}

void tok_map_clear(tok_map *m) {
    memset(m->slot_hash, 0, (m->mask + 1) * sizeof *m->slot_hash);
    m->count = 0;
}

size_t tok_map_find(const tok_map *m, const void *key, size_t n, uint64_t h) {
    for (size_t i = (size_t)h & m->mask;; i = (i + 1) & m->mask) {
        if (m->slot_hash[i] == 0) return SIZE_MAX;
        if (m->slot_hash[i] == h) {
            size_t e = m->slot_entry[i];
            if (m->key_off[e + 1] - m->key_off[e] == n && !memcmp(m->keys + m->key_off[e], key, n))
                return e;
        }
    }
}

static void insert_slot(tok_map *m, uint64_t h, size_t e) {
    size_t i = (size_t)h & m->mask;
    while (m->slot_hash[i]) i = (i + 1) & m->mask;
    m->slot_hash[i] = h;
    m->slot_entry[i] = e;
}

static int grow_slots(tok_map *m) {
    size_t cap = (m->mask + 1) * 2;
    uint64_t *sh = calloc(cap, sizeof *sh);
    size_t *se = malloc(cap * sizeof *se);
    if (!sh || !se || cap < m->mask + 1) {
        free(sh);
        free(se);
        return GPT_ERR_NOMEM;
    }
    uint64_t *old_h = m->slot_hash;
    size_t *old_e = m->slot_entry, old_cap = m->mask + 1;
    m->slot_hash = sh;
    m->slot_entry = se;
    m->mask = cap - 1;
    for (size_t i = 0; i < old_cap; i++)
        if (old_h[i]) insert_slot(m, old_h[i], old_e[i]);
    free(old_h);
    free(old_e);
    return 0;
}

int tok_map_add(tok_map *m, const void *key, size_t n, uint64_t h, size_t *entry) {
    if (2 * (m->count + 1) > m->mask + 1 && grow_slots(m)) return GPT_ERR_NOMEM;
    if (m->count == m->entry_cap) {
        size_t cap = m->entry_cap * 2, bytes;
        if (!gpt_mul_size(cap, 2 * sizeof *m->val, &bytes)) return GPT_ERR_NOMEM;
        size_t *ko = realloc(m->key_off, (cap + 1) * sizeof *ko);
        if (!ko) return GPT_ERR_NOMEM;
        m->key_off = ko;
        size_t *v = realloc(m->val, bytes);
        if (!v) return GPT_ERR_NOMEM;
        m->val = v;
        m->entry_cap = cap;
    }
    size_t used = m->key_off[m->count], need;
    if (!gpt_add_size(used, n, &need)) return GPT_ERR_NOMEM;
    if (need > m->keys_cap) {
        size_t cap = m->keys_cap * 2 > need ? m->keys_cap * 2 : need;
        char *k = realloc(m->keys, cap);
        if (!k) return GPT_ERR_NOMEM;
        m->keys = k;
        m->keys_cap = cap;
    }
    if (n) memcpy(m->keys + used, key, n);
    size_t e = m->count++;
    m->key_off[e + 1] = need;
    m->val[2 * e] = m->val[2 * e + 1] = 0;
    insert_slot(m, h, e);
    *entry = e;
    return 0;
}
