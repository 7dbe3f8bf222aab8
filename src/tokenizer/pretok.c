/*
 * pretok.c - OpenAI's GPT-2 pre-tokenizer, written out as a scanner:
 *
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *
 * The regex tries its alternatives in order at each position and takes the
 * first that matches, so a pre-token is: a lower-case contraction; else an
 * optional U+0020 and a run of letters, of numbers or of "other"
 * characters (neither white space, letter nor number); else a run of white
 * space. A white space run that ends the text is taken whole; one followed
 * by other text gives back its last character (the lookahead (?!\S) fails
 * until it does), so that character can prefix the next word - unless the
 * run is that one character, which then matches the final \s+ alone.
 */
#include "tok_internal.h"
#include "unicode.h"

/* End of the run of class cls characters starting at s[j]. */
static size_t run_end(const unsigned char *s, size_t n, size_t j, int cls) {
    while (j < n) {
        size_t l;
        if (uc_class_at(s + j, n - j, &l) != cls) break;
        j += l;
    }
    return j;
}

size_t tok_pretoken_end(const unsigned char *s, size_t n, size_t i) {
    unsigned char c = s[i];
    if (c == '\'' && i + 1 < n) {
        unsigned char c1 = s[i + 1];
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return i + 2;
        if (i + 2 < n) {
            unsigned char c2 = s[i + 2];
            if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
                return i + 3;
        }
    }
    size_t len;
    int cls = uc_class_at(s + i, n - i, &len);
    size_t j = i + len;
    if (c == ' ' && j < n) { /* " ?X+": the space joins a following non-space run */
        size_t len2;
        int cls2 = uc_class_at(s + j, n - j, &len2);
        if (cls2 != UC_SPACE) return run_end(s, n, j + len2, cls2);
    }
    if (cls != UC_SPACE) return run_end(s, n, j, cls);
    size_t last = i; /* start of the run's last character */
    while (j < n) {
        size_t l;
        if (uc_class_at(s + j, n - j, &l) != UC_SPACE) break;
        last = j;
        j += l;
    }
    if (j == n) return n;
    return last > i ? last : j;
}
