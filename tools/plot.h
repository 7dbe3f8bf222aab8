/*
 * plot.h - the loss curve as a standalone SVG file (no dependencies).
 */
#ifndef GPT_PLOT_H
#define GPT_PLOT_H

#include <stddef.h>
#include "gpt.h"

typedef struct {
    const char *label;
    const char *color; /* CSS colour */
    const double *x, *y;
    size_t n;
} plot_series;

/* Writes an SVG line chart of the series (atomically). */
int plot_svg(const char *path, const char *title, const char *xlabel, const char *ylabel,
             const plot_series *series, int nseries, gpt_error *err);

#endif
