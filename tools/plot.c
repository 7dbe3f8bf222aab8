/*
 * plot.c - a small SVG line chart: axes with round ticks, one polyline per
 * series, a legend. Used for the training loss curve.
 */
#include "plot.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/tools_internal.h"

static double nice_step(double range, int ticks) {
    double raw = range / ticks, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

/* Points beyond this are drawn as off the chart (as NaN and inf are): the
 * axis range stays finite. */
#define PLOT_MAX 1e300

static int on_chart(double x, double y) { return fabs(x) <= PLOT_MAX && fabs(y) <= PLOT_MAX; }

/* An axis range that ticks can divide: at least one unit wide, and wider
 * than the precision of its ends (a diverging run's losses near 1e17,
 * 16 apart, gave a tick step of 5, which adding to 1e17 does not change:
 * the tick loop never ended; fuzz_train_files found it). */
static void widen(double *lo, double *hi) {
    double least = fmax(1.0, fmax(fabs(*lo), fabs(*hi)) * 1e-9);
    if (*hi - *lo < least) *hi = *lo + least;
}

typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *s, const char *fmt, ...) {
    if (s->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(s->buf + s->len, s->cap - s->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            s->oom = 1;
            return;
        }
        if ((size_t)n < s->cap - s->len) {
            s->len += (size_t)n;
            return;
        }
        size_t nc = (s->cap + (size_t)n + 1) * 2;
        char *nb = realloc(s->buf, nc);
        if (!nb) {
            s->oom = 1;
            return;
        }
        s->buf = nb;
        s->cap = nc;
    }
}

int plot_svg(const char *path, const char *title, const char *xlabel, const char *ylabel,
             const plot_series *series, int nseries, gpt_error *err) {
    const double W = 720, H = 420, L = 70, R = 20, T = 40, Bm = 50;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int s = 0; s < nseries; s++)
        for (size_t i = 0; i < series[s].n; i++) {
            double x = series[s].x[i], y = series[s].y[i];
            if (!on_chart(x, y)) continue;
            x0 = fmin(x0, x), x1 = fmax(x1, x), y0 = fmin(y0, y), y1 = fmax(y1, y);
        }
    if (!isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
    widen(&x0, &x1);
    widen(&y0, &y1);
    double ys = nice_step(y1 - y0, 6), xs = nice_step(x1 - x0, 8);
    y0 = floor(y0 / ys) * ys, y1 = ceil(y1 / ys) * ys;
    /* Ticks by count, not by adding a step until the end. */
    int ny = (int)fmin(50, floor((y1 - y0) / ys + 0.5)), nx;
    double xt0 = ceil(x0 / xs) * xs;
    nx = (int)fmin(50, floor((x1 - xt0) / xs + 0.5));
#define PX(x) (L + ((x) - x0) / (x1 - x0) * (W - L - R))
#define PY(y) (H - Bm - ((y) - y0) / (y1 - y0) * (H - T - Bm))
    sbuf s = {malloc(4096), 0, 4096, 0};
    if (!s.buf) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    sb_printf(&s,
              "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
              "font-family=\"sans-serif\" font-size=\"12\">\n"
              "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
              "<text x=\"%.0f\" y=\"24\" font-size=\"15\" text-anchor=\"middle\">%s</text>\n",
              W, H, W / 2, title);
    for (int k = 0; k <= ny; k++) {
        double y = y0 + k * ys;
        sb_printf(&s,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                  L, PY(y), W - R, PY(y), L - 6, PY(y) + 4, y);
    }
    for (int k = 0; k <= nx; k++) {
        double x = xt0 + k * xs;
        sb_printf(&s,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
                  PX(x), T, PX(x), H - Bm, PX(x), H - Bm + 16, x);
    }
    sb_printf(&s,
              "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
              "stroke=\"#333\"/>\n"
              "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">%s</text>\n"
              "<text transform=\"translate(16 %.0f) rotate(-90)\" text-anchor=\"middle\">%s</text>\n",
              L, T, W - L - R, H - T - Bm, (L + W - R) / 2, H - 12, xlabel, (T + H - Bm) / 2,
              ylabel);
    for (int k = 0; k < nseries; k++) {
        const plot_series *p = &series[k];
        sb_printf(&s, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"",
                  p->color);
        for (size_t i = 0; i < p->n; i++)
            if (on_chart(p->x[i], p->y[i]))
                sb_printf(&s, "%.1f,%.1f ", PX(p->x[i]), PY(p->y[i]));
        sb_printf(&s, "\"/>\n<rect x=\"%.0f\" y=\"%.0f\" width=\"14\" height=\"3\" fill=\"%s\"/>"
                      "<text x=\"%.0f\" y=\"%.0f\">%s</text>\n",
                  W - R - 150, T + 14 + 18.0 * k, p->color, W - R - 130, T + 18 + 18.0 * k,
                  p->label);
    }
    sb_printf(&s, "</svg>\n");
#undef PX
#undef PY
    if (s.oom) {
        free(s.buf);
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    }
    gpt_atomic_file af;
    int rc = gpt_atomic_open(&af, path, err);
    if (!rc) rc = gpt_atomic_write(&af, s.buf, s.len, err);
    if (!rc) rc = gpt_atomic_commit(&af, err);
    else gpt_atomic_abort(&af);
    free(s.buf);
    return rc;
}
